"""Start-up of `panst3r preprocess`: where the seconds go before the first scene starts.

Drives the real CLI in a subprocess on synthetic scenes (default 4 x 24 frames, `panst3r synth`) and reads
each phase's moment from the run's own log lines:

    imports done        "flow modules imported"        (the CLI, once prefect and the flow are loaded)
    API reachable       "Prefect server ... answers" / "Prefect server up at"
    flow run started    "Beginning flow run"
    Dask cluster up     "Dask cluster up" / "The Dask dashboard is available" (older code)
    first scene start   the first "scene X done: N frames, S s" line minus its S seconds
    first scene done    the first "scene X done" line
    end                 the process's exit, seen from here

Modes: `cold` (a fresh PREFECT_HOME and an empty cache: the CLI starts a temporary server that creates its
database), `fresh-home` (a fresh PREFECT_HOME, the cache holding the empty database an earlier run left, see
flows.prefect_home_template; older code ignores it), `warm-home` (a PREFECT_HOME whose database exists from
an earlier run), `served` (`panst3r serve --workers N` already running, PREFECT_API_URL pointing at it: the
CLI run uses serve's warm workers where the code has them), `deployment` (no CLI: a run of the served
`preprocess/local` deployment created through the REST API, as `prefect deployment run` does, timed from that
request; its phases come from the flow run's logs, which name no imports and no cluster). Runs are
interleaved over modes and `--code` trees (e.g. the main branch's checkout against this one), each into a
fresh store; each worker count gets its own `panst3r serve` per tree; the table shows medians.

    .venv/bin/python tests/benchmarks/preprocess_startup.py --runs 3 --modes cold served
    .venv/bin/python tests/benchmarks/preprocess_startup.py --code before=../main after=. --json out.json
    .venv/bin/python tests/benchmarks/preprocess_startup.py --modes served deployment --workers 1 2

A phase missing from a run's log (older code logs fewer of them) is left empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODES = ("cold", "fresh-home", "warm-home", "served", "deployment")
SERVED_MODES = ("served", "deployment")
SERVED_CACHE = "cache-served"
DEPLOYMENT = "preprocess/local"
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
PHASES = ("imports", "api", "flow_run", "cluster", "first_scene_start", "first_scene_done", "end")
# phase -> the log line marking it (the first match counts); timestamps are the CLI logger's asctime.
MARKERS = {
    "imports": re.compile(r"flow modules imported"),
    "api": re.compile(r"Prefect server (up at|at \S+ answers)"),
    "flow_run": re.compile(r"Beginning flow run"),
    "cluster": re.compile(r"Dask cluster up|The Dask dashboard is available"),
}
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
SCENE_DONE = re.compile(r"scene \S+ done: \d+ frames, ([\d.]+) s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default=None, help="existing scenes root (default: synthesize into a temp dir)"
    )
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes (default 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames per synthetic scene (default 24)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="--workers values (default 1)")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=["cold", "served"], help="start-up modes"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per mode, tree and worker count (default 3)"
    )
    parser.add_argument(
        "--code",
        nargs="+",
        default=[f"this={REPO}"],
        metavar="LABEL=DIR",
        help="trees to compare (PYTHONPATH)",
    )
    parser.add_argument("--extra", nargs="*", default=[], help="more `panst3r preprocess` flags")
    parser.add_argument("--json", default=None, help="write the rows and medians to this file")
    return parser.parse_args(argv)


def read_phases(log_text: str, started: float) -> dict[str, float | None]:
    """Seconds from process start to each phase, from the run's log (None where no line marks it)."""
    stamped = []
    for line in log_text.splitlines():
        stamp = STAMP.match(line)
        if stamp:
            stamped.append((datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), line))
    return phases_of(stamped, started)


def phases_of(stamped: list[tuple[float, str]], started: float) -> dict[str, float | None]:
    """Seconds from `started` to each phase, given (unix time, message) log lines."""
    phases: dict[str, float | None] = dict.fromkeys(PHASES)
    for when, line in stamped:
        at = when - started
        for phase, marker in MARKERS.items():
            if phases[phase] is None and marker.search(line):
                phases[phase] = at
        done = SCENE_DONE.search(line)
        if done and phases["first_scene_done"] is None:
            phases["first_scene_done"] = at
        if done:
            begun = at - float(done.group(1))
            current = phases["first_scene_start"]
            phases["first_scene_start"] = begun if current is None else min(current, begun)
    return phases


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


class Served:
    """`panst3r serve --workers N` of one tree on its own home and port, for the served modes."""

    def __init__(self, code: str, home: Path, workers: int, cache: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        command = [sys.executable, "-m", "flows.cli.main", "serve", "--port", str(self.port),
                   "--workers", str(workers)]  # fmt: skip
        # the CLI runs' cache folder: where they look for its warm workers
        env = {**base_env(code), "PREFECT_HOME": str(home), "PANST3R_CACHE_DIR": str(cache)}
        env.pop("PREFECT_API_URL", None)
        self.log = open(home.parent / f"serve-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=code, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"panst3r serve did not come up; see {self.log.name}")
            time.sleep(0.5)
        while not _served(self.url):  # its deployments registered (and its warm workers, where it has them)
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"panst3r serve did not register {DEPLOYMENT}; see {self.log.name}")
            time.sleep(0.5)
        warm = Path(code, "flows", "warm_workers.py").exists()  # older trees have no warm workers
        while warm and "warm preprocessing workers up" not in Path(self.log.name).read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"panst3r serve started no warm workers; see {self.log.name}")
            time.sleep(0.5)
        time.sleep(3.0)  # a quiet server, as a user's would be

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def _api(url: str, path: str, body: dict | None = None, attempts: int = 5):
    """One REST call; a 503 (the server's database busy, seen once on two loaded cores) is retried."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(f"{url}/{path}", data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(1.0)


def _served(url: str) -> bool:
    try:
        _api(url, f"deployments/name/{DEPLOYMENT}")
    except OSError:
        return False
    return True


def run_deployment(url: str, root: Path, work: Path) -> dict:
    """One run of the served deployment into a fresh store, from the REST request that creates it."""
    work.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    shutil.rmtree(store)  # the flow creates it
    deployment = _api(url, f"deployments/name/{DEPLOYMENT}")["id"]
    started = time.time()
    run = _api(url, f"deployments/{deployment}/create_flow_run",
               {"parameters": {"root": str(root), "store": str(store)}})["id"]  # fmt: skip
    state = None
    while state not in FINAL_STATES and time.time() - started < 600:
        time.sleep(0.2)
        state = _api(url, f"flow_runs/{run}")["state_type"]
    end = time.time() - started
    stamped = _flow_run_logs(url, run)
    shutil.rmtree(store, ignore_errors=True)
    return {"returncode": 0 if state == "COMPLETED" else 1, **phases_of(stamped, started), "end": end}


def _flow_run_logs(url: str, run: str, wait_s: float = 15.0) -> list[tuple[float, str]]:
    """(unix time, message) of the run's log entries, once its last one ("preprocess finished") arrived:
    the runner sends them in batches, which may land after the final state."""
    deadline = time.monotonic() + wait_s
    while True:
        logs = _api(url, "logs/filter", {"logs": {"flow_run_id": {"any_": [run]}}, "sort": "TIMESTAMP_ASC"})
        if any("preprocess finished" in entry["message"] for entry in logs) or time.monotonic() > deadline:
            return [(datetime.fromisoformat(entry["timestamp"]).timestamp(), entry["message"]) for entry in logs]
        time.sleep(0.5)


def base_env(code: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=code, PYOPENGL_PLATFORM="egl", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def run_once(
    code: str, root: Path, work: Path, workers: int, mode: str, extra: list[str], api: str | None
) -> dict:
    """One `panst3r preprocess` into a fresh store; its phases and exit code."""
    work.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    home = work / ("home-warm" if mode == "warm-home" else f"home-{store.name}")
    # served runs share serve's cache folder (where it advertises its warm workers); the others must not
    cache = work / {"cold": "cache-cold", "served": SERVED_CACHE}.get(mode, "cache")
    env = {**base_env(code), "PREFECT_HOME": str(home), "PANST3R_CACHE_DIR": str(cache)}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    command = [sys.executable, "-m", "flows.cli.main", "preprocess", "--root", str(root),
               "--store", str(store), "--workers", str(workers), *extra]  # fmt: skip
    started = time.time()
    result = subprocess.run(command, env=env, cwd=code, capture_output=True, text=True)
    phases = read_phases(result.stdout + result.stderr, started)
    phases["end"] = time.time() - started
    shutil.rmtree(store, ignore_errors=True)
    if mode in ("cold", "fresh-home"):
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work / "cache-cold", ignore_errors=True)
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
    return {"returncode": result.returncode, **phases}


def synthesize(work: Path, scenes: int, frames: int) -> Path:
    root = work / "root"
    command = [sys.executable, "-m", "flows.cli.main", "synth", "--out", str(root), "--scenes", str(scenes),
               "--seed", "0", "--frames", str(frames)]  # fmt: skip
    subprocess.run(command, env=base_env(str(REPO)), cwd=REPO, check=True, capture_output=True)
    return root


def warm_up_home(code: str, root: Path, work: Path, extra: list[str]) -> None:
    """One untimed run that leaves a migrated database in the `warm-home` mode's PREFECT_HOME."""
    run_once(code, root, work, 1, "warm-home", extra, None)


def median_rows(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["code"], row["mode"], row["workers"]), []).append(row)
    medians = []
    for (code, mode, workers), members in groups.items():
        medians.append({"code": code, "mode": mode, "workers": workers, "runs": len(members),
                        **{phase: _median(m[phase] for m in members) for phase in PHASES}})  # fmt: skip
    return medians


def _median(values) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def print_table(medians: list[dict]) -> None:
    header = ["code", "mode", "workers", *PHASES]
    print(" | ".join(header))
    for row in medians:
        print(" | ".join("-" if row[k] is None else str(row[k]) for k in header))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    trees = dict(item.split("=", 1) for item in args.code)
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        root = Path(args.root) if args.root else synthesize(work, args.scenes, args.frames)
        rows = []
        for label, code in trees.items():
            if {"warm-home", "fresh-home"} & set(args.modes):
                warm_up_home(code, root, work / label, args.extra)  # also fills the cache
        for workers in args.workers:
            servers = start_servers(trees, work, workers) if set(SERVED_MODES) & set(args.modes) else {}
            try:
                for run in range(args.runs):
                    for mode in args.modes:
                        for label, code in trees.items():  # interleaved: load drifts hit every tree alike
                            row = run_mode(mode, code, root, work / label, workers, args.extra, servers.get(label))
                            rows.append({"code": label, "mode": mode, "workers": workers, "run": run, **row})
                            print(json.dumps(rows[-1]), flush=True)
            finally:
                for server in servers.values():
                    server.stop()
    medians = median_rows(rows)
    print_table(medians)
    if args.json:
        settings = {"scenes": args.scenes, "frames": args.frames, "runs": args.runs, "extra": args.extra,
                    "cpus": os.cpu_count(), "python": platform.python_version()}  # fmt: skip
        Path(args.json).write_text(
            json.dumps({"settings": settings, "medians": medians, "rows": rows}, indent=1)
        )


def start_servers(trees: dict[str, str], work: Path, workers: int) -> dict[str, Served]:
    """One `panst3r serve --workers N` per tree, each on its own home."""
    servers = {}
    for label, code in trees.items():
        home = work / f"served-{label}-{workers}" / "home"
        home.parent.mkdir(parents=True, exist_ok=True)
        servers[label] = Served(code, home, workers, cache=work / label / SERVED_CACHE)
    return servers


def run_mode(mode: str, code: str, root: Path, work: Path, workers: int, extra: list[str], server) -> dict:
    if mode == "deployment":
        return run_deployment(server.url, root, work)
    return run_once(code, root, work, workers, mode, extra, server.url if mode == "served" else None)


if __name__ == "__main__":
    main()
