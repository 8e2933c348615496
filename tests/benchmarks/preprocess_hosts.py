"""Preprocessing throughput over 1, 2, 3 ... Dask "hosts": network namespaces on this machine, each with its
own address (tests/dask_hosts.py), `dask scheduler` on one more, and `panst3r preprocess --dask-address`
run as a user runs it, into a fresh store each time (same scenes). Needs root (`ip netns`).

    .venv/bin/python tests/benchmarks/preprocess_hosts.py --hosts 1 2 3 --scenes 12 --frames 8

The hosts share this machine's cores: the numbers show what the cluster path costs and how it spreads
work, not what separate machines would add. Prints a table and writes JSON under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# the test helpers this shares with the multi-host test: tests/dask_hosts.py, tests/integration/_preprocess_support.py
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]

from _preprocess_support import start_prefect_server  # noqa: E402
from dask_hosts import DaskHosts, namespaces_unavailable  # noqa: E402
from preprocess import machine_description  # noqa: E402  (tests/benchmarks/preprocess.py)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3], help="worker hosts to compare")
    parser.add_argument("--scenes", type=int, default=12, help="synthetic scenes (default 12)")
    parser.add_argument("--frames", type=int, default=8, help="DSLR frames per scene (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--target-resolution", type=int, default=920, help="preprocess resolution (default 920)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured runs first on each cluster (worker imports, EGL set-up)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per host count; the median is reported")
    parser.add_argument("--out", default=str(REPO / "runs" / "benchmarks"), help="results folder")
    parser.add_argument("--label", default="", help="free text stored with the results (e.g. the machine)")
    return parser.parse_args()


def preprocess_once(hosts: DaskHosts, env: dict, root: Path, store: Path, summary: Path, args) -> dict:
    """One `panst3r preprocess --dask-address` into a fresh `store`; the summary plus the command's wall time."""
    command = [
        sys.executable, "-m", "flows.cli.main", "preprocess", "--root", str(root), "--pairs",
        str(root.parent / "pairs"), "--store", str(store), "--target-resolution", str(args.target_resolution),
        "--dask-address", hosts.address, "--summary-json", str(summary),
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"preprocess failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return {**json.loads(summary.read_text()), "wall_seconds": wall}


def measure(worker_hosts: int, work: Path, root: Path, args) -> dict:
    runs = []
    with DaskHosts(worker_hosts, work / f"hosts{worker_hosts}") as hosts:
        server = start_prefect_server(work / "prefect", host=hosts.gateway)
        env = {
            **os.environ,
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        try:
            for repeat in range(args.warmup + args.repeats):
                store = work / f"store-{worker_hosts}-{repeat}"
                load = os.getloadavg()[0]
                run = preprocess_once(hosts, env, root, store, work / "summary.json", args)
                if repeat >= args.warmup:
                    runs.append({**run, "load_before": load})
                shutil.rmtree(store)
        finally:
            server.stop()
    frames = runs[0]["frames"]
    flow_fps = [run["frames"] / run["seconds"] for run in runs]
    wall_fps = [run["frames"] / run["wall_seconds"] for run in runs]
    return {
        "worker_hosts": worker_hosts,
        "scenes": len(runs[0]["done"]),
        "frames": frames,
        "frames_per_second": round(statistics.median(flow_fps), 3),
        "frames_per_second_wall": round(statistics.median(wall_fps), 3),
        "flow_seconds": [round(run["seconds"], 2) for run in runs],
        "wall_seconds": [round(run["wall_seconds"], 2) for run in runs],
        "load_average_before": [round(run["load_before"], 2) for run in runs],
    }


def main() -> int:
    args = parse_args()
    reason = namespaces_unavailable()
    if reason:
        raise SystemExit(f"this benchmark needs network namespaces: {reason}")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from datasets.synthetic.generate import generate_dataset

    work = Path(tempfile.mkdtemp(prefix="panst3r_hosts_bench_"))
    root = work / "root"
    generate_dataset(root, args.scenes, seed=args.seed, frames=args.frames, iphone=False, pairs_dir=work / "pairs")
    rows = [measure(count, work, root, args) for count in args.hosts]
    shutil.rmtree(work, ignore_errors=True)

    base = rows[0]["frames_per_second"]
    for row in rows:
        row["speedup"] = round(row["frames_per_second"] / base, 2)
    header = ["worker_hosts", "scenes", "frames", "frames_per_second", "frames_per_second_wall", "speedup"]
    table = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    )
    machine = machine_description()
    print(f"\npreprocess over Dask hosts (network namespaces) on {machine}\n{table}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    result = {"machine": machine, "label": args.label, "settings": settings, "rows": rows, "time": stamp}
    path = out / f"preprocess_hosts-{stamp}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
