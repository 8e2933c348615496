"""`compare`: the evaluation runs of an MLflow experiment -> a sorted table, PNG plots and an HTML report.

Runs are read with `mlflow.search_runs` into pandas (MLflow's own compare view gets slow past ~100 runs
and shows last values only; paper_metrics_anchors.md section 5.3). Only the configuration runs of
`flows.evaluate` (child runs) are compared; the per-class plot reads the per-class table artifact of the
best run. Plots are written with matplotlib's Agg backend; the HTML embeds them, so it is one file.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flows import mlflow_names as names
from flows.mlflow_tracking import default_tracking_uri
from flows.paired_comparison import CONFIG_KEYS, paired_table

log = logging.getLogger(__name__)

CHILD_FILTER = f"tags.`{names.SWEEP_ROLE_TAG}` = '{names.SWEEP_CHILD}'"
TABLE_COLUMNS = {
    "run": f"tags.{names.RUN_NAME_TAG}",
    "checkpoint": f"params.{names.CHECKPOINT_LABEL}",
    "variant": f"params.{names.VARIANT}",
    "postprocess": f"params.{names.POSTPROCESS}",
    "keyframes": f"params.{names.KEYFRAMES}",
    "split": f"params.{names.SPLIT}",
    "PQ": "metrics.PQ",
    "PQ_th": "metrics.PQ_th",
    "PQ_st": "metrics.PQ_st",
    "SQ": "metrics.SQ",
    "RQ": "metrics.RQ",
    "coco_PQ": "metrics.coco_PQ",
    "s/scene": "metrics.seconds_per_scene",
    "peak MB": "metrics.peak_memory_mb",
    "scenes": "metrics.num_scenes",
    "sweep": f"tags.{names.PARENT_RUN_TAG}",
    "run_id": "run_id",
    "started": "start_time",
}
METRIC_COLUMNS = ("PQ", "PQ_th", "PQ_st", "SQ", "RQ", "coco_PQ")
CONFIG_COLUMNS = ("checkpoint", "postprocess", "keyframes")

# one colour per post-processing (colour-blind safe, Okabe-Ito)
_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


@dataclass
class CompareReport:
    table: pd.DataFrame
    """One row per configuration run, best PQ first."""
    out_dir: Path
    html: Path
    plots: dict[str, Path] = field(default_factory=dict)
    best_run_id: str | None = None
    per_class: pd.DataFrame | None = None
    paired: pd.DataFrame | None = None
    """With a paired baseline: every other checkpoint against it, scene by scene."""


# ---------------------------------------------------------------------- reading runs


def load_runs(
    experiment: str, filter_string: str | None = None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Finished configuration runs of `experiment` (plus `filter_string`, MLflow search syntax) as the
    comparison table, best PQ first."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(
            f"--experiment {experiment!r} does not exist in {tracking_uri}; experiments there: "
            f"{', '.join(names) or 'none'} (run `panst3r evaluate` first)"
        )
    query = CHILD_FILTER + " and attributes.status = 'FINISHED'"
    if filter_string:
        query += f" and {filter_string}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        runs = mlflow.search_runs(experiment_names=[experiment], filter_string=query, max_results=5000)
    except MlflowException as exc:
        raise ValueError(f"--filter {filter_string!r} is not a valid MLflow search filter: {exc}") from None
    finally:
        mlflow.set_tracking_uri(previous)
    return comparison_table(runs)


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """`search_runs` output -> the comparison columns (missing ones as empty), sorted by PQ descending."""
    table = pd.DataFrame(
        {
            name: runs[source] if source in runs.columns else pd.Series([None] * len(runs), dtype=object)
            for name, source in TABLE_COLUMNS.items()
        }
    )
    for column in (*METRIC_COLUMNS, "s/scene", "peak MB", "scenes"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.sort_values(["PQ", "started"], ascending=[False, False], na_position="last").reset_index(
        drop=True
    )


def latest_per_configuration(table: pd.DataFrame) -> pd.DataFrame:
    """The most recent run of each (checkpoint, post-processing, keyframes): what the plots show."""
    if table.empty:
        return table
    latest = table.sort_values("started", ascending=False).drop_duplicates(list(CONFIG_COLUMNS))
    return latest.sort_values("PQ", ascending=False, na_position="last").reset_index(drop=True)


def read_table(run_id: str, table: str, tracking_uri: str | None) -> pd.DataFrame | None:
    """A table artifact of a run (None, with a warning, when it has none)."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=names.table_artifact(table), tracking_uri=tracking_uri
        )
    except Exception as exc:  # noqa: BLE001 - a missing artifact only drops what it feeds
        log.warning("run %s has no %s table (%s); leaving it out", run_id, table, exc)
        return None
    return pd.read_parquet(path)


def read_per_class(run_id: str, tracking_uri: str | None) -> pd.DataFrame | None:
    """The per-class table artifact of a run (None when it has none)."""
    return read_table(run_id, names.PER_CLASS_TABLE, tracking_uri)


def paired_with(table: pd.DataFrame, baseline: str, tracking_uri: str | None) -> pd.DataFrame:
    """Every other checkpoint against `baseline`, scene by scene (flows.paired_comparison), from the
    per-scene table artifacts of the runs in the baseline's configurations (none read for a wrong name)."""
    keys = list(CONFIG_KEYS)
    baseline_configs = table.loc[table["checkpoint"] == baseline, keys].drop_duplicates()
    tables = {}
    for run_id in table.merge(baseline_configs, on=keys)["run_id"]:
        scenes = read_table(str(run_id), names.PER_SCENE_TABLE, tracking_uri)
        if scenes is not None:
            tables[str(run_id)] = scenes
    return paired_table(table, tables, baseline)


# ---------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 13,
            "axes.titleweight": "bold",
            "axes.labelsize": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "savefig.dpi": 130,
            "font.family": "DejaVu Sans",
        }
    )
    return plt


def _keyframe_order(values) -> list[str]:
    def key(value: str):
        return (math.inf, value) if not str(value).isdigit() else (int(value), "")

    return sorted({str(v) for v in values}, key=key)


def _first(label: str, labelled: set[str]) -> str | None:
    """`label` the first time it is asked for, None after (matplotlib leaves None out of the legend)."""
    if label in labelled:
        return None
    labelled.add(label)
    return label


def plot_pq_by_configuration(latest: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: scene PQ per keyframe setting (groups) and post-processing (bars), one panel per
    checkpoint; COCO PQ as a dark tick on each bar."""
    plt = _pyplot()
    checkpoints = list(dict.fromkeys(latest["checkpoint"].astype(str)))
    methods = list(dict.fromkeys(latest["postprocess"].astype(str)))
    keyframes = _keyframe_order(latest["keyframes"])
    fig, axes = plt.subplots(
        1,
        len(checkpoints),
        figsize=(max(5.5, 1.4 + 1.3 * len(keyframes) * len(methods)) * len(checkpoints) ** 0.5 + 1, 4.6),
        squeeze=False,
        sharey=True,
    )
    width = 0.8 / max(1, len(methods))
    top = max(0.05, float(latest[["PQ", "coco_PQ"]].max().max() or 0))
    labelled: set[str] = set()  # each legend entry once, from whichever bar draws it first
    for ax, checkpoint in zip(axes[0], checkpoints):
        rows = latest[latest["checkpoint"].astype(str) == checkpoint]
        for m, method in enumerate(methods):
            for k, frames in enumerate(keyframes):
                match = rows[(rows["postprocess"] == method) & (rows["keyframes"].astype(str) == frames)]
                if match.empty:
                    continue
                x = k + (m - (len(methods) - 1) / 2) * width
                pq = float(match["PQ"].iloc[0])
                ax.bar(x, pq, width * 0.92, color=_COLORS[m % len(_COLORS)], label=_first(method, labelled))
                ax.text(x, pq + top * 0.015, f"{pq:.3f}", ha="center", va="bottom", fontsize=9)
                coco = match["coco_PQ"].iloc[0]
                if pd.notna(coco):
                    ax.plot(
                        [x - width * 0.4, x + width * 0.4],
                        [coco, coco],
                        color="#222222",
                        lw=2,
                        label=_first("COCO PQ (per image)", labelled),
                    )
        ax.set_xticks(
            range(len(keyframes)), [f"{f} keyframes" if f != "all" else "all views" for f in keyframes]
        )
        ax.set_title(checkpoint, fontsize=11)
        ax.grid(axis="x", visible=False)
    axes[0][0].set_ylabel("scene PQ (PanLift protocol)")
    # headroom above the bars for the legend, which sits inside the first panel
    axes[0][0].set_ylim(0, min(1.25, top * 1.4 + 0.02))
    handles, labels = [], []
    for ax in axes[0]:
        panel_handles, panel_labels = ax.get_legend_handles_labels()
        handles += panel_handles
        labels += panel_labels
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("COCO"))  # methods first
    if labels:
        axes[0][0].legend(
            [handles[i] for i in order],
            [labels[i] for i in order],
            loc="upper left",
            ncol=len(labels),
            fontsize=10,
        )
    fig.suptitle("Scene PQ by post-processing and keyframes", fontsize=14, fontweight="bold")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_per_class(per_class: pd.DataFrame, subtitle: str, path: Path, limit: int = 30) -> Path:
    """Horizontal bars of per-class scene PQ (things and stuff coloured apart), COCO PQ as a tick."""
    plt = _pyplot()
    rows = per_class.dropna(subset=["PQ"]).sort_values(["PQ", "class_name"], ascending=[True, False])
    kept = len(rows)
    rows = rows.tail(limit)
    subtitle += f"; {kept} classes kept" + (f", the best {limit} shown" if kept > limit else "")
    fig, ax = plt.subplots(figsize=(8, 1.9 + 0.34 * max(4, len(rows))))
    colors = ["#0072B2" if thing else "#E69F00" for thing in rows["isthing"]]
    y = range(len(rows))
    ax.barh(y, rows["PQ"], color=colors, height=0.7)
    for i, (pq, coco) in enumerate(zip(rows["PQ"], rows.get("coco_PQ", [None] * len(rows)))):
        ax.text(pq + 0.01, i, f"{pq:.2f}", va="center", fontsize=9)
        if coco is not None and pd.notna(coco):
            ax.plot([coco, coco], [i - 0.35, i + 0.35], color="#222222", lw=2)
    ax.set_yticks(list(y), rows["class_name"])
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("PQ")
    ax.grid(axis="y", visible=False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="#0072B2", label="thing"),
            Patch(color="#E69F00", label="stuff"),
            Line2D([], [], color="#222222", lw=2, label="COCO PQ"),
        ],
        loc="lower right",
        fontsize=9,
    )
    fig.suptitle("Per-class PQ of the best run", x=0.02, ha="left", fontsize=14, fontweight="bold")
    ax.set_title(subtitle, loc="left", fontsize=10, fontweight="normal", color="#444444")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_pq_vs_speed(latest: pd.DataFrame, path: Path) -> Path:
    """Scatter of scene PQ against seconds per scene: colour = post-processing, marker = keyframes."""
    plt = _pyplot()
    methods = list(dict.fromkeys(latest["postprocess"].astype(str)))
    keyframes = _keyframe_order(latest["keyframes"])
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for _, row in latest.iterrows():
        m = methods.index(str(row["postprocess"]))
        k = keyframes.index(str(row["keyframes"]))
        ax.scatter(
            row["s/scene"],
            row["PQ"],
            s=90,
            color=_COLORS[m % len(_COLORS)],
            marker=markers[k % len(markers)],
            edgecolor="white",
            linewidth=0.8,
            zorder=3,
        )
        if latest["checkpoint"].nunique() > 1:
            ax.annotate(
                str(row["checkpoint"]),
                (row["s/scene"], row["PQ"]),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=8,
                color="#444444",
            )
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", color=_COLORS[i % len(_COLORS)], markersize=9, label=name)
        for i, name in enumerate(methods)
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker=markers[i % len(markers)],
            color="#777777",
            markersize=8,
            label=f"keyframes: {name}",
        )
        for i, name in enumerate(keyframes)
    ]
    ax.legend(handles=handles, loc="best", fontsize=9)
    ax.set_xlabel("seconds per scene (inference + post-processing)")
    ax.set_ylabel("scene PQ")
    low = float(latest["PQ"].min()) if latest["PQ"].notna().any() else 0.0
    high = float(latest["PQ"].max()) if latest["PQ"].notna().any() else 1.0
    margin = max(0.02, (high - low) * 0.15)
    ax.set_ylim(max(0.0, low - margin), min(1.0, high + margin))
    ax.set_xlim(left=0)
    ax.set_title("Accuracy vs speed", loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- HTML


def _format_table(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.drop(columns=["sweep", "started"], errors="ignore").copy()
    for column in METRIC_COLUMNS:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    shown["s/scene"] = shown["s/scene"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    shown["peak MB"] = shown["peak MB"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    shown["scenes"] = shown["scenes"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    shown["run_id"] = shown["run_id"].map(lambda v: str(v)[:8])
    return shown


def _format_floats(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return shown


_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin-top: 0.5em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { background: #f4f6f8; position: sticky; top: 0; }
td:nth-child(-n+6), th:nth-child(-n+6) { text-align: left; }
tr:first-child td { font-weight: bold; background: #eef6ee; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { font-size: 0.85em; color: #555; max-width: 60em; }
"""


def _embedded_png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_html(
    path: Path,
    experiment: str,
    tracking_uri: str,
    table: pd.DataFrame,
    plots: dict[str, Path],
    per_class: pd.DataFrame | None,
    best_title: str | None,
    filter_string: str | None,
    paired: pd.DataFrame | None = None,
) -> Path:
    """One self-contained HTML file: the table, the plots (embedded PNG), the paired comparison when asked
    for and the best run's class table."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>PanSt3R evaluation: {html.escape(experiment)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>PanSt3R evaluation &mdash; {html.escape(experiment)}</h1>",
        f"<p class='meta'>{len(table)} configuration run(s) from {html.escape(tracking_uri)}"
        + (f", filter <code>{html.escape(filter_string)}</code>" if filter_string else "")
        + f"; written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        "<p class='note'>PQ, PQ_th, PQ_st, SQ, RQ: scene-level PQ (Panoptic Lifting protocol: views resized to "
        "512&times;512, GT void deleted, all views of a scene matched at once, classes under 0.5% dropped, mean "
        "over scenes). coco_PQ: per-image PQ with panopticapi semantics, summed over every image.</p>",
    ]
    titles = {
        "pq_by_configuration": "PQ by post-processing and keyframes",
        "pq_vs_speed": "PQ vs seconds per scene",
        "per_class": f"Per-class PQ of the best run: {best_title}" if best_title else "Per-class PQ",
    }
    for name in ("pq_by_configuration", "pq_vs_speed"):
        if name in plots:
            parts += [f"<h2>{titles[name]}</h2>", _embedded_png(plots[name], titles[name])]
    parts += ["<h2>All runs (best PQ first)</h2>", _format_table(table).to_html(index=False, border=0)]
    if paired is not None:
        parts += [
            "<h2>Paired with the baseline, scene by scene</h2>",
            "<p class='note'>Mean gain in scene PQ over the scenes both checkpoints scored, with its 95% "
            "bootstrap interval; significant when the interval excludes zero.</p>",
            _format_floats(paired).to_html(index=False, border=0),
        ]
    if "per_class" in plots:
        parts += [
            f"<h2>{html.escape(titles['per_class'])}</h2>",
            _embedded_png(plots["per_class"], "per-class PQ"),
        ]
    if per_class is not None:
        shown = _format_floats(per_class)
        parts += ["<h2>Per-class table of the best run</h2>", shown.to_html(index=False, border=0)]
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- entry point


def compare(
    experiment: str = "panst3r-eval",
    filter_string: str | None = None,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    paired_baseline: str | None = None,
) -> CompareReport:
    """Read the runs, write `OUT/{runs.csv, pq_by_configuration.png, per_class.png, pq_vs_speed.png,
    report.html}` (OUT default RUNS/compare/<experiment>) and return the table and paths; with
    `paired_baseline` (a checkpoint label) also `OUT/paired.csv`, each other checkpoint against it."""
    uri = tracking_uri or default_tracking_uri(runs_dir)
    table = load_runs(experiment, filter_string, uri)
    out_dir = Path(out) if out is not None else Path(runs_dir) / "compare" / experiment
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "runs.csv", index=False)
    plots: dict[str, Path] = {}
    per_class = None
    best_title = None
    best_run_id = None
    if table.empty:
        log.warning(
            "experiment %s has no finished evaluation runs%s",
            experiment,
            f" matching {filter_string!r}" if filter_string else "",
        )
    else:
        latest = latest_per_configuration(table)
        plots["pq_by_configuration"] = plot_pq_by_configuration(latest, out_dir / "pq_by_configuration.png")
        plots["pq_vs_speed"] = plot_pq_vs_speed(latest, out_dir / "pq_vs_speed.png")
        best = table.iloc[0]
        best_run_id = str(best["run_id"])
        per_class = read_per_class(best_run_id, uri)
        best_title = (
            f"{best['checkpoint']} | {best['postprocess']} | keyframes {best['keyframes']} "
            f"(scene PQ {best['PQ']:.3f})"
        )
        if per_class is not None and not per_class.empty:
            plots["per_class"] = plot_per_class(per_class, best_title, out_dir / "per_class.png")
    paired = None
    if paired_baseline is not None and not table.empty:
        paired = paired_with(table, paired_baseline, uri)
        paired.to_csv(out_dir / "paired.csv", index=False)
    report = write_html(
        out_dir / "report.html", experiment, uri, table, plots, per_class, best_title, filter_string, paired
    )
    return CompareReport(table, out_dir, report, plots, best_run_id, per_class, paired)
