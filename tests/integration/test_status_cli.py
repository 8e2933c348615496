"""`panst3r status --root` compares each scene with the settings and pairs it was made with (it once called
every scene of a `make run` store stale: it assumed --target-resolution 920 and no pairs), and says why a
scene is stale."""

from __future__ import annotations

import os
import subprocess

import pytest
from _preprocess_support import REPO, TARGET_RESOLUTION, cli_command, make_root, preprocess_in_process

pytestmark = pytest.mark.slow


def _status(*args: str) -> str:
    result = subprocess.run(
        cli_command("status", *args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _row(output: str, scene_id: str) -> str:
    return next(line for line in output.splitlines() if scene_id in line)


def test_status_compares_with_what_each_scene_was_made_with(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=61)
    first, second = sorted(p.name for p in (root / "data").iterdir())
    # What the flow runs, at the tests' small resolution, with pairs.
    store = preprocess_in_process(root, tmp_path / "store", TARGET_RESOLUTION, pairs)

    output = _status("--store", str(store), "--root", str(root))
    assert "done 2 / stale 0 / failed 0" in output, output

    output = _status("--store", str(store), "--root", str(root), "--target-resolution", "920")
    assert "stale 2" in output
    assert f"settings differ (target_resolution {TARGET_RESOLUTION} -> 920)" in _row(output, first)

    cameras = root / "data" / second / "dslr" / "colmap" / "cameras.txt"
    cameras.write_text(cameras.read_text() + "# edited\n")
    output = _status("--store", str(store), "--root", str(root))
    assert "done" in _row(output, first) and "inputs changed" in _row(output, second)
    assert "done 1 / stale 1 / failed 0" in output
