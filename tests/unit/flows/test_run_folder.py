"""The run folder's files and the torchrun launch: the command, the environment, line streaming into
torchrun.log, failures and the timeout (the launch itself with stand-in launchers; the real torchrun runs
in the train flow and the synthetic benchmark tests)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows import run_folder
from flows.run_folder import LaunchError, TorchrunLaunch, launch


@dataclass(frozen=True)
class ScriptLaunch(TorchrunLaunch):
    """The launch with a Python script in torchrun's place (its last argument is the run folder)."""

    script: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.run_dir)]


WRITE_RESULT = "import json,sys,pathlib; pathlib.Path(sys.argv[-1], 'result.json').write_text(json.dumps({'global_step': 5}))"  # fmt: skip


def test_command_runs_the_worker_module_on_the_run_folder(tmp_path):
    command = TorchrunLaunch(tmp_path, 2).command()
    assert command[-7:] == ["--standalone", "--nproc-per-node", "2", "-m", "flows.torchrun_worker", "--run-dir", str(tmp_path)]  # fmt: skip
    with pytest.raises(ValueError, match="nproc-per-node"):
        TorchrunLaunch(tmp_path, 0).command()


def test_environment_drops_an_inherited_mlflow_run_and_keeps_nvlink_multicast_off(tmp_path):
    base = {"PATH": "/bin", "MLFLOW_RUN_ID": "stray", "MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"}
    env = TorchrunLaunch(tmp_path).environment(base)
    assert "MLFLOW_RUN_ID" not in env and "MLFLOW_TRACKING_URI" not in env and env["PATH"] == "/bin"
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert env["NVSHMEM_DISABLE_NVLS"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    handed = TorchrunLaunch(tmp_path, env={"MLFLOW_RUN_ID": "r1"}).environment(base)
    assert handed["MLFLOW_RUN_ID"] == "r1"


def test_launch_streams_every_line_to_the_callback_and_the_log_and_returns_the_result(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"global_step": 1}))  # an earlier launch's
    lines: list[str] = []
    script = f"print('line one'); print('line two'); {WRITE_RESULT}"
    assert launch(ScriptLaunch(tmp_path, script=script), lines.append) == {"global_step": 5}
    assert lines == ["line one", "line two"]
    assert (tmp_path / "torchrun.log").read_text() == "line one\nline two\n"


def test_a_failed_launch_names_its_code_and_last_lines_and_a_stale_result_does_not_count(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"global_step": 1}))
    with pytest.raises(LaunchError, match=r"code 3(.|\n)*boom"):
        launch(ScriptLaunch(tmp_path, script="print('boom'); raise SystemExit(3)"), lambda line: None)
    with pytest.raises(LaunchError, match="wrote no"):
        launch(ScriptLaunch(tmp_path, script="print('no result')"), lambda line: None)


def test_a_silent_launch_past_its_timeout_is_stopped(tmp_path):
    lines: list[str] = []
    script = "import time; print('started', flush=True); time.sleep(120)"
    started = time.monotonic()
    with pytest.raises(LaunchError, match="timeout"):
        launch(ScriptLaunch(tmp_path, script=script), lines.append, timeout_s=1.0)
    assert time.monotonic() - started < 30 and lines == ["started"]
    assert "started" in (tmp_path / "torchrun.log").read_text()


def test_config_and_result_files_round_trip(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        run_folder.read_config(tmp_path)
    run_folder.write_config(tmp_path, {"data": {"resolutions": [[128, 96]]}})
    assert run_folder.read_config(tmp_path) == {"data": {"resolutions": [[128, 96]]}}
    assert "resolutions" in (tmp_path / "config.yaml").read_text()
    assert run_folder.read_result(tmp_path) is None and run_folder.finished_export(tmp_path) is None


def test_finished_export_needs_a_finished_result_and_the_export_folder(tmp_path):
    export = tmp_path / "model-final"
    run_folder.write_result(tmp_path, {"finished": False, "exported_model": None, "global_step": 3})
    assert run_folder.finished_export(tmp_path) is None
    run_folder.write_result(tmp_path, {"finished": True, "exported_model": str(export), "global_step": 8})
    assert run_folder.finished_export(tmp_path) is None  # moved aside: a longer schedule may continue
    export.mkdir()
    assert run_folder.finished_export(tmp_path) == (export, 8)
    assert run_folder.finished_result(tmp_path) == {
        "finished": True,
        "exported_model": str(export),
        "global_step": 8,
    }
    (tmp_path / run_folder.RESULT_FILE).write_text("{truncated")  # a launch killed while writing it
    assert run_folder.finished_result(tmp_path) is None and run_folder.finished_export(tmp_path) is None


def test_checkpoint_identity(tmp_path):
    run = tmp_path / "train" / "run-a"
    export = run / "model-final"
    export.mkdir(parents=True)
    (export / "model.safetensors").write_bytes(b"weights")
    assert run_folder.checkpoint_label(export) == "run-a/model-final"
    official = tmp_path / "panst3r_v1.pth"
    official.write_bytes(b"pickle")
    assert run_folder.checkpoint_label(official) == "panst3r_v1"
    assert run_folder.training_image_size(export) is None  # no run config next to it
    run_folder.write_config(run, {"data": {"resolutions": [[128, 96], [96, 128]]}})
    assert run_folder.training_image_size(export) == 128
    # the model's own metadata wins (a model moved out of its run folder keeps it)
    (export / "config.json").write_text(json.dumps({"metadata": {"training_resolutions": [[256, 192]]}}))
    assert run_folder.training_image_size(export) == 256
    before = run_folder.checkpoint_digest(export)
    assert run_folder.checkpoint_digest(export) == before
    (export / "model.safetensors").write_bytes(b"other weights")
    assert run_folder.checkpoint_digest(export) != before


def test_loss_summary_reads_first_and_last_logged_loss(tmp_path):
    records = [
        {"kind": "log", "panoptic_loss": 5.0},
        {"kind": "epoch", "panoptic_loss": 9.0},
        {"kind": "log", "panoptic_loss": 2.5},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run_folder.loss_summary(tmp_path) == {"first_loss": 5.0, "last_loss": 2.5}
    assert run_folder.loss_summary(Path(tmp_path / "none")) == {}
