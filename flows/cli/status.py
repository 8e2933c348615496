"""`panst3r status`: the scenes table of a store (done / failed with reason / stale)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "the scenes table of a store: done / failed (with reason) / stale"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory written by `panst3r preprocess`")
    parser.add_argument(
        "--root",
        default=None,
        help="ScanNet++ root: also mark scenes whose inputs, config or code changed as stale (hashes the inputs)",
    )
    parser.add_argument("--pairs", default=None, help="pairs folder used with --root (optional)")
    parser.add_argument(
        "--target-resolution",
        type=int,
        default=920,
        help="config to compare against for staleness (default 920)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from datasets.preprocess.result import PreprocessConfig
    from datasets.store import hashing
    from datasets.store.reader import StoreReader
    from datasets.store.tables import CurrentVersion, TableBuilder

    reader = StoreReader(args.store)  # refuses a missing store or another schema version, by name
    current = None
    if args.root:
        # Staleness needs the inputs: compare with the hashes preprocess would record now.
        config_hash = hashing.config_hash(PreprocessConfig(target_resolution=args.target_resolution))
        sources = _source_hashes(
            Path(args.root), args.pairs, reader.scene_ids(), reader.layout.digest_cache_path
        )
        current = CurrentVersion(config_hash, hashing.code_version(), sources)
    scenes = TableBuilder(args.store).build(current)["scenes"]

    table = Table(title=f"store {args.store}")
    for column in ("scene", "status", "frames", "split", "seconds", "committed", "error"):
        table.add_column(column)
    colours = {"done": "green", "failed": "red", "stale": "yellow"}
    for row in scenes.itertuples(index=False):
        table.add_row(
            row.scene_id,
            f"[{colours.get(row.status, 'white')}]{row.status}",
            str(row.frames),
            row.split,
            "" if row.seconds != row.seconds else f"{row.seconds:.1f}",  # NaN for never-committed scenes
            row.committed_at[:19],
            row.error,
        )
    console = Console()
    console.print(table)
    counts = scenes["status"].value_counts()
    console.print(" / ".join(f"{name} {int(counts.get(name, 0))}" for name in ("done", "stale", "failed")))
    return 0


def _source_hashes(root: Path, pairs: str | None, scene_ids: list[str], cache_path: Path) -> dict[str, str]:
    from datasets.scannetpp.reader import read_scene
    from datasets.store.hashing import DigestCache, source_hash

    digests = DigestCache(cache_path)  # read only: status never writes into the store
    hashes = {}
    for scene_id in scene_ids:
        try:
            record = read_scene(root, scene_id, pairs)
            hashes[scene_id] = source_hash(record.source_files, root, digests)
        except (ValueError, FileNotFoundError):
            hashes[scene_id] = "unreadable"  # inputs gone or broken: the committed version is stale
    return hashes
