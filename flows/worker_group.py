"""What a torchrun worker settles with the other ranks before it trains: its global rank (from its node's
`--node-rank`), the run config (rank 0's) and the checkpoint every rank resumes from.

Why: torchrun's c10d rendezvous numbers nodes by (host name, pid), not by `--node-rank`, and the project needs
node 0 to hold global rank 0: node 0's launcher owns the MLflow run and the run folder's shared files, and rank
0 writes the checkpoints there. Ranks on other nodes may not see node 0's run folder at all (no shared
filesystem): they take the config from rank 0, and refuse to train when they would resume from another
checkpoint than rank 0 (their optimizer state would silently differ).

Imports no Prefect (it runs in the worker).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist

from flows.run_folder import NNODES_ENV, NODE_RANK_ENV, read_config
from panst3r_core.engine.checkpointing import find_resume_checkpoint, read_progress

JOIN_TIMEOUT_S = 300.0
"""How long a worker waits for the other ranks to claim their ranks."""


def assign_node_rank() -> None:
    """Under a multi-node launch: RANK = node rank x local world size + local rank, checked through the
    rendezvous store (every rank claims its number; a number claimed twice means two nodes were given the
    same --node-rank). Nothing to do on one node."""
    nnodes = int(os.environ.get(NNODES_ENV, "1"))
    if nnodes <= 1 or "LOCAL_RANK" not in os.environ:
        return
    node_rank = int(os.environ[NODE_RANK_ENV])
    local_world = int(os.environ["LOCAL_WORLD_SIZE"])
    world = int(os.environ["WORLD_SIZE"])
    if world != nnodes * local_world:
        raise ValueError(
            f"{world} ranks joined the rendezvous, but --nnodes {nnodes} x --nproc-per-node {local_world} makes "
            f"{nnodes * local_world}: give every node the same --nnodes and --nproc-per-node"
        )
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise ValueError(
            "multi-node training needs torchrun's shared rendezvous store: unset TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
        )
    rank = node_rank * local_world + int(os.environ["LOCAL_RANK"])
    claims = _claim_rank(rank, world)
    if claims != 1:
        raise ValueError(
            f"--node-rank {node_rank} was given to {claims} nodes; give each node its own rank in 0..{nnodes - 1}"
        )
    os.environ["RANK"] = str(rank)


def _claim_rank(rank: int, world: int) -> int:
    """How many workers claimed `rank`, once all `world` of them have claimed theirs."""
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(seconds=JOIN_TIMEOUT_S),
    )
    prefix = f"panst3r/node_ranks/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store.add(f"{prefix}/rank{rank}", 1)
    store.add(f"{prefix}/joined", 1)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while store.add(f"{prefix}/joined", 0) < world:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every rank claimed its number within {JOIN_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return int(store.add(f"{prefix}/rank{rank}", 0))


def shared_config(run_dir: Path, rank: int) -> dict[str, Any]:
    """Rank 0's config.json, on every rank (collective)."""
    holder = [read_config(run_dir) if rank == 0 else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def check_same_resume_point(output_dir: str | Path, world: int) -> None:
    """ValueError on every rank unless all ranks would resume from the same step (collective)."""
    found = find_resume_checkpoint(output_dir)
    step = read_progress(found).global_step if found is not None else None
    steps: list[int | None] = [None] * world
    dist.all_gather_object(steps, step)
    if len(set(steps)) > 1:
        seen = ", ".join(
            f"rank {rank}: {'nothing' if step is None else f'step {step}'}" for rank, step in enumerate(steps)
        )
        raise ValueError(
            f"the ranks would resume from different checkpoints in {output_dir} ({seen}): every node must see "
            "node 0's run folder (a shared filesystem), or copy node 0's checkpoint-last into the same folder on "
            "every node before launching again"
        )
