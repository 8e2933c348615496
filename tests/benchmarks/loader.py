"""Training loader benchmark: samples per second of `StoreViewDataset` through a DataLoader with 0, 2 and 4
worker processes, on a toy store written in the preprocessing layout (no rendering needed).

Each sample = `--views` views read from the Zarr store, cropped around the principal point, rescaled with
aug_crop, colour-jittered, collated at `--resolution`. Prints a table, writes JSON (default
runs/benchmarks/loader.json).

    .venv/bin/python tests/benchmarks/loader.py                      # 920x690 frames -> 5 views at 512x384
    .venv/bin/python tests/benchmarks/loader.py --quick              # small smoke run
    .venv/bin/python tests/benchmarks/loader.py --store STORE --views 12 --resolution 256 192 \
        --batch-size 16 --no-color-jitter                              # the synthetic_head recipe's batches
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from datasets.training.collate import collate_views
from datasets.training.color_jitter import ColorJitter
from datasets.training.dataset import StoreViewDataset, loader_worker_init
from panst3r_core.engine.sampler import BatchedViewSampler

TOY_STORE = Path(__file__).resolve().parents[1] / "toy_store.py"
"""Test support, not part of the library: loaded from its file."""


def write_toy_store(*args, **kwargs) -> Path:
    spec = importlib.util.spec_from_file_location("toy_store", TOY_STORE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_toy_store(*args, **kwargs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2, 4], help="DataLoader worker counts")
    parser.add_argument("--views", type=int, default=5, help="views per sample (default 5)")
    parser.add_argument("--resolution", nargs=2, type=int, default=[512, 384], metavar=("W", "H"))
    parser.add_argument(
        "--frame-size",
        nargs=2,
        type=int,
        default=[920, 690],
        metavar=("W", "H"),
        help="stored frame size (default 920x690, the preprocessing's iPhone size)",
    )
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16, help="frames per scene")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per worker count")
    parser.add_argument("--store", type=Path, default=None, help="use this store instead of a toy one")
    parser.add_argument(
        "--no-color-jitter",
        dest="color_jitter",
        action="store_false",
        help="no colour jitter (data.color_jitter: false, as the synthetic presets train)",
    )
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. the code's commit)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/loader.json"))
    parser.add_argument("--quick", action="store_true", help="tiny frames and few batches (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.frame_size, args.resolution, args.views = [160, 120], [64, 48], 3
        args.scenes, args.frames, args.batches, args.workers = 1, 5, 3, [0, 2]
    return args


def measure(dataset: StoreViewDataset, workers: int, args: argparse.Namespace) -> dict:
    """Samples per second after the first batch (worker start-up and first store opening excluded)."""
    sampler = BatchedViewSampler(
        len(dataset),
        args.batch_size,
        1,
        2,
        args.views,
        samples_per_epoch=(args.batches + 1) * args.batch_size,
        seed=1,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_views,
        num_workers=workers,
        worker_init_fn=loader_worker_init,
    )
    iterator = iter(loader)
    started = time.perf_counter()
    next(iterator)
    warm = time.perf_counter()
    batches = sum(1 for _ in iterator)
    done = time.perf_counter()
    samples = batches * args.batch_size
    return {
        "workers": workers,
        "samples": samples,
        "seconds": done - warm,
        "samples_per_s": samples / (done - warm),
        "first_batch_s": warm - started,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # what a loader worker gets; the main process only collates here
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            store = write_toy_store(
                Path(tmp) / "store", scenes=args.scenes, frames=args.frames, image_size=tuple(args.frame_size)
            )
        dataset = StoreViewDataset(
            [store],
            args.views,
            [tuple(args.resolution)],
            aug_crop=16,
            seed=0,
            split=None,
            transform=ColorJitter() if args.color_jitter else None,
        )
        store_id, scene_id, frame_index = dataset.index.image(0)
        height, width = dataset.read_frame(store_id, scene_id, frame_index)["image"].shape[:2]
        args.frame_size = [width, height]  # what the store holds (a given store's own size)
        rows = [measure(dataset, workers, args) for workers in args.workers]
    report = {
        "benchmark": "loader",
        "views": args.views,
        "resolution": args.resolution,
        "frame_size": args.frame_size,
        "batch_size": args.batch_size,
        "color_jitter": args.color_jitter,
        "label": args.label,
        "cpu_count": os.cpu_count(),
        "machine": platform.node(),
        "torch": torch.__version__,
        "results": rows,
    }
    print(
        f"\nloader: {args.views} views at {args.resolution[0]}x{args.resolution[1]} from "
        f"{args.frame_size[0]}x{args.frame_size[1]} frames, {os.cpu_count()} CPUs"
    )
    print(f"{'workers':>8} {'samples/s':>10} {'views/s':>9} {'first batch s':>14}")
    for row in rows:
        print(
            f"{row['workers']:>8} {row['samples_per_s']:>10.2f} {row['samples_per_s'] * args.views:>9.1f} "
            f"{row['first_batch_s']:>14.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
