"""What workers settle before training, in real processes over a real TCPStore and gloo group: ranks from node
ranks (a node rank given twice is refused on every rank), rank 0's config, one resume point for all."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from flows import worker_group

pytestmark = pytest.mark.slow  # five pairs of spawned processes


def _spawn(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        processes = [context.Process(target=target, args=(index, *args, results)) for index in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0
        return dict(results)


def _claim(index, port, node_ranks, results):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="1",
        LOCAL_RANK="0",
        RANK=str(index),  # torchrun's order: not the node order
        PANST3R_NNODES="2",
        PANST3R_NODE_RANK=str(node_ranks[index]),
        TORCHELASTIC_USE_AGENT_STORE="True",
        TORCHELASTIC_RESTART_COUNT="0",
    )
    try:
        worker_group.assign_node_rank()
        results[index] = int(os.environ["RANK"])
    except ValueError as exc:
        results[index] = str(exc)
    sys.stdout.flush()


def test_ranks_follow_node_ranks_and_a_node_rank_given_twice_is_refused_everywhere():
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    assert _spawn(_claim, store.port, [1, 0]) == {0: 1, 1: 0}
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    refused = _spawn(_claim, store.port, [0, 0])
    assert all("--node-rank 0 was given to 2 nodes" in message for message in refused.values())


def _settle(rank, init_file, run_dirs, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        config = worker_group.shared_config(Path(run_dirs[rank]), rank)
        try:
            worker_group.check_same_resume_point(run_dirs[rank], 2)
            results[rank] = (config, None)
        except ValueError as exc:
            results[rank] = (config, str(exc))
    finally:
        dist.destroy_process_group()


def _checkpoint(run_dir: Path, step: int) -> None:
    import torch

    from panst3r_core.engine.checkpointing import Progress, save_checkpoint

    save_checkpoint(run_dir / "checkpoint-last", torch.nn.Linear(2, 2), {}, Progress(1, 0, step), {"rng": []})


def test_rank_0s_config_reaches_every_rank_and_ranks_must_resume_from_one_checkpoint(tmp_path):
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    node0.mkdir()
    node1.mkdir()  # a node without a shared filesystem: node 0's files are not there
    (node0 / "config.json").write_text(json.dumps({"training": {"epochs": 3}}))
    dirs = [str(node0), str(node1)]
    fresh = _spawn(_settle, str(tmp_path / "init-a"), dirs)
    assert fresh == {rank: ({"training": {"epochs": 3}}, None) for rank in (0, 1)}
    _checkpoint(node0, step=4)
    resumed = _spawn(_settle, str(tmp_path / "init-b"), dirs)
    for _, error in resumed.values():
        assert "rank 0: step 4, rank 1: nothing" in error and "shared filesystem" in error
    _checkpoint(node1, step=4)  # checkpoint-last copied to the other node
    assert all(error is None for _, error in _spawn(_settle, str(tmp_path / "init-c"), dirs).values())
