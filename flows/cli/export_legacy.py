"""`panst3r export-legacy`: the official PanSt3R preprocessed layout from a store."""

from __future__ import annotations

import argparse

from flows.cli._common import STORE_HELP_SUFFIX, add_s3_endpoint_argument

HELP = "write the official preprocessed layout from a store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="store written by `panst3r preprocess`" + STORE_HELP_SUFFIX
    )
    add_s3_endpoint_argument(parser)
    parser.add_argument("--out", required=True, help="output folder (the official `--output_dir` layout)")
    parser.add_argument("--scenes", nargs="+", default=None, metavar="ID", help="only these committed scenes")


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from datasets.legacy_export import export_legacy
    from datasets.store.reader import StoreReader

    reader = StoreReader(args.store)
    total = len(args.scenes) if args.scenes else len(reader.scene_ids())
    with Progress() as progress:
        bar = progress.add_task("export-legacy", total=total)
        summary = export_legacy(args.store, args.out, args.scenes, on_scene=lambda _: progress.advance(bar))
    print(f"wrote {len(summary.scenes)} scenes ({summary.frames} frames) to {summary.out}")
    return 0
