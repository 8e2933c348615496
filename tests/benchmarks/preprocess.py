"""Preprocessing throughput: frames per second of the `preprocess` flow with 1, 2, ... Dask workers on the
same synthetic scenes (each run into a fresh store, one Prefect server shared by all runs), into a local
directory and/or an object store (`--stores local s3`: a SeaweedFS S3 server on loopback started here), with
each scene's commit latency (the rename, or the Icechunk transaction).

    .venv/bin/python tests/benchmarks/preprocess.py --scenes 4 --frames 8 --workers 1 2
    .venv/bin/python tests/benchmarks/preprocess.py --scenes 4 --frames 8 --workers 1 2 --stores local s3

Prints a table and writes it (JSON + Markdown) under --out (default runs/benchmarks/).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes (default 4)")
    parser.add_argument("--frames", type=int, default=8, help="DSLR frames per scene (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="generator size"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)"
    )
    parser.add_argument(
        "--target-resolution", type=int, default=920, help="preprocess resolution (default 920)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per configuration, interleaved; medians reported (default 1)",
    )
    parser.add_argument(
        "--stores", nargs="+", default=["local"], choices=("local", "s3"), help="store kinds (default local)"
    )
    parser.add_argument("--root", default=None, help="use this ScanNet++ root instead of generating one")
    parser.add_argument("--pairs", default=None, help="pairs folder of --root")
    parser.add_argument("--out", default=str(REPO / "runs" / "benchmarks"), help="results folder")
    parser.add_argument("--label", default="", help="free text stored with the results (e.g. the machine)")
    return parser.parse_args()


def machine_description() -> str:
    gpu = ""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True).stdout.strip().replace("\n", ", ")
    return f"{platform.node()} {os.cpu_count()} CPUs {platform.machine()}" + (f", GPU {gpu}" if gpu else "")


def main() -> int:
    args = parse_args()
    from flows.prefect_env import configure_prefect_env, quiet_chatty_loggers

    work = Path(tempfile.mkdtemp(prefix="panst3r_bench_"))
    configure_prefect_env(work / "prefect")
    quiet_chatty_loggers()
    try:
        root, pairs = benchmark_inputs(args, work)
        with object_store(args, work) as s3:
            rows = measure_workers(args, root, pairs, work, s3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, rows)
    return 0


def benchmark_inputs(args: argparse.Namespace, work: Path) -> tuple[Path, Path | None]:
    """(ScanNet++ root, pairs folder): --root, or synthetic scenes generated into `work`."""
    if args.root:
        return Path(args.root), Path(args.pairs) if args.pairs else None
    from datasets.synthetic.generate import generate_dataset

    root, pairs = work / "root", work / "pairs"
    started = time.perf_counter()
    kwargs = {"image_size": tuple(args.image_size)} if args.image_size else {}
    generate_dataset(
        out_root=root, num_scenes=args.scenes, seed=args.seed, frames=args.frames, iphone=False, pairs_dir=pairs,
        **kwargs,
    )  # fmt: skip
    print(f"generated {args.scenes} scenes in {time.perf_counter() - started:.1f} s under {root}")
    return root, pairs


@contextmanager
def object_store(args: argparse.Namespace, work: Path):
    """A SeaweedFS S3 server for the run when `--stores` asks for s3 (its variables set for the workers)."""
    if "s3" not in args.stores:
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from s3_server import SeaweedS3

    with SeaweedS3(work / "seaweedfs") as s3:
        os.environ.update(s3.env())
        yield s3


def measure_workers(args: argparse.Namespace, root: Path, pairs: Path | None, work: Path, s3) -> list[dict]:
    """The flow into a fresh store per worker count and store kind, all against one Prefect server."""
    from datasets.store.tables import read_table
    from flows.prefect_env import LocalServer, drain_prefect_clients, free_port

    server = LocalServer(free_port()).start()
    os.environ["PREFECT_API_URL"] = server.api_url
    rows = []
    try:
        from flows.preprocess import run_preprocess

        for attempt, workers, kind in itertools.product(range(args.repeat), args.workers, args.stores):
            name = f"store_w{workers}_{kind}_{attempt}"
            store = str(work / name) if kind == "local" else s3.url(f"bench/{name}-{time.time_ns()}")
            started = time.perf_counter()
            summary = run_preprocess(
                str(root),
                str(store),
                pairs=str(pairs) if pairs else None,
                target_resolution=args.target_resolution,
                workers=workers,
            )
            wall = time.perf_counter() - started
            if summary["failed"]:
                raise SystemExit(f"benchmark scenes failed: {summary['failed']}")
            frames = summary["frames"]
            scenes_table = read_table(store, "scenes")
            stages = {
                c.removeprefix("seconds_"): round(float(scenes_table[c].sum()) / frames, 4)
                for c in scenes_table
                if c.startswith("seconds_")
            }
            commits = sorted(summary["commit_seconds"].values())
            rows.append(
                {
                    "store": kind,
                    "workers": workers,
                    "scenes": len(summary["done"]),
                    "frames": frames,
                    "flow_seconds": round(summary["seconds"], 2),
                    "wall_seconds": round(wall, 2),
                    "frames_per_second": round(frames / summary["seconds"], 3),
                    "frames_per_second_wall": round(frames / wall, 3),
                    "commit_seconds_median": round(statistics.median(commits), 4),
                    "commit_seconds_max": round(commits[-1], 4),
                    "task_seconds_per_frame_by_stage": stages,
                }
            )
            if kind == "local":
                shutil.rmtree(store, ignore_errors=True)
    finally:
        drain_prefect_clients()
        server.stop()
    return median_rows(rows)


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (store, workers): the median of every number over the repeats (stages of the first)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["store"], row["workers"]), []).append(row)
    merged = []
    for group in groups.values():
        row = dict(group[0], runs=len(group))
        for key, value in group[0].items():
            if isinstance(value, float):
                row[key] = round(statistics.median(r[key] for r in group), 4)
        merged.append(row)
    return merged


def report(args: argparse.Namespace, rows: list[dict]) -> None:
    """The table on stdout and, with the settings and the machine, as JSON and Markdown under --out."""
    slowest = sorted(rows[0]["task_seconds_per_frame_by_stage"].items(), key=lambda kv: -kv[1])[:5]
    print("task seconds per frame by stage (1st run):", ", ".join(f"{k} {v:.3f}" for k, v in slowest))
    base = rows[0]["frames_per_second"]
    for row in rows:
        row["speedup"] = round(row["frames_per_second"] / base, 2)
    header = [
        "store", "workers", "scenes", "frames", "flow_seconds", "wall_seconds", "frames_per_second", "speedup",
        "commit_seconds_median", "commit_seconds_max",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    table = "\n".join(lines)
    machine = machine_description()
    settings = f"{args.scenes} scenes x {args.frames} frames, target resolution {args.target_resolution}"
    print(f"\npreprocess benchmark on {machine} ({settings})\n{table}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {"machine": machine, "label": args.label, "settings": vars(args), "rows": rows, "time": stamp}
    (out / f"preprocess-{stamp}.json").write_text(json.dumps(result, indent=1))
    (out / f"preprocess-{stamp}.md").write_text(
        f"preprocess benchmark on {machine} ({settings})\n\n{table}\n"
    )
    print(f"results written to {out}/preprocess-{stamp}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
