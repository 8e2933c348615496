"""What one task costs the orchestration: a Prefect task on the Dask task runner against a plain Dask task
submitted by `flows.plain_dask_tasks` (how the preprocess flow runs frame chunks), both doing nothing.

Inside one flow run on a real Prefect server and a one-worker Dask LocalCluster, N tasks of each kind are
submitted and then waited for. Per task: the flow process's wall time to submit, the wall time until all
ended, and the flow process's CPU (what limits how many workers one flow can feed).

    .venv/bin/python tests/benchmarks/task_overhead.py --tasks 200 --json docs/benchmarks/task_overhead_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100, help="tasks of each kind (default 100)")
    parser.add_argument("--json", type=Path, help="write the result here too")
    return parser.parse_args(argv)


def _nothing(index: int, payload: dict) -> int:
    return index


def measure(tasks: int) -> dict:
    """Both kinds of task inside one flow run; seconds per task."""
    from distributed import LocalCluster
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect_dask import DaskTaskRunner

    from datasets.preprocess.error_kinds import is_permanent
    from flows.plain_dask_tasks import flow_run_client, plain_outcome, submit_plain

    prefect_task = task(_nothing, name="nothing", cache_policy=NO_CACHE, persist_result=False, retries=2)
    payload = {"config": {"target_resolution": 920}, "frames": list(range(32))}

    def timed(submit_all, wait_all) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        futures = submit_all()
        submitted = time.perf_counter() - wall
        wait_all(futures)
        return {
            "submit_ms": round(1000 * submitted / tasks, 2),
            "end_to_end_ms": round(1000 * (time.perf_counter() - wall) / tasks, 2),
            "flow_process_cpu_ms": round(1000 * (time.process_time() - cpu) / tasks, 2),
        }

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:

        @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        def both() -> dict:
            client = flow_run_client()
            plain = timed(
                lambda: [
                    submit_plain(client, "nothing", _nothing, i, payload, retries=2, retry_delay_seconds=2,
                                 is_permanent=is_permanent)
                    for i in range(tasks)
                ],
                lambda futures: [plain_outcome(f) for f in futures],
            )  # fmt: skip
            prefect = timed(
                lambda: [prefect_task.submit(i, payload) for i in range(tasks)],
                lambda futures: [f.result() for f in futures],
            )
            return {"prefect_task": prefect, "plain_dask_task": plain}

        return both()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from flows.prefect_env import LocalServer, configure_prefect_env, drain_prefect_clients, free_port

    with tempfile.TemporaryDirectory() as home:
        configure_prefect_env(home)
        server = LocalServer(free_port()).start()
        os.environ["PREFECT_API_URL"] = server.api_url
        try:
            per_task = measure(args.tasks)
        finally:
            drain_prefect_clients()
            server.stop()
    result = {
        "what": "orchestration cost of one task that does nothing, inside one flow run (real Prefect server, "
        "one-worker Dask LocalCluster)",
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "tasks_of_each_kind": args.tasks,
        "per_task": per_task,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
