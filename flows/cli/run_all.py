"""`panst3r run-all` (what `make run` calls): the whole pipeline on embedded defaults, on the CPU.

synth (6 small scenes: 4 train + 2 held out) -> the Prefect flow `pipeline` (flows/pipeline.py: preprocess
on a local Dask cluster -> train with config synthetic_finetune_cpu, one process: the official "fine-tune from
PanSt3R" of the shipped synthetic model -> evaluate the shipped model and the fine-tuned one on the held-out
scenes, standard_v2 as released and without its mask threshold, standard_v1, two keyframe settings) ->
compare; then it prints where to look.

Idempotent: the synthetic scenes are written once per setting (a marker file records them), and the
pipeline skips what is up to date: unchanged scenes, a model trained on the same store content with the
same settings, an identical finished evaluation sweep.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from flows.cli._common import (
    add_overrides_argument,
    add_prefect_port_argument,
    check_override_syntax,
    prepare_prefect,
)
from flows.mlflow_names import PARENT_RUN_TAG
from panst3r_core.pretrained import DENSE_POSTPROCESS, SHIPPED_PREFIX, SYNTHETIC_MODEL, resolve_weights

HELP = "the whole pipeline on embedded defaults (what `make run` calls)"
EXPERIMENT = "panst3r-run-all"
MLFLOW_PORT = 5055


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", default="runs", help="state folder for everything (default ./runs)")
    parser.add_argument("--scenes", type=int, default=6, help="synthetic scenes (default 6)")
    parser.add_argument(
        "--val-scenes", type=int, default=2, help="of which held out for evaluation (default 2)"
    )
    parser.add_argument("--frames", type=int, default=16, help="DSLR frames per scene (default 16)")
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        default=(320, 240),
        metavar=("W", "H"),
        help="synthetic DSLR size (default 320 240: the shipped model's 4:3 frames)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes (default 0)")
    parser.add_argument(
        "--target-resolution", type=int, default=256, help="preprocessing output width (default 256)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Dask workers of preprocess (default 2)")
    parser.add_argument(
        "--config",
        default="synthetic_finetune_cpu",
        help="training config (default synthetic_finetune_cpu: fine-tunes the shipped synthetic model)",
    )
    parser.add_argument(
        "--baseline",
        default=f"{SHIPPED_PREFIX}{SYNTHETIC_MODEL}",
        help="also evaluate this checkpoint in the same sweep, e.g. the model the training starts from "
        "(default: the shipped synthetic model; 'none' for no baseline)",
    )
    parser.add_argument(
        "--keyframes",
        nargs="+",
        default=["4", "all"],
        help="keyframe settings of the evaluation sweep (default 4 all)",
    )
    parser.add_argument(
        "--postprocess",
        nargs="+",
        default=["standard_v2", DENSE_POSTPROCESS, "standard_v1"],
        help=f"post-processings of the evaluation sweep (default standard_v2 {DENSE_POSTPROCESS} standard_v1;"
        " qubo takes about 100 s per 16-view scene of the 100-query model on two CPU cores)",
    )
    parser.add_argument("--device", default="auto", help="evaluation device (default auto)")
    add_prefect_port_argument(parser)
    add_overrides_argument(parser, "training config")


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _keyframes(values: list[str]) -> list[int | None]:
    out: list[int | None] = []
    for value in values:
        if value.lower() == "all":
            out.append(None)
        elif value.isdigit() and int(value) > 0:
            out.append(int(value))
        else:
            raise ValueError(f"--keyframes {value!r}: give positive integers or 'all'")
    return out


def synthesize(args: argparse.Namespace, root: Path) -> tuple[list[str], bool]:
    """Write the synthetic scenes (unless the marker says they exist) and the 4 + 2 split; returns
    (scene ids, written now)."""
    from datasets.synthetic.generate import generate_dataset, scene_ids
    from datasets.synthetic.writer import write_splits

    settings = {
        "scenes": args.scenes,
        "seed": args.seed,
        "frames": args.frames,
        "image_size": list(args.image_size),
        "val_scenes": args.val_scenes,
    }
    marker = root / ".run_all_synth.json"
    ids = scene_ids(args.seed, args.scenes)
    complete = all((root / "data" / scene).is_dir() for scene in ids)
    if complete and _read_state(marker) == settings:
        return ids, False
    ids = generate_dataset(
        root, args.scenes, args.seed, frames=args.frames, image_size=tuple(args.image_size)
    )
    # the generator holds out one scene in four; the demo wants a fixed number of held-out scenes
    write_splits(root, ids[: -args.val_scenes], ids[-args.val_scenes :])
    marker.write_text(json.dumps(settings) + "\n")
    return ids, True


def run(args: argparse.Namespace) -> int:
    if args.scenes < 2 or not 1 <= args.val_scenes < args.scenes:
        raise ValueError(
            f"--scenes {args.scenes} / --val-scenes {args.val_scenes}: need at least one training and one "
            "held-out scene"
        )
    keyframes = _keyframes(list(args.keyframes))
    check_override_syntax(args.overrides)
    from flows.prefect_env import prefect_api

    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    root, store = runs / "synthetic", runs / "stores" / "synthetic"
    timings: dict[str, float] = {}
    prepare_prefect(runs / "prefect")

    started = time.perf_counter()
    ids, written = synthesize(args, root)
    timings["synth"] = time.perf_counter() - started
    _say(f"synth: {len(ids)} scenes in {root}" + ("" if written else " (already there)"))

    with prefect_api(port=args.prefect_port):
        from flows.pipeline import pipeline  # imports prefect: after the env is set

        result = pipeline(
            root=str(root),
            store=str(store),
            pairs=str(root / "pairs"),
            target_resolution=args.target_resolution,
            workers=args.workers,
            config=args.config,
            overrides=list(args.overrides),
            postprocess=list(args.postprocess),
            keyframes=keyframes,
            split="val",
            device=args.device,
            experiment=EXPERIMENT,
            runs_dir=str(runs),
            baselines=[] if args.baseline.lower() == "none" else [str(resolve_weights(args.baseline))],
        )
    timings.update(result["seconds"])
    _report_stages(result, store)
    sweep = result["evaluate"]

    from flows.cli.compare import print_table
    from flows.compare import compare

    started = time.perf_counter()
    report = compare(
        EXPERIMENT,
        filter_string=f"tags.{PARENT_RUN_TAG} = '{sweep['parent_run_id']}'",
        out=runs / "compare",
        runs_dir=runs,
    )
    timings["compare"] = time.perf_counter() - started
    print_table(report.table, EXPERIMENT, top=20)
    _where_to_look(runs, store, report, timings)
    return 0


def _report_stages(result: dict[str, Any], store: Path) -> None:
    prepared, trained, sweep = result["preprocess"], result["train"], result["evaluate"]
    _say(
        f"preprocess: {len(prepared['done'])} done, {len(prepared['skipped'])} unchanged (skipped), "
        f"{len(prepared['failed'])} failed -> {store}"
    )
    if trained["reused"]:
        _say(f"train: reusing {trained['exported_model']} (same store content and settings)")
    else:
        _say(f"train: {trained['global_step']} steps -> {trained['exported_model']}")
    _say(
        f"evaluate: sweep {sweep['parent_run_id']} on {len(sweep['scenes'])} held-out scenes"
        + (" (reused: nothing changed)" if sweep.get("reused") else "")
    )


def _say(line: str) -> None:
    print(f"[run-all] {line}", flush=True)


def _where_to_look(runs: Path, store: Path, report, timings: dict[str, float]) -> None:
    db, artifacts = runs / "mlflow.db", runs / "mlartifacts"
    best = report.table.iloc[0] if not report.table.empty else None
    lines = [
        "",
        "timings: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()),
    ]
    if best is not None:
        lines.append(
            f"best held-out scene PQ {best['PQ']:.3f} (coco PQ {best['coco_PQ']:.3f}): "
            f"{best['postprocess']}, keyframes {best['keyframes']}"
        )
    lines += [
        f"store        {store}   (status: .venv/bin/panst3r status --store {store})",
        f"report       {report.html}   (open it in a browser; plots: {report.out_dir}/*.png)",
        "MLflow UI    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow server "
        f"--backend-store-uri sqlite:///{db} --artifacts-destination {artifacts} "
        f"--host 127.0.0.1 --port {MLFLOW_PORT} --workers 1",
        f"             then http://127.0.0.1:{MLFLOW_PORT} (experiments {EXPERIMENT}, panst3r-train)",
    ]
    print("\n".join(lines), flush=True)
