"""The run folder's files and the torchrun launch: the command, the environment, line streaming into
torchrun.log, failures, the timeout, the folder's lock and the launch's session (the launch itself with
stand-in launchers and real signals; the real torchrun runs in the train flow and the synthetic benchmark
tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _script_launch import ScriptLaunch

from flows import run_folder
from flows.run_folder import LaunchError, TorchrunLaunch, launch
from flows.run_lock import RunFolderBusyError

WRITE_RESULT = "import json,sys,pathlib; pathlib.Path(sys.argv[-1], 'result.json').write_text(json.dumps({'global_step': 5}))"  # fmt: skip


def test_command_runs_torchrun_under_the_agent_on_one_node(tmp_path):
    command = TorchrunLaunch(tmp_path, 2).command()
    assert command[1:3] == ["-m", "flows.torchrun_agent"]
    assert command[3:] == ["--standalone", "--max-restarts", "0", "--nproc-per-node", "2", "-m", "flows.torchrun_worker", "--run-dir", str(tmp_path)]  # fmt: skip
    with pytest.raises(ValueError, match="nproc-per-node"):
        TorchrunLaunch(tmp_path, 0).command()


def test_multi_node_command_uses_c10d_hosted_by_node_0(tmp_path):
    node0 = TorchrunLaunch(
        tmp_path / "run-a", 2, nnodes=3, node_rank=0, rdzv_endpoint="10.0.0.1:29400", max_restarts=2
    )
    command = node0.command()
    assert "--standalone" not in command
    assert command[3:15] == [
        "--nnodes", "3", "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.1:29400",
        "--rdzv-id", "run-a", "--rdzv-conf", "is_host=1", "--max-restarts", "2",
    ]  # fmt: skip
    node2 = TorchrunLaunch(tmp_path / "run-a", 2, nnodes=3, node_rank=2, rdzv_endpoint="10.0.0.1:29400")
    assert "is_host=0" in node2.command() and node2.world_size == 6
    # Only node 0 writes the shared files; every node has its own log and lock, so nodes may share a folder.
    assert (node0.writes_shared_files, node0.log_name, node0.lock_name) == (
        True,
        "torchrun.log",
        "launch.lock",
    )
    assert (node2.writes_shared_files, node2.log_name, node2.lock_name) == (
        False,
        "torchrun-node2.log",
        "launch-node2.lock",
    )
    env = node2.environment({})
    assert (env["PANST3R_NODE_RANK"], env["PANST3R_NNODES"]) == ("2", "3")


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, "node rank < nnodes"),
        ({"nnodes": 2, "node_rank": 0}, "rdzv-endpoint"),
        ({"nnodes": 2, "node_rank": 0, "rdzv_endpoint": "nohost"}, "HOST:PORT"),
        ({"nnodes": 2, "node_rank": 0, "rdzv_endpoint": "h:99999"}, "HOST:PORT"),
        ({"rdzv_endpoint": "h:1"}, "--nnodes"),
        ({"max_restarts": -1}, "max-restarts"),
    ],
)
def test_bad_node_settings_are_refused(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        TorchrunLaunch(tmp_path, **fields).validate()


def test_environment_drops_an_inherited_mlflow_run_and_keeps_nvlink_multicast_off(tmp_path):
    base = {"PATH": "/bin", "MLFLOW_RUN_ID": "stray", "MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"}
    env = TorchrunLaunch(tmp_path).environment(base)
    assert "MLFLOW_RUN_ID" not in env and "MLFLOW_TRACKING_URI" not in env and env["PATH"] == "/bin"
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert env["NVSHMEM_DISABLE_NVLS"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PANST3R_LAUNCHER_PID"] == str(os.getpid())  # torchrun's agent dies with this process
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


LAUNCHER = Path(__file__).with_name("_script_launch.py")


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _launcher(run_dir: Path, script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(LAUNCHER), str(run_dir), script], stdout=subprocess.DEVNULL)


# prints its pid, then a numbered line every 0.2 s for 10 s
TICKING = "import os,time; print('pid', os.getpid(), flush=True); [(print('tick', i, flush=True), time.sleep(0.2)) for i in range(50)]"  # fmt: skip


def test_a_second_launch_is_refused_until_the_first_and_its_child_have_ended(tmp_path):
    first = _launcher(tmp_path, TICKING)
    log = tmp_path / "torchrun.log"
    _wait_for(lambda: log.is_file() and "tick 1" in log.read_text())
    with pytest.raises(RunFolderBusyError, match=f"pid {first.pid}"):
        launch(ScriptLaunch(tmp_path, script=WRITE_RESULT), lambda line: None)
    child = int(log.read_text().split()[1])
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The launcher is gone, but its child still holds the folder (and keeps writing its lines to the log).
    with pytest.raises(RunFolderBusyError, match="has exited"):
        launch(ScriptLaunch(tmp_path, script=WRITE_RESULT), lambda line: None)
    lines_then = log.read_text().count("tick")
    _wait_for(lambda: log.read_text().count("tick") > lines_then + 2)
    os.kill(child, signal.SIGKILL)
    _wait_for(lambda: not _alive(child))
    assert launch(ScriptLaunch(tmp_path, script=WRITE_RESULT), lambda line: None) == {"global_step": 5}
    assert (tmp_path / "launch.lock").read_text().strip() == str(os.getpid())


def test_an_interrupt_ends_the_whole_session_of_the_launch(tmp_path):
    # The child starts a grandchild in its session, then prints; the interrupt comes with the first line.
    script = "import subprocess,time; p = subprocess.Popen(['sleep', '60']); print('grandchild', p.pid, flush=True); time.sleep(60)"  # fmt: skip

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        launch(ScriptLaunch(tmp_path, script=script), interrupt)
    grandchild = int((tmp_path / "torchrun.log").read_text().split()[1])
    _wait_for(lambda: not _alive(grandchild), timeout=10)
    assert time.monotonic() - started < 30


def test_a_node_other_than_0_keeps_the_shared_files_and_logs_apart(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"global_step": 1}))  # node 0's
    spec = ScriptLaunch(
        tmp_path, nnodes=2, node_rank=1, rdzv_endpoint="127.0.0.1:29400", script="print('node one')"
    )
    assert launch(spec, lambda line: None) == {"node_rank": 1, "nnodes": 2, "world_size": 2}
    assert json.loads((tmp_path / "result.json").read_text()) == {"global_step": 1}
    assert (tmp_path / "torchrun-node1.log").read_text() == "node one\n" and not (
        tmp_path / "torchrun.log"
    ).exists()


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


def test_timing_summary_reads_the_share_of_time_waiting_for_data(tmp_path):
    records = [
        {"kind": "log", "panoptic_loss": 5.0, "iteration_s": 0.5, "data_wait_s": 0.25},
        {"kind": "epoch", "panoptic_loss": 9.0},
        {"kind": "log", "panoptic_loss": 2.5, "iteration_s": 1.5, "data_wait_s": 0.25},
        {"kind": "log", "panoptic_loss": 2.0},  # a window logged before the timings existed
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run_folder.timing_summary(tmp_path) == {"seconds_per_iteration": 1.0, "data_wait_share": 0.25}
    assert run_folder.timing_summary(Path(tmp_path / "none")) == {}
