"""`panst3r serve`: start (or reuse) a local Prefect server on 127.0.0.1 and serve the deployments."""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from flows.cli._common import unwind_on_sigterm

if TYPE_CHECKING:
    from flows.warm_workers import WarmWorkersHost

HELP = "start (or reuse) a local Prefect server and serve the deployments"
# A triggered run waits for the served runner's next poll, half an interval on average: Prefect's 10 s
# default was most of the wait between `prefect deployment run` and the first scene. Serving idle took
# 12 % of a core with polls every 1 s or 0.5 s alike (server, runner, warm workers), 18 % every 0.25 s.
DEFAULT_POLL_SECONDS = 0.5
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=4200, help="port of the local Prefect server (default 4200)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the Prefect server started here listens on (default 127.0.0.1); another host's "
        "Dask workers report to it, so give an address they reach when preprocess runs on a cluster",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Dask worker processes for each preprocess and pipeline flow run (default 2)",
    )
    parser.add_argument(
        "--warm-workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the --workers preprocessing workers started while serving, for served runs and for "
        "`panst3r preprocess` runs of this machine with the same workers (default on; each idle worker "
        "holds about 0.3 GB)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help="how often the served deployments ask the server for runs to start "
        f"(default {DEFAULT_POLL_SECONDS:g}; Prefect's own default is 10)",
    )
    parser.add_argument(
        "--train-on-preprocess",
        default=None,
        metavar="PRESET",
        help="every completed preprocess/local run triggers train/local on its store with this training "
        "preset (conf/train name or .yaml path), reusing a model of the same store content and settings",
    )


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import configure_prefect_env

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.poll_seconds <= 0:
        raise ValueError(f"--poll-seconds must be positive, got {args.poll_seconds}")
    preset = _checked_preset(args.train_on_preprocess)
    home = configure_prefect_env()
    os.environ["PANST3R_PREPROCESS_WORKERS"] = str(args.workers)  # read by each served flow run's process
    # A watcher (`prefect deployment run --watch`) waits 3 s after a run's final state for its last logs,
    # the reason of a failure among them; the default 2 s batching plus the exit drain can miss that.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.5")
    unwind_on_sigterm()  # SIGTERM (a test, a service manager) must stop the workers and server started here
    # entered first: the warm workers boot while the Prefect server does (flows.warm_workers)
    with _warm_workers(args.workers) if args.warm_workers else nullcontext():
        return _serve(args, home, preset)


def _serve(args: argparse.Namespace, home: Path, preset: str | None) -> int:
    from flows.prefect_env import LocalServer, api_healthy, api_url_for, drain_prefect_clients

    server = None
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        if not api_healthy(api_url):
            raise ValueError(
                f"PREFECT_API_URL={api_url} does not answer; start that server or unset the variable"
            )
        log.info("using the Prefect server at %s", api_url)
    elif api_healthy(api_url_for(args.port, args.host)):
        api_url = api_url_for(args.port, args.host)
        log.info("reusing the Prefect server already running at %s", api_url)
    else:
        server = LocalServer(args.port, host=args.host).start()
        api_url = server.api_url
    os.environ["PREFECT_API_URL"] = api_url

    try:
        from flows.preloaded_runs import RunForkserver
        from flows.serve import DEPLOYMENTS, serve_deployments, served_flows

        # started once the environment that runs inherit is complete; it imports the flows while we do
        forkserver = RunForkserver(entry.module for entry in DEPLOYMENTS)
        triggers = {}
        if preset:
            from flows.deployment_triggers import train_on_preprocess

            triggers["train"] = [train_on_preprocess(preset)]
        served = served_flows(triggers=triggers)
        if not served:
            raise ValueError("no flow module could be loaded; nothing to serve")
        names = ", ".join(f"{flow.name}/{options['name']}" for flow, options in served)
        serve_deployments(
            served,
            on_registered=lambda: _announce(api_url, home, names, preset),
            poll_seconds=args.poll_seconds,
            forkserver=forkserver,
        )
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        drain_prefect_clients(timeout=5)
        if server is not None:
            server.stop()
    return 0


def _warm_workers(workers: int) -> WarmWorkersHost:
    from flows.dask_cluster import PREPROCESS_WORKER_OPTIONS, choose_cluster
    from flows.warm_workers import WarmWorkersHost

    return WarmWorkersHost(choose_cluster(workers=workers), PREPROCESS_WORKER_OPTIONS)


def _announce(api_url: str, home: Path, names: str, preset: str | None) -> None:
    """What is served and how to trigger it; printed once the server knows every deployment."""
    print(f"Prefect server: {api_url} (UI at {api_url.removesuffix('/api')}, home {home})", flush=True)
    print(f"serving: {names}", flush=True)
    if preset:
        print(f"trigger: each completed preprocess/local run starts train/local ({preset})", flush=True)
    print(
        f"trigger from another shell:\n  export PREFECT_API_URL={api_url}\n"
        "  prefect deployment run 'preprocess/local' -p root=$PWD/runs/synth -p store=$PWD/runs/store "
        "--watch",
        flush=True,
    )


def _checked_preset(preset: str | None) -> str | None:
    """The training preset of --train-on-preprocess, resolved now (a bad name fails before serving); a
    .yaml path made absolute, since triggered runs may start in another directory."""
    if preset is None:
        return None
    from flows.run_config import check_overrides

    check_overrides(preset, [])
    return str(Path(preset).resolve()) if preset.endswith((".yaml", ".yml")) else preset
