"""`panst3r compare`: the evaluation runs of an MLflow experiment as a table, PNG plots and an HTML report."""

from __future__ import annotations

import argparse

HELP = "table, HTML report and plots from MLflow runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment",
        default="panst3r-eval",
        help="MLflow experiment of `panst3r evaluate` (default panst3r-eval)",
    )
    parser.add_argument(
        "--filter",
        default=None,
        metavar="EXPR",
        help="MLflow search filter on top, e.g. \"params.postprocess = 'qubo' and metrics.PQ > 0.3\"",
    )
    parser.add_argument("--out", default=None, help="output folder (default RUNS/compare/<experiment>)")
    parser.add_argument("--top", type=int, default=20, help="rows of the printed table (default 20)")
    parser.add_argument(
        "--paired",
        default=None,
        metavar="CHECKPOINT",
        help="also compare every other checkpoint with this one scene by scene, pooled over every store the "
        "runs scored: mean PQ gain with its 95%% bootstrap interval (OUT/paired.csv and the report)",
    )
    parser.add_argument("--runs-dir", default="runs", help="state folder (default ./runs)")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default sqlite RUNS/mlflow.db)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flows.mlflow_tracking import DB_NAME

    if args.tracking_uri is None and not (Path(args.runs_dir) / DB_NAME).is_file():
        raise FileNotFoundError(
            f"no MLflow database at {Path(args.runs_dir) / DB_NAME}; run `panst3r evaluate` first or pass "
            "--runs-dir / --tracking-uri"
        )
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    from flows.compare import compare

    report = compare(
        args.experiment, args.filter, args.out, args.tracking_uri, args.runs_dir, paired_baseline=args.paired
    )
    print_table(report.table, args.experiment, args.top)
    if report.paired is not None:
        print_paired(report.paired)
    print(f"report: {report.html.resolve()}")
    for name, path in report.plots.items():
        print(f"plot {name}: {path.resolve()}")
    return 0


def print_table(table, experiment: str, top: int) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # a log file or pipe would get rich's 80-column default and truncated names
    console = Console() if sys.stdout.isatty() else Console(width=150)
    if table.empty:
        console.print(f"experiment {experiment}: no finished evaluation runs")
        return
    shown = Table(title=f"{experiment}: {len(table)} run(s), best scene PQ first")
    columns = (
        "checkpoint",
        "postprocess",
        "keyframes",
        "PQ",
        "PQ_th",
        "PQ_st",
        "SQ",
        "RQ",
        "coco_PQ",
        "s/scene",
    )
    for column in columns:
        shown.add_column(column, justify="left" if column in ("checkpoint", "postprocess") else "right")
    for index, row in table.head(top).iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if column in ("checkpoint", "postprocess", "keyframes"):
                cells.append(str(value))
            elif value is None or value != value:  # NaN
                cells.append("-")
            else:
                cells.append(f"{value:.2f}" if column == "s/scene" else f"{value:.3f}")
        shown.add_row(*cells, style="bold green" if index == 0 else None)
    console.print(shown)
    if len(table) > top:
        console.print(f"... {len(table) - top} more in the report")


def print_paired(paired) -> None:
    """Each checkpoint against the baseline, one line per configuration."""
    if paired.empty:
        print("paired: no scene was scored by both the baseline and another checkpoint")
        return
    for _, row in paired.iterrows():
        verdict = "significant" if row["significant"] else "within noise"
        print(
            f"paired: {row['checkpoint']} vs {row['baseline']} | {row['postprocess']} | kf={row['keyframes']}: "
            f"PQ {row['baseline PQ']:.3f} -> {row['PQ']:.3f} on {row['scenes']} scenes, gain {row['gain']:+.4f} "
            f"(95% {row['low']:+.4f} .. {row['high']:+.4f}; {row['up']} up, {row['down']} down; {verdict})"
        )
