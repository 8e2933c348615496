"""`panst3r preprocess`: run the Prefect flow `preprocess` (scene and frame-chunk tasks on Dask) into a store."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from datasets.preprocess.result import DEFAULT_FRAMES_PER_TASK
from datasets.scannetpp.semantics import UNKNOWN_LABEL_ALIASES, UNKNOWN_LABEL_MODES
from flows.cli._common import (
    STORE_HELP_SUFFIX,
    add_prefect_port_argument,
    add_s3_endpoint_argument,
    prepare_prefect,
)
from flows.cli.cluster_args import add_cluster_arguments, cluster_from_args
from flows.dask_cluster import PREPROCESS_WORKER_OPTIONS, ClusterChoice
from flows.early_cluster import EarlyCluster
from flows.server_watch import ServerWatch, stop_dask_cluster
from flows.warm_workers import find_warm_workers

log = logging.getLogger(__name__)

HELP = "Prefect flow `preprocess`: scenes -> Zarr store + Parquet tables (incremental)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", required=True, help="ScanNet++ v2 root (the folder holding data/, metadata/, splits/)"
    )
    parser.add_argument(
        "--pairs", default=None, help="pairs folder with <scene>/selected_pairs.npz (optional)"
    )
    parser.add_argument(
        "--store", required=True, help="output store (created if absent)" + STORE_HELP_SUFFIX
    )
    add_s3_endpoint_argument(parser)
    parser.add_argument("--scenes", nargs="+", default=None, metavar="ID", help="only these scene ids")
    parser.add_argument(
        "--redo",
        nargs="+",
        default=None,
        metavar="ID",
        help="redo these scenes even when up to date (e.g. after `panst3r status --verify` names them)",
    )
    parser.add_argument(
        "--target-resolution",
        type=int,
        default=920,
        help="output images cover (T, T*3/4) pixels (default 920)",
    )
    parser.add_argument(
        "--unknown-labels",
        choices=(*UNKNOWN_LABEL_MODES, *UNKNOWN_LABEL_ALIASES),
        default="void",
        help="a segGroup label listed neither in top100.txt nor in map_benchmark.csv is left void as the "
        "official script does, with one warning per scene and a note in the scenes table (void, default; "
        "'skip' is its old name), or fails its scene (error)",
    )
    parser.add_argument(
        "--export-crowd",
        action="store_true",
        help="keep crowd groups (thing class without instance mapping) as segments, as the official flag",
    )
    parser.add_argument(
        "--frames-per-task",
        type=int,
        default=DEFAULT_FRAMES_PER_TASK,
        metavar="N",
        help="split a longer scene into tasks of about N frames (whole shards of 16) that render against a "
        "mesh built once per worker, committed as one scene once all succeeded; directory stores only "
        f"(default {DEFAULT_FRAMES_PER_TASK}; 0 = one task per scene)",
    )
    parser.add_argument("--summary-json", default=None, help="also write the run summary to this JSON file")
    add_cluster_arguments(parser)
    parser.add_argument(
        "--fresh-workers",
        action="store_true",
        help="start this run's own local workers even when a running `panst3r serve` holds warm ones that "
        "match them (by default the run uses those: no worker start-up)",
    )
    add_prefect_port_argument(parser)


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import prefect_api_starting

    if not Path(args.root).is_dir():
        raise FileNotFoundError(
            f"--root {args.root} is not a directory; pass the ScanNet++ root (with data/)"
        )
    if args.frames_per_task < 0:
        raise ValueError(f"--frames-per-task must be 0 (one task per scene) or more, got {args.frames_per_task}")
    if args.target_resolution < 16:
        raise ValueError(
            f"--target-resolution {args.target_resolution} is too small; the official value is 920"
        )
    cluster = _with_warm_workers(cluster_from_args(args), args.fresh_workers)
    prepare_prefect()  # also makes SIGTERM stop a temporary Prefect server started below
    # The server boots, the cluster starts and prefect is imported all at once: start-up waits for the
    # longest of them, not their sum (flows.early_cluster).
    with (
        prefect_api_starting(port=args.prefect_port) as api,
        EarlyCluster(cluster, PREPROCESS_WORKER_OPTIONS) as early,
    ):
        # imports prefect: after the env is set
        from flows.preprocess import run_preprocess
        from flows.preprocess_progress import progress_listener

        log.info("flow modules imported")
        with (
            ServerWatch(api.wait_ready()) as watch,
            _ProgressBar() as bar,
            progress_listener(bar.update),
            progress_listener(lambda event: _finish_without_server(event, watch, args, bar)),
        ):
            summary = run_preprocess(
                root=args.root,
                store=args.store,
                pairs=args.pairs,
                scenes=args.scenes,
                target_resolution=args.target_resolution,
                unknown_labels=args.unknown_labels,
                export_crowd=args.export_crowd,
                redo=args.redo,
                frames_per_task=args.frames_per_task,
                task_runner=early.task_runner(),
            )
    return _report(summary, args)


def _with_warm_workers(cluster: ClusterChoice, fresh: bool) -> ClusterChoice:
    """The warm workers of a running `panst3r serve` in place of the local cluster they duplicate."""
    warm = None if fresh else find_warm_workers(cluster, PREPROCESS_WORKER_OPTIONS)
    if warm is None:
        return cluster
    log.info(warm.describe())
    return replace(cluster, kind="address", address=warm.address)


def _report(summary: dict, args: argparse.Namespace) -> int:
    print_summary(summary)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=1))
    return 1 if summary["failed"] else 0


def _finish_without_server(event: dict, watch: ServerWatch, args: argparse.Namespace, bar: _ProgressBar) -> None:
    """Once the scenes are done and the tables written, a run whose Prefect server is gone ends here:
    what Prefect would still do is report the flow run's end to that server, retrying for minutes."""
    if event["event"] != "finished" or not watch.is_lost():
        return
    from flows.prefect_env import stop_temporary_servers

    bar.progress.stop()
    code = _report(event["summary"], args)
    print(
        f"the Prefect server at {watch.api_url} was lost during the run: the summary above and the "
        "store's tables come from the committed scenes; a re-run skips everything that is done",
        file=sys.stderr,
        flush=True,
    )
    stop_dask_cluster()
    stop_temporary_servers()  # one that hangs rather than died would outlive os._exit
    sys.stdout.flush()
    os._exit(code)  # skips Prefect's exit-time flushing, which would retry against the dead server


class _ProgressBar:
    """A rich progress bar over scenes, fed by the flow's progress events."""

    def __enter__(self) -> _ProgressBar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]preprocess"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        self.progress.__enter__()
        self.task = self.progress.add_task("scenes", total=None, detail="planning")
        self.failed = 0
        return self

    def update(self, event: dict) -> None:
        if event["event"] == "planned":
            self.progress.update(self.task, total=event["total"], detail=f"{event['skipped']} skipped")
        elif event["event"] == "scene":
            self.failed += event["status"] == "failed"
            detail = f"last {event['scene_id']} {event['status']}" + (
                f", {self.failed} failed" if self.failed else ""
            )
            self.progress.update(self.task, advance=1, detail=detail)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"preprocess summary ({summary['seconds']:.1f} s, store {summary['store']})")
    table.add_column("scene")
    table.add_column("result")
    table.add_column("reason")
    unknown = summary.get("unknown_labels", {})
    for scene_id in summary["done"]:
        note = f"unknown labels {unknown[scene_id]}" if scene_id in unknown else ""
        table.add_row(scene_id, "[green]done", note)
    for scene_id in summary["skipped"]:
        table.add_row(scene_id, "skipped", "up to date")
    for scene_id, reason in summary["failed"].items():
        table.add_row(scene_id, "[red]failed", reason)
    console = Console()
    console.print(table)
    console.print(
        f"done {len(summary['done'])} ({summary['frames']} frames) / skipped {len(summary['skipped'])} / "
        f"failed {len(summary['failed'])}"
    )
