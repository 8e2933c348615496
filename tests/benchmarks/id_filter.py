"""Time of the per-frame id filter (`datasets.preprocess.panoptic.IdFilter`) on frames of the preprocessing's
size: ids drawn from a scene's valid ids, a border of ids no vertex has, small segments below the area
threshold. The filter is built once per scene; only its call on a frame is timed (median of repeats).

    .venv/bin/python tests/benchmarks/id_filter.py --json docs/benchmarks/id_filter_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=[920, 613], metavar=("W", "H"), help="frame size"
    )
    parser.add_argument("--valid-ids", type=int, default=400, help="valid ids of the scene (default 400)")
    parser.add_argument(
        "--largest-id", type=int, nargs="+", default=[5_000, 10_000_000],
        help="largest valid id: small ids take the lookup table, very large ones the binary search",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per case (default 50)")
    parser.add_argument("--label", default="", help="what code this is (kept in the JSON)")
    parser.add_argument("--json", type=Path, help="write the result here too")
    return parser.parse_args(argv)


def make_frame(width: int, height: int, valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blocky segments of valid ids (8x8 blocks), a border of an id that is not valid."""
    blocks = rng.choice(valid, (height // 8 + 1, width // 8 + 1))
    frame = np.kron(blocks, np.ones((8, 8), dtype=np.uint32))[:height, :width].astype(np.uint32)
    frame[: height // 12] = np.uint32(valid.max() + 7)
    return np.ascontiguousarray(frame)


def time_case(width: int, height: int, valid_count: int, largest: int, repeats: int) -> dict:
    from datasets.preprocess.panoptic import IdFilter

    rng = np.random.default_rng(0)
    valid = rng.choice(np.arange(1, largest + 1, dtype=np.uint32), valid_count, replace=False)
    frame = make_frame(width, height, valid, rng)
    id_filter = IdFilter(valid)
    id_filter(frame)  # first call outside the timing
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        id_filter(frame)
        seconds.append(time.perf_counter() - started)
    return {"largest_id": largest, "ms_per_frame": round(1e3 * float(np.median(seconds)), 3)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    width, height = args.size
    rows = [time_case(width, height, args.valid_ids, largest, args.repeats) for largest in args.largest_id]
    for row in rows:
        print(f"largest id {row['largest_id']:>10}: {row['ms_per_frame']:.2f} ms a {width}x{height} frame")
    if args.json:
        result = {
            "what": f"IdFilter call on a {width}x{height} frame of {args.valid_ids} valid ids",
            "label": args.label,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "repeats": args.repeats,
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
