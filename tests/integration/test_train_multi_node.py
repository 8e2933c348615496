"""Multi-node torchrun (issue 14, point 4): two "nodes" on this machine, two `panst3r train` launchers of one
gloo process each meeting at node 0's c10d rendezvous. Node 1 writes nothing of the run folder's shared
files; a run stopped by its time budget resumes on the two nodes exactly: the same losses at every step and
the same final weights as one node of two processes training without a stop."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from _preprocess_support import REPO, cli_env
from _train_support import toy_train_store, train_command
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

EXPERIMENT = "multi-node-test"
# 16 samples per epoch of 2 per rank on 2 ranks: 4 optimizer steps in the run's one epoch.
ONE_EPOCH = ["data.samples_per_epoch=16", "training.epochs=1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_train_store(tmp_path_factory, "multi_node_store")


def train(store: Path, runs: Path, name: str, *overrides: str, flags: Sequence[str] = ()) -> list[str]:
    return train_command(store, runs, name, EXPERIMENT, *ONE_EPOCH, *overrides, flags=flags)


def two_nodes(
    env, store: Path, runs: tuple[Path, Path], *overrides: str
) -> list[subprocess.CompletedProcess]:
    """Node 1 first (it waits for node 0's rendezvous), then node 0; both must succeed."""
    from flows.prefect_env import free_port

    nodes = ["--nnodes", "2", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    processes = [
        subprocess.Popen(
            train(store, runs[rank], "two-nodes", *overrides, flags=[*nodes, "--node-rank", str(rank)]),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (1, 0)
    ]
    finished = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        assert process.returncode == 0, err[-3000:]
    return finished[::-1]


def losses(run_dir: Path) -> dict[int, float]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return {record["step"]: record["panoptic_loss"] for record in records if record["kind"] == "log"}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoint-final" / "model.safetensors")


def test_two_nodes_resume_exactly_as_one_node_of_two_processes_trains(store, prefect_server, tmp_path):
    # One thread per process everywhere: torchrun sets it only for several processes per node, and another
    # thread count sums in another order (a 1e-7 difference of the loss).
    env = {**cli_env(*prefect_server), "OMP_NUM_THREADS": "1"}
    reference = subprocess.run(
        train(store, tmp_path / "one-node", "reference", flags=["--nproc-per-node", "2"]), cwd=REPO, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = tmp_path / "one-node" / "train" / "reference"

    # First launch, the nodes' run folders apart (as without a shared filesystem): node 1 keeps only its own
    # log and lock; the time budget stops the run after its first step, with checkpoint-last on node 0.
    node0_runs, node1_runs = tmp_path / "node0", tmp_path / "node1"
    first = two_nodes(env, store, (node0_runs, node1_runs), "training.time_budget_s=0")
    run_dir = node0_runs / "train" / "two-nodes"
    assert sorted(p.name for p in (node1_runs / "train" / "two-nodes").iterdir()) == [
        "launch-node1.lock",
        "torchrun-node1.log",
    ]
    assert "node 1 of 2 done for run two-nodes" in first[1].stdout
    assert json.loads((run_dir / "result.json").read_text())["global_step"] == 1
    assert "rank1 INFO" in (node1_runs / "train" / "two-nodes" / "torchrun-node1.log").read_text()

    # Second launch, one folder for both (a shared filesystem): the run resumes and finishes.
    two_nodes(env, store, (node0_runs, node0_runs))
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["world_size"], result["start_step"], result["global_step"]) == (2, 1, 4)
    assert result["resumed_from"].endswith("checkpoint-last") and result["finished"]
    assert "rank1 INFO" not in (run_dir / "torchrun.log").read_text()  # node 1's lines are in its own log
    assert "rank1 INFO" in (run_dir / "torchrun-node1.log").read_text()

    assert losses(run_dir) == losses(expected) and sorted(losses(run_dir)) == [1, 2, 3, 4]
    resumed, uninterrupted = weights(run_dir), weights(expected)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)

    client = MlflowClient(tracking_uri=f"sqlite:///{(node0_runs / 'mlflow.db').resolve()}")
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    # Node 0 records each launch; node 1 records nothing.
    assert sorted(run.info.status for run in runs) == ["FINISHED", "FINISHED"]
    assert {run.data.params["launch.nnodes"] for run in runs} == {"2"}
    assert not (node1_runs / "mlflow.db").exists()
