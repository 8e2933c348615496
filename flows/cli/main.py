"""Entry point of the `panst3r` console script.

Each subcommand lives in its own module of this package and exposes `HELP`, `add_arguments(parser)`
and `run(args) -> int`. Modules are imported lazily so that `panst3r --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from flows.cli._common import use_s3_endpoint

# subcommand name -> module under flows.cli
COMMANDS: dict[str, str] = {
    "synth": "synth",
    "preprocess": "preprocess",
    "status": "status",
    "export-legacy": "export_legacy",
    "serve": "serve",
    "train": "train",
    "evaluate": "evaluate",
    "compare": "compare",
    "pq": "pq",
    "predict": "predict",
    "predict-batch": "predict_batch",
    "convert": "convert",
    "demo": "demo",
    "run-all": "run_all",
}

SHORT_HELP: dict[str, str] = {
    "synth": "write synthetic scenes in the ScanNet++ v2 layout, plus a pairs folder",
    "preprocess": "Prefect flow `preprocess`: scenes -> Zarr store + Parquet tables (incremental)",
    "status": "the scenes table of a store: done / failed (with reason) / stale",
    "export-legacy": "write the official preprocessed layout from a store",
    "serve": "start (or reuse) a local Prefect server and serve the deployments",
    "train": "Prefect flow `train`: torchrun on a store, logged to MLflow",
    "evaluate": "Prefect flow `evaluate`: sweep checkpoints x post-processings x keyframes",
    "compare": "table, HTML report and plots from MLflow runs",
    "pq": "panoptic quality of predictions in the COCO panoptic format",
    "predict": "images in, panoptic 3-D reconstruction out",
    "predict-batch": "Prefect flow `predict-batch`: every scene of a store or of image folders, on Dask (incremental)",
    "convert": "official checkpoint -> our format (safetensors + JSON)",
    "demo": "the Gradio demo with the 3-D viewer",
    "run-all": "the whole pipeline on embedded defaults (what `make run` calls)",
}


def _check_datasets_package() -> None:
    """`datasets` is also a Hugging Face package name; refuse to run with the wrong one."""
    import datasets

    here = Path(__file__).resolve().parents[2]
    origin = Path(getattr(datasets, "__file__", "") or "").resolve()
    if here not in origin.parents:
        raise SystemExit(
            f"error: the module `datasets` resolves to {origin}, not to this project's datasets/ "
            "package. Run panst3r from the project's virtual environment (`make install`, then "
            ".venv/bin/panst3r) or uninstall the Hugging Face `datasets` package from this environment."
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panst3r",
        description="PanSt3R: panoptic 3-D reconstruction and its data pipeline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=SHORT_HELP[name], add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help") and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        args, _ = parser.parse_known_args(argv)
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    verbose = "-v" in rest or "--verbose" in rest
    rest = [a for a in rest if a not in ("-v", "--verbose")]
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from flows.prefect_env import quiet_chatty_loggers  # imports no prefect

    quiet_chatty_loggers()  # before any command imports the chatty libraries
    _check_datasets_package()
    module = importlib.import_module(f"flows.cli.{COMMANDS[name]}")
    sub = argparse.ArgumentParser(prog=f"panst3r {name}", description=SHORT_HELP[name])
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    use_s3_endpoint(args)
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
