"""Bad training settings fail in one line naming the key and the valid values, before torchrun (or even a
Prefect server) starts (issue 13, point 7): the real `panst3r train` in a process of its own."""

from __future__ import annotations

import subprocess

import pytest
from _preprocess_support import REPO, cli_command
from toy_store import write_toy_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(
        tmp_path_factory.mktemp("settings_store") / "s", scenes=1, frames=3, image_size=(64, 48)
    )


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "model.variant=huge",
            "error: model.variant: 'huge' is not a model variant; valid: compact_nocolor_v2, compact_smooth_v2, "
            "compact_v2, compact_wide_v2, panst3r_v1_512, panst3r_v2_512, small_v1, small_v2, tiny_v1, tiny_v2",
        ),
        (
            "data.resolutions=[[0,0]]",
            "error: data.resolutions: 0x0 must be a landscape [W, H] (W >= H: portrait views are turned "
            "landscape), each side a positive multiple of 16 (the patch size), e.g. [[512, 384]]",
        ),
        (
            "training.batch_size=[2]",
            "error: training config synthetic_cpu.training.batch_size: expected an integer, got [2]",
        ),
    ],
)
def test_bad_settings_fail_in_one_line_before_anything_starts(store, tmp_path, override, expected):
    runs = tmp_path / "runs"
    env = {"PATH": "/usr/bin:/bin", "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONUNBUFFERED": "1"}
    command = cli_command(
        "train", "--store", str(store), "--runs-dir", str(runs), "--prefect-port", "9", override
    )
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [expected] and result.stdout == ""
    # Nothing was started or written: no Prefect server, no run folder, no torchrun.log.
    assert not (tmp_path / "prefect").exists() and not runs.exists()
