import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from panst3r_core.losses.distributed import all_reduce_mean, average_num_masks


def test_without_process_group_num_masks_is_clamped_local_count():
    assert average_num_masks(0) == 1.0
    assert average_num_masks(0.4) == 1.0
    assert average_num_masks(7) == 7.0
    assert all_reduce_mean({"a": 2.5}) == {"a": 2.5}


def _worker(rank: int, world_size: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        local = [3, 0][rank]
        results[rank] = (
            average_num_masks(local),
            average_num_masks(0),
            all_reduce_mean({"loss": float(rank + 1), "other": 10.0 * rank}),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # gloo threads can abort at interpreter exit (see the environment notes); skip finalisation.
    sys.stdout.flush()
    os._exit(0)


def test_num_masks_is_the_mean_over_ranks(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        mean_count, empty_count, reduced = results[rank]
        assert mean_count == 1.5  # (3 + 0) / 2
        assert empty_count == 1.0  # clamped
        assert reduced == {"loss": 1.5, "other": 5.0}
