"""`panst3r status`: the scenes table of a store (done / failed with reason / stale with reason), and with
`--verify` a read-back of every chunk."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from flows.cli._common import STORE_HELP_SUFFIX, add_s3_endpoint_argument

HELP = "the scenes table of a store: done / failed (with reason) / stale (with reason)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store written by `panst3r preprocess`" + STORE_HELP_SUFFIX)
    add_s3_endpoint_argument(parser)
    parser.add_argument(
        "--root",
        default=None,
        help="ScanNet++ root: also mark scenes whose inputs or preprocessing code changed as stale "
        "(hashes the inputs; each scene is compared with the pairs folder and settings it was made with)",
    )
    parser.add_argument(
        "--pairs", default=None, help="pairs folder to compare with instead of the one each scene was made with"
    )
    parser.add_argument(
        "--target-resolution",
        type=int,
        default=None,
        help="compare with this resolution instead of the one each scene was made with",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=5,
        help="object stores: list this many of the newest snapshots (default 5)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="read back every chunk of every scene and the tables; name any damage and how to repair it",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from datasets.store.reader import StoreReader
    from datasets.store.tables import TableBuilder

    reader = StoreReader(args.store)  # refuses a missing store or another schema version, by name
    console = Console()
    current, settings_notes = None, {}
    if args.root:
        current, settings_notes = _compare_with(reader, args, console)
    else:
        console.print("inputs not compared: pass --root to see stale scenes")
    scenes = TableBuilder(reader.backend).build(current)["scenes"]
    _print_scenes(console, args.store, scenes, settings_notes)
    _print_version(console, reader, args.history)
    return _verify(console, args) if args.verify else 0


def _compare_with(reader, args: argparse.Namespace, console):
    """CurrentVersion for `--root`: each scene's inputs hashed with the pairs folder it was made with,
    settings compared only when asked (`--target-resolution`), and a note on what differs."""
    from datasets.preprocess.result import PreprocessConfig
    from datasets.store import hashing
    from datasets.store.staleness import CurrentVersion

    sources, config_hashes, notes = {}, {}, {}
    digests = hashing.DigestCache.of_store(reader.backend)  # read only: status never saves it
    for scene_id in reader.scene_ids():
        made = reader.scene_attrs(scene_id).get("made_with") or {}
        pairs = args.pairs or made.get("pairs_dir")
        sources[scene_id] = _source_hash(Path(args.root), pairs, scene_id, digests)
        if args.target_resolution is not None:
            recorded = made.get("config") or asdict(PreprocessConfig())
            asked = {**recorded, "target_resolution": args.target_resolution}
            config_hashes[scene_id] = hashing.config_hash(PreprocessConfig(**asked))
            if recorded["target_resolution"] != args.target_resolution:
                notes[scene_id] = f"target_resolution {recorded['target_resolution']} -> {args.target_resolution}"
    what = "asked settings" if args.target_resolution is not None else "the settings each scene was made with"
    console.print(f"compared with: inputs under {args.root}, {what}, preprocessing code {hashing.code_version()}")
    return CurrentVersion(None, hashing.code_version(), sources, config_hashes), notes


def _source_hash(root: Path, pairs: str | None, scene_id: str, digests) -> str:
    from datasets.scannetpp.reader import read_scene
    from datasets.store.hashing import source_hash
    from datasets.store.staleness import UNREADABLE

    try:
        record = read_scene(root, scene_id, pairs)
        return source_hash(record.source_files, root, digests)
    except (ValueError, OSError):
        return UNREADABLE  # inputs gone, broken or unreadable: the committed version is stale


def _print_scenes(console, store: str, scenes, settings_notes: dict[str, str]) -> None:
    from rich.table import Table

    table = Table(title=f"store {store}")
    columns = ("scene", "status", "frames", "split", "seconds", "committed", "unknown labels (void)", "why")
    for column in columns:
        table.add_column(column)
    colours = {"done": "green", "failed": "red", "stale": "yellow"}
    for row in scenes.itertuples(index=False):
        why = row.error or row.stale_reason
        if row.scene_id in settings_notes and "settings differ" in why:
            why = why.replace("settings differ", f"settings differ ({settings_notes[row.scene_id]})")
        table.add_row(
            row.scene_id,
            f"[{colours.get(row.status, 'white')}]{row.status}",
            str(row.frames),
            row.split,
            "" if row.seconds != row.seconds else f"{row.seconds:.1f}",  # NaN for never-committed scenes
            row.committed_at[:19],
            _unknown_labels_cell(row),
            why,
        )
    console.print(table)
    counts = scenes["status"].value_counts()
    console.print(" / ".join(f"{name} {int(counts.get(name, 0))}" for name in ("done", "stale", "failed")))
    with_unknown = int((scenes["unknown_labels"] != "").sum())
    if with_unknown:
        console.print(
            f"{with_unknown} scene(s) leave labels void that neither top100.txt nor map_benchmark.csv lists, "
            "as the official script does; add a row per label to map_benchmark.csv to map them"
        )


def _unknown_labels_cell(row) -> str:
    """`'statue', 'vase': 150 vertices, 3456 px`; empty for none, `?` where it was not recorded."""
    if row.unknown_label_vertices is pd.NA:
        return "" if row.status == "failed" else "?"
    if not row.unknown_labels:
        return ""
    return f"{row.unknown_labels}: {row.unknown_label_vertices} vertices, {row.unknown_label_pixels} px"


def _print_version(console, reader, history: int) -> None:
    """The store's exact version (what train and evaluate record in MLflow) and, for an object store, its
    newest snapshots."""
    from datasets.store.queries import store_version

    try:
        version = store_version(reader.backend)
    except (FileNotFoundError, ValueError) as exc:  # a directory store's content hash needs its tables
        console.print(f"version: unknown ({exc})", soft_wrap=True)
        return
    if version.kind == "content_hash":
        console.print(f"version: content hash {version.id} (a directory store keeps no history)")
        return
    console.print(f"version: snapshot {version.id} ({version.time}, {version.message})")
    snapshots = reader.backend.history(history)
    if len(snapshots) > 1:
        console.print(f"newest {len(snapshots)} snapshots (read one with --store '{reader.location.text}?snapshot=ID'):")
        for snapshot in snapshots:
            console.print(f"  {snapshot.id}  {snapshot.time}  {snapshot.message}")


def _verify(console, args: argparse.Namespace) -> int:
    """Read back every chunk; 1 when anything is damaged."""
    from rich.progress import Progress

    from datasets.store.integrity import redo_hint
    from datasets.store.reader import StoreReader
    from datasets.store.verify import verify_store

    with Progress(transient=True) as progress:
        task = progress.add_task("verify", total=len(StoreReader(args.store).scene_ids()))
        report = verify_store(args.store, on_scene=lambda _: progress.advance(task))
    for damage in report.damage:
        console.print(f"[red]damaged[/red] {damage.message}", soft_wrap=True)
    if report.unchecked:
        console.print(
            f"{len(report.unchecked)} scene(s) were written without chunk checksums, so a flipped byte may "
            f"read back unnoticed: {' '.join(report.unchecked)}; {redo_hint(report.unchecked)} with checksums"
        )
    console.print(f"verified {report.scenes} scenes, {report.chunks} chunks: {len(report.damage)} damaged")
    if report.damaged_scenes:
        console.print(f"to repair: {redo_hint(report.damaged_scenes)}", soft_wrap=True)
    return 1 if report.damage else 0
