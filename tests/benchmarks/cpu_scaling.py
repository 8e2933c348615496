"""How much a host slows each of N busy processes by itself: a fixed CPU workload in N processes at once, with
no orchestration and no I/O, its per-process throughput relative to the fewest processes (normally 1 alone).

Two kernels, each run for `--seconds` by every process at once (released together by a barrier):

- `zlib`: zlib.compress at level 6 of a fixed 256 KiB buffer (random and repetitive runs): compute bound, it
  fits in L2, so it follows the all-core clock and SMT siblings;
- `copy`: np.copyto of a 64 MiB uint8 array into another: memory bound, it follows the shared memory
  bandwidth; GB/s counts the bytes read and written (STREAM's convention), per process and in total.

A preprocessing worker whose per-frame time grows with the worker count (tests/benchmarks/preprocess.py)
is compared with these: where they slow down as much, the host is the cause. Processes start with one
OpenMP/MKL/OpenBLAS thread, as the preprocess workers do.

    .venv/bin/python tests/benchmarks/cpu_scaling.py --processes 1 8 16 --json runs/benchmarks/cpu_scaling.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # The sibling import below, and spawned processes importing this script (loaded as `cpu_scaling` by the
    # tests); appended, so that the folder's scripts shadow no installed module.
    sys.path.append(str(HERE))

from host_info import cpu_description, environment  # noqa: E402  (tests/benchmarks/host_info.py)

KERNELS = ("zlib", "copy")
ZLIB_BYTES = 256 * 1024
COPY_BYTES = 64 * 2**20
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare (default 1 2)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per kernel (default 3)")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    if min(args.processes) < 1 or args.seconds <= 0:
        parser.error("--processes must be at least 1 and --seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [measure(n, args.seconds) for n in args.processes]
    add_relative(rows)
    result = {
        "benchmark": "cpu_scaling",
        "machine": f"{os.cpu_count()} CPUs ({cpu_description()})",
        "settings": {"processes": args.processes, "seconds": args.seconds},
        "rows": rows,
    }
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"results written to {args.json}")
    return 0


def measure(processes: int, seconds: float) -> dict:
    """Both kernels in `processes` spawned processes at once: per-process and total throughput of each."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: the thread settings apply at import
    barrier = context.Barrier(processes)
    results = context.Queue()
    with environment(ONE_THREAD):
        workers = [
            context.Process(target=run_kernels, args=(barrier, results, seconds)) for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
    reports = [results.get(timeout=60 + 10 * seconds) for _ in workers]
    for worker in workers:
        worker.join()
    row: dict = {"processes": processes}
    for kernel, unit in (("zlib", "mb_per_second"), ("copy", "gb_per_second")):
        rates = sorted((r[kernel] for r in reports), reverse=True)
        row[kernel] = {
            f"{unit}_per_process": [round(rate, 3) for rate in rates],
            f"mean_{unit}_per_process": round(sum(rates) / len(rates), 3),
            f"total_{unit}": round(sum(rates), 3),
        }
    return row


def run_kernels(barrier, results, seconds: float) -> None:
    """One process: its buffers made and each kernel run once untimed, then per kernel a barrier (all start
    together) and `seconds` of calls. Puts {kernel: throughput}: zlib in input MB/s, copy in GB/s moved."""
    data = compressible_buffer()
    source, target = np.full(COPY_BYTES, 7, dtype=np.uint8), np.zeros(COPY_BYTES, dtype=np.uint8)
    calls = {
        "zlib": (lambda: zlib.compress(data, 6), ZLIB_BYTES / 1e6),
        "copy": (lambda: np.copyto(target, source), 2 * COPY_BYTES / 1e9),  # read + written
    }
    rates = {}
    for kernel in KERNELS:
        call, amount = calls[kernel]
        call()  # pages touched, code warm
        barrier.wait()
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            call()
            count += 1
        rates[kernel] = count * amount / elapsed
    results.put(rates)


def compressible_buffer() -> bytes:
    """256 KiB of alternating 4 KiB runs: random bytes (incompressible) and a short repeated phrase, so that
    zlib both searches for matches and emits literals; the same bytes in every process and run."""
    rng = np.random.default_rng(0)
    phrase = (b"panst3r preprocess frame " * 200)[:4096]
    runs = [rng.bytes(4096) if i % 2 else phrase for i in range(ZLIB_BYTES // 4096)]
    return b"".join(runs)


def add_relative(rows: list[dict]) -> None:
    """Each kernel's mean per-process throughput relative to the row of the fewest processes (1 = no slowdown)."""
    base = min(rows, key=lambda r: r["processes"])
    for row in rows:
        for kernel, unit in (("zlib", "mb_per_second"), ("copy", "gb_per_second")):
            key = f"mean_{unit}_per_process"
            row[kernel]["relative_per_process"] = round(row[kernel][key] / base[kernel][key], 3)


def table(result: dict) -> str:
    """The rows as a Markdown table under the machine line."""
    header = [
        "processes", "zlib MB/s per process", "zlib relative", "zlib MB/s total",
        "copy GB/s per process", "copy relative", "copy GB/s total",
    ]  # fmt: skip
    lines = [
        f"cpu scaling on {result['machine']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in result["rows"]:
        zlib_row, copy_row = row["zlib"], row["copy"]
        cells = [
            row["processes"],
            zlib_row["mean_mb_per_second_per_process"],
            zlib_row["relative_per_process"],
            zlib_row["total_mb_per_second"],
            copy_row["mean_gb_per_second_per_process"],
            copy_row["relative_per_process"],
            copy_row["total_gb_per_second"],
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
