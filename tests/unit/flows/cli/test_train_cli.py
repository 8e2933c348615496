"""`panst3r train`: bad input fails with one clear line and exit code 2, before any Prefect server starts."""

import subprocess
import sys

import pytest
from toy_store import write_toy_store

from flows.cli.main import main


def test_missing_store(tmp_path, capsys):
    assert main(["train", "--store", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,message",
    [
        ("training.epoch=3", "unknown key(s) epoch"),
        ("training.output_dir=x", "set by the train flow"),
        ("no-equals-sign", "key=value"),
    ],
)
def test_bad_overrides(tmp_path, capsys, override, message):
    assert main(["train", "--store", str(tmp_path), override]) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_lists_the_presets(tmp_path, capsys):
    assert main(["train", "--store", str(tmp_path), "--config", "nope"]) == 2
    assert "synthetic_cpu" in capsys.readouterr().err


def test_help_lists_the_contract_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--store",
        "--config",
        "--nproc-per-node",
        "--experiment",
        "key=value",
        "--nnodes",
        "--node-rank",
        "--rdzv-endpoint",
        "--max-restarts",
    ):
        assert flag in out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("store") / "s", scenes=1, frames=3, image_size=(64, 48))


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--nnodes", "2"], "same --run-name on every node"),
        (["--nnodes", "2", "--run-name", "r"], "--rdzv-endpoint"),
        (
            ["--nnodes", "2", "--node-rank", "2", "--run-name", "r", "--rdzv-endpoint", "h:1"],
            "node rank < nnodes",
        ),
        (["model.variant=huge"], "model.variant: 'huge' is not a model variant; valid:"),
        (["data.resolutions=[[0,0]]"], "data.resolutions: 0x0"),
    ],
)
def test_bad_settings_and_node_flags_fail_before_anything_starts(store, tmp_path, capsys, flags, message):
    assert main(["train", "--store", str(store), "--runs-dir", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "train").exists()


def test_a_run_folder_held_by_another_launch_is_refused(store, tmp_path, capsys):
    run_dir = tmp_path / "train" / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; from flows.run_lock import hold_run_folder\n"
         "with hold_run_folder(Path(sys.argv[1]), 'launch.lock'):\n    print('held', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--store", str(store), "--runs-dir", str(tmp_path), "--run-name", "busy"]) == 2
        assert f"in use by another launch (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
