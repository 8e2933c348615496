"""Undistortion and rescale of one ScanNet++ DSLR frame (OPENCV_FISHEYE 1752x1168 -> 1035x690, LANCZOS):
OpenCV and Pillow on one CPU thread against the torch path of the preprocessing on a device, through the
same `datasets.preprocess.frame_device` operations the workers use, host frame in and host pixels out, with
a check that both give the same pixels.

    .venv/bin/python tests/benchmarks/frame_device.py --device cuda --json docs/benchmarks/frame_device.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from datasets.preprocess.frame_device import (
    CpuFrameOps,
    TorchFrameOps,
    matching_remap_variant,
    resize_matches_pillow,
)
from datasets.preprocess.rescale_plan import rescale_plan
from datasets.preprocess.undistort import undistortion_maps
from datasets.scannetpp.record import CameraModel

DSLR = CameraModel("OPENCV_FISHEYE", 1752, 1168, (790.0, 791.0, 877.2, 583.9, 0.05, -0.02, 0.01, -0.003))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="torch device of the torch path (default cuda)")
    parser.add_argument("--frames", type=int, default=24, help="timed frames per path (default 24)")
    parser.add_argument(
        "--target-resolution", type=int, default=920, help="preprocess resolution (default 920)"
    )
    parser.add_argument("--json", default=None, help="also write the result to this file")
    return parser.parse_args(argv)


def frames(count: int) -> list[np.ndarray]:
    """Smoothed noise: every weight of the filters matters, as in a photograph's fine texture."""
    rng = np.random.default_rng(0)
    shape = (DSLR.height, DSLR.width, 3)
    return [cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 1.0) for _ in range(count)]


def seconds_per_frame(ops, images: list[np.ndarray], maps, plan, count: int) -> tuple[float, np.ndarray]:
    """Mean seconds of undistort + rescale over `count` frames after one warm-up, and the warm-up's pixels."""
    first = np.asarray(ops.rescale(ops.undistort(images[0], maps), plan))
    started = time.perf_counter()
    for index in range(count):
        np.asarray(ops.rescale(ops.undistort(images[index % len(images)], maps), plan))
    return (time.perf_counter() - started) / count, first


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cv2.setNumThreads(1)  # a preprocessing worker's one core
    torch.set_num_threads(1)
    maps = undistortion_maps(DSLR)
    plan = rescale_plan(DSLR.width, DSLR.height, args.target_resolution)
    images = frames(min(args.frames, 8))
    variant = matching_remap_variant(args.device)
    if variant is None or not resize_matches_pillow(args.device):
        raise SystemExit(
            f"torch on {args.device} does not reproduce this machine's OpenCV/Pillow bit for bit"
        )
    cpu_seconds, cpu_pixels = seconds_per_frame(CpuFrameOps(), images, maps, plan, args.frames)
    ops = TorchFrameOps(args.device, variant)
    torch_seconds, torch_pixels = seconds_per_frame(ops, images, maps, plan, args.frames)
    result = {
        "frame": f"OPENCV_FISHEYE {DSLR.width}x{DSLR.height} -> {plan.out_size[0]}x{plan.out_size[1]}",
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "opencv": cv2.__version__,
        "remap_variant": variant,
        "frames": args.frames,
        "cpu_seconds_per_frame": round(cpu_seconds, 4),
        "torch_seconds_per_frame": round(torch_seconds, 4),
        "speedup": round(cpu_seconds / torch_seconds, 1),
        "identical_pixels": bool(np.array_equal(cpu_pixels, torch_pixels)),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["identical_pixels"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
