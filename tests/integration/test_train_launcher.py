"""`panst3r train` owns its process tree (issue 13, point 1), with real signals to real processes: after a
SIGKILL, a SIGTERM or a Ctrl-C of the launcher no torchrun, worker or temporary Prefect server is left, every
output line is in torchrun.log, the MLflow run is KILLED, an interrupt is never retried, and a second launcher
on the same run folder is refused while the first holds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from _preprocess_support import REPO, cli_env
from _process_tree import descendants, start_foreground, wait_gone, wait_until
from _train_support import toy_train_store
from _train_support import train_command as train_run_command
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

EXPERIMENT = "launcher-test"
# 4 optimizer steps per epoch of one rank, many epochs: the run is still going when signalled.
LONG = ["training.epochs=500"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_train_store(tmp_path_factory, "launcher_store")


def train_command(
    store: Path, runs: Path, name: str, *overrides: str, flags: Sequence[str] = ()
) -> list[str]:
    return train_run_command(
        store, runs, name, EXPERIMENT, "data.samples_per_epoch=8", *overrides, flags=flags
    )


def wait_for_step(log: Path, step: int, launcher: subprocess.Popen, output: Path) -> None:
    def reached() -> bool:
        assert launcher.poll() is None, output.read_text()[-3000:]
        return log.is_file() and f" step {step} " in log.read_text()

    wait_until(reached, 300, f"step {step} in {log}")


def training_processes(launcher: subprocess.Popen, workers: int = 1) -> dict[int, str]:
    """The launcher's descendants: torchrun's agent and `workers` workers among them."""
    tree = descendants(launcher.pid)
    assert sum("-m flows.torchrun_agent" in line for line in tree.values()) == 1, tree
    assert sum("-u -m flows.torchrun_worker" in line for line in tree.values()) == workers, tree
    return tree


def mlflow_statuses(runs: Path) -> list[str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [run.info.status for run in found]


def logged_steps(run_dir: Path) -> list[int]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [record["step"] for record in records if record["kind"] == "log"]


def test_sigkill_of_the_launcher_leaves_no_process_loses_no_line_and_an_immediate_resume_finishes(
    store, prefect_server, tmp_path
):
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "train" / "killed"
    from flows.prefect_env import free_port

    # No PREFECT_API_URL and nothing on --prefect-port: the launcher starts a temporary Prefect server.
    env = {key: value for key, value in cli_env(*prefect_server).items() if key != "PREFECT_API_URL"}
    output = tmp_path / "launcher.out"
    command = train_command(
        store, runs, "killed", *LONG, flags=["--nproc-per-node", "2", "--prefect-port", str(free_port())]
    )
    launcher = start_foreground(command, env, output, REPO)
    log = run_dir / "torchrun.log"
    wait_for_step(log, 6, launcher, output)  # past the first epoch: checkpoint-last exists
    tree = training_processes(launcher, workers=2)
    assert any("prefect server start" in line for line in tree.values()), tree

    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    wait_gone(tree, timeout=90)  # torchrun, both workers and the Prefect server

    text = log.read_text()
    # Every step the workers logged is in torchrun.log, and so are the lines written after the launcher died.
    for step in logged_steps(run_dir):
        assert f" step {step} " in text
    assert "death signal, shutting down workers" in text and "marked KILLED" in text
    assert mlflow_statuses(runs) == ["KILLED"]

    progress = json.loads((run_dir / "checkpoint-last" / "meta.json").read_text())
    resume = train_command(
        store, runs, "killed", f"training.epochs={progress['epoch'] + 1}", flags=["--nproc-per-node", "2"]
    )
    resumed = subprocess.run(
        resume, cwd=REPO, env=cli_env(*prefect_server), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["resumed_from"].endswith("checkpoint-last") and result["finished"]
    # Continued from the killed run's checkpoint-last: one more epoch of 2 steps (8 samples, 2 ranks of 2).
    assert (result["start_step"], result["global_step"]) == (
        progress["global_step"],
        progress["global_step"] + 2,
    )
    assert mlflow_statuses(runs) == ["KILLED", "FINISHED"]


def test_ctrl_c_stops_training_once_with_one_line_and_a_second_launcher_is_refused_meanwhile(
    store, prefect_server, tmp_path
):
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "train" / "interrupted"
    env = cli_env(*prefect_server)
    output = tmp_path / "launcher.out"
    launcher = start_foreground(train_command(store, runs, "interrupted", *LONG), env, output, REPO)
    wait_for_step(run_dir / "torchrun.log", 2, launcher, output)
    tree = training_processes(launcher)

    config_before = (run_dir / "config.json").read_text()
    second = subprocess.run(
        train_command(store, runs, "interrupted", "training.epochs=3"), cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: run folder {run_dir.resolve()} is in use by another launch (pid {launcher.pid}); wait for it to "
        "end or choose another --run-name"
    ]
    assert (run_dir / "config.json").read_text() == config_before

    before = output.read_text()
    os.killpg(launcher.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert launcher.wait(timeout=120) == 130
    wait_gone(tree, timeout=60)
    after = output.read_text()[len(before) :]
    # One line says what happened; the only other lines are workers' lines still on their way to the log.
    own = [line for line in after.splitlines() if " rank0 " not in line]
    assert own == [
        "interrupted: torchrun and its workers were stopped, the MLflow run is marked KILLED; "
        "`panst3r train --run-name interrupted ...` resumes from the last checkpoint"
    ]
    assert "Traceback" not in output.read_text()
    torchrun_log = (run_dir / "torchrun.log").read_text()
    assert torchrun_log.count("rank 0/1 on cpu") == 1  # launched once: the interrupt was not retried
    assert mlflow_statuses(runs) == ["KILLED"]


def test_sigterm_of_the_launcher_ends_its_tree_and_marks_the_run_killed(store, prefect_server, tmp_path):
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "train" / "terminated"
    output = tmp_path / "launcher.out"
    launcher = start_foreground(
        train_command(store, runs, "terminated", *LONG), cli_env(*prefect_server), output, REPO
    )
    wait_for_step(run_dir / "torchrun.log", 2, launcher, output)
    tree = training_processes(launcher)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=120) == 130
    wait_gone(tree, timeout=60)
    assert "death signal, shutting down workers" in (run_dir / "torchrun.log").read_text()
    assert mlflow_statuses(runs) == ["KILLED"]
    assert "Traceback" not in output.read_text()
