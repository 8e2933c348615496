"""Prefect flow `evaluate`: checkpoints x post-processings x keyframe counts x scenes of a store split.

Each configuration (checkpoint, post-processing, keyframes) is one task that predicts every scene of the
split, scores both PQ modes (`datasets.evaluation`) and logs one MLflow child run: params, summary metrics
(PQ, SQ, RQ, PQ_th, PQ_st in scene mode, the same with `coco_` in COCO mode, seconds per scene, peak
memory) and artifacts (per-scene and per-class tables as Parquet and CSV, pictures of predicted vs GT
panoptic maps). The sweep itself is the parent run, with the table of all configurations. Summary metrics
plus artifact tables is what keeps comparing many runs cheap (paper_metrics_anchors.md section 5.3).

Configurations run one after the other, never concurrently, so that seconds and memory are their own.
Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads settings at import).
"""

from __future__ import annotations

import hashlib
import json
import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.scene_run import EvalSettings, evaluate_scene
from datasets.evaluation.scene_scores import aggregate, per_class_rows, per_scene_rows, summary_metrics
from datasets.store.reader import StoreReader
from datasets.store.tables import read_table
from flows.compare import SWEEP_TAG as PARENT_TAG
from flows.mlflow_tracking import (
    ARTIFACTS_DIRNAME,
    default_tracking_uri,
    ensure_experiment,
    log_metrics,
    log_params,
    run_status_on_exit,
)

DEFAULT_CLS_SEP = 256
ALL_SPLITS = ("all", "")
SWEEP_KEY_TAG = "panst3r.sweep_key"
"""Hash of what a sweep evaluated (store content, checkpoint files, settings): equal keys, equal results."""


# ---------------------------------------------------------------------- inputs


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return device


def select_scenes(store: str | Path, split: str | None) -> list[str]:
    """Committed scenes of `split` from the store's scenes table (None / "all": every scene)."""
    scenes = read_table(store, "scenes")
    committed = scenes[scenes["status"].astype(str) != "failed"]
    if split is None or split in ALL_SPLITS:
        selected = committed["scene_id"].astype(str).tolist()
    else:
        labels = sorted(set(committed["split"].astype(str)) - {""})
        if not labels:
            raise ValueError(
                f"store {store} has no split labels (scenes table column `split` is empty); preprocess from "
                "a root with splits/*.txt, or pass --split all to evaluate every scene"
            )
        selected = committed.loc[committed["split"].astype(str) == split, "scene_id"].astype(str).tolist()
        if not selected:
            raise ValueError(f"store {store} has no scene in split {split!r}; its splits are {labels}")
    if not selected:
        raise ValueError(f"store {store} has no committed scene; run `panst3r preprocess` first")
    return sorted(selected)


def store_cls_sep(store: str | Path) -> int:
    """The panoptic id separator the store was written with (root attribute `cls_sep`, default 256)."""
    reader = StoreReader(store)
    attributes = json.loads((reader.layout.zarr_root / "zarr.json").read_text()).get("attributes", {})
    return int(attributes.get("cls_sep", DEFAULT_CLS_SEP))


def checkpoint_label(checkpoint: str | Path) -> str:
    """A short name: the training run's folder for `RUNS/train/<run>/model-final`, else the file/folder."""
    path = Path(checkpoint).resolve()
    if path.name.startswith("model-") and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.stem if path.is_file() else path.name


def training_image_size(checkpoint: str | Path) -> int | None:
    """Long side the model was trained at, from the training run's config.json next to an exported model."""
    path = Path(checkpoint).resolve()
    config = path.parent / "config.json"
    if not path.is_dir() or not config.is_file():
        return None
    try:
        resolutions = json.loads(config.read_text())["data"]["resolutions"]
        return int(max(max(int(v) for v in resolution) for resolution in resolutions))
    except (KeyError, TypeError, ValueError):
        return None


def files_digest(path: str | Path) -> str:
    """Cheap identity of a checkpoint: names, sizes and modification times of its files."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path.parent)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def store_digest(store: str | Path) -> str:
    """Identity of the store's content: every committed scene's id, source hash and config hash."""
    scenes = read_table(store, "scenes")
    committed = scenes[scenes["status"].astype(str) != "failed"].sort_values("scene_id")
    digest = hashlib.sha256()
    for row in committed[["scene_id", "source_hash", "config_hash"]].itertuples(index=False):
        digest.update("\0".join(str(v) for v in row).encode() + b"\n")
    return digest.hexdigest()


def sweep_key(store: str | Path, checkpoints: Sequence[str], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(store_digest(store).encode())
    for checkpoint in checkpoints:
        digest.update(files_digest(checkpoint).encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def keyframes_label(keyframes: int | None) -> str:
    return "all" if keyframes is None else str(keyframes)


# ---------------------------------------------------------------------- model cache and memory

_PREDICTORS: dict[tuple[str, str], Any] = {}
_PREDICTORS_LOCK = threading.Lock()


def load_predictor(checkpoint: str, device: str):
    """One Predictor per (checkpoint, device) in this process: a sweep loads each checkpoint once."""
    from panst3r_core.predictor import Predictor

    key = (str(Path(checkpoint).resolve()), device)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS.clear()  # keep one model in memory; the sweep goes checkpoint by checkpoint
            _PREDICTORS[key] = Predictor(weights=checkpoint, device=device)
        return _PREDICTORS[key]


def model_variant(predictor) -> str:
    variant = predictor.metadata.get("variant")
    if variant:
        return str(variant)
    config = getattr(predictor.model, "config", None)
    if config is None:
        return "unknown"
    head = "v2" if config.panoptic.loftup is not None else "v1"
    return f"panst3r_{head}_{config.encoder.embed_dim}"


class PeakMemory:
    """Peak memory of a block: CUDA max allocated bytes on a GPU, else the process's peak resident set
    (a high-water mark over the process's life, so it never decreases between configurations)."""

    def __init__(self, device: str):
        self.device = device
        self.kind = "cuda_max_allocated" if device.startswith("cuda") else "process_max_rss"

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        pass

    def megabytes(self) -> float:
        if self.kind == "cuda_max_allocated":
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ---------------------------------------------------------------------- MLflow


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _log_table(client, run_id: str, rows: list[dict], name: str, folder: Path) -> pd.DataFrame:
    """Rows -> `tables/<name>.parquet` and `.csv` artifacts of the run."""
    frame = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / f"{name}.parquet", index=False)
    frame.to_csv(folder / f"{name}.csv", index=False)
    client.log_artifact(run_id, str(folder / f"{name}.parquet"), artifact_path="tables")
    client.log_artifact(run_id, str(folder / f"{name}.csv"), artifact_path="tables")
    return frame


def _save_png(picture, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, optimize=True)


def finished_sweep(client, experiment_id: str, key: str) -> str | None:
    """The newest finished parent run with this sweep key, if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SWEEP_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def child_summaries(client, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The configuration summaries of a logged sweep (as `evaluate_configuration` returns them)."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000
    )
    return [
        {
            "run_id": run.info.run_id,
            "checkpoint": run.data.params.get("checkpoint_label", ""),
            "variant": run.data.params.get("variant", ""),
            "postprocess": run.data.params.get("postprocess", ""),
            "keyframes": run.data.params.get("keyframes", ""),
            **run.data.metrics,
        }
        for run in runs
    ]


# ---------------------------------------------------------------------- the task


@task(
    name="evaluate-configuration",
    task_run_name="{label}-{postprocess}-kf{keyframes_text}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def evaluate_configuration(
    store: str,
    checkpoint: str,
    label: str,
    postprocess: str,
    keyframes: int | None,
    keyframes_text: str,
    scenes: list[str],
    split: str,
    max_views: int | None,
    image_size: int,
    device: str,
    query_vocabulary: str,
    visual_scenes: int,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
) -> dict[str, Any]:
    """Predict and score every scene with one configuration; log it as a child run. Returns its summary."""
    logger = get_run_logger()
    settings = EvalSettings(
        postprocess=postprocess,
        keyframes=keyframes,
        max_views=max_views,
        image_size=image_size,
        query_vocabulary=query_vocabulary,
    )
    settings.validate()
    reader = StoreReader(store)
    vocabulary = EvalVocabulary.from_categories(reader.categories(), store)
    cls_sep = store_cls_sep(store)
    predictor = load_predictor(checkpoint, device)
    client = _client(tracking_uri)
    variant = model_variant(predictor)
    run = client.create_run(
        experiment_id,
        tags={
            "mlflow.parentRunId": parent_run_id,
            PARENT_TAG: "child",
            "checkpoint_label": label,
        },
        run_name=f"{label} | {postprocess} | kf={keyframes_text}",
    )
    run_id = run.info.run_id
    memory = PeakMemory(device)
    log_params(
        client,
        run_id,
        {
            "checkpoint": str(Path(checkpoint).resolve()),
            "checkpoint_label": label,
            "variant": variant,
            "postprocess": postprocess,
            "keyframes": keyframes_text,
            "split": split,
            "max_views": "all" if max_views is None else str(max_views),
            "image_size": str(image_size),
            "device": device,
            "store": str(Path(store).resolve()),
            "query_vocabulary": query_vocabulary,
            "num_scenes": str(len(scenes)),
            "memory_kind": memory.kind,
        },
    )
    with run_status_on_exit(client, run_id):
        results = []
        with memory, tempfile.TemporaryDirectory(prefix="panst3r-eval-") as tmp:
            folder = Path(tmp)
            for index, scene_id in enumerate(scenes):
                scores, picture = evaluate_scene(
                    predictor,
                    reader,
                    scene_id,
                    settings,
                    vocabulary,
                    cls_sep,
                    visual_views=3 if index < visual_scenes else 0,
                )
                results.append(scores)
                logger.info(
                    "%s | %s | kf=%s | scene %s: PQ %.3f (coco %.3f), %d views, %.2f s",
                    label,
                    postprocess,
                    keyframes_text,
                    scene_id,
                    scores.scene.all.pq or 0.0,
                    scores.coco.all.pq or 0.0,
                    scores.num_views,
                    scores.extra["seconds"],
                )
                if picture is not None:
                    _save_png(picture, folder / "vis" / f"{scene_id}.png")
                    client.log_artifact(run_id, str(folder / "vis" / f"{scene_id}.png"), artifact_path="vis")
            dataset = aggregate(results, vocabulary)
            metrics = summary_metrics(dataset)
            seconds = [s.extra["seconds"] for s in results]
            metrics["seconds_per_scene"] = sum(seconds) / len(seconds)
            metrics["views_per_scene"] = sum(s.num_views for s in results) / len(results)
            metrics["peak_memory_mb"] = memory.megabytes()
            metrics["num_scenes"] = float(len(results))
            log_metrics(client, run_id, metrics, step=0)
            _log_table(client, run_id, per_scene_rows(dataset), "per_scene", folder)
            _log_table(client, run_id, per_class_rows(dataset, vocabulary), "per_class", folder)
            document = {
                "settings": asdict(settings),
                "scene": dataset.scene.to_dict(),
                "coco": dataset.coco.to_dict(),
            }
            (folder / "result.json").write_text(json.dumps(document, indent=1, default=str))
            client.log_artifact(run_id, str(folder / "result.json"))
    return {
        "run_id": run_id,
        "checkpoint": label,
        "variant": variant,
        "postprocess": postprocess,
        "keyframes": keyframes_text,
        **metrics,
    }


# ---------------------------------------------------------------------- the flow


@flow(name="evaluate")
def evaluate(
    store: str,
    checkpoints: list[str],
    postprocess: list[str] | None = None,
    keyframes: list[int | None] | None = None,
    split: str = "val",
    max_views: int | None = None,
    device: str = "auto",
    experiment: str = "panst3r-eval",
    runs_dir: str = "runs",
    tracking_uri: str | None = None,
    image_size: int | None = None,
    query_vocabulary: str = "store",
    visual_scenes: int = 2,
    sweep_name: str | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Sweep checkpoints x post-processings x keyframe counts (None = all views) over the scenes of `split`.
    With `reuse`, a finished sweep of the same store content, checkpoint files and settings is returned
    instead of evaluating again.

    Returns `{parent_run_id, experiment_id, tracking_uri, scenes, runs: [summary per configuration], reused}`."""
    logger = get_run_logger()
    postprocess = list(postprocess or ["standard_v2"])
    keyframes = list(keyframes) if keyframes else [None]
    checkpoints = [str(Path(c)) for c in checkpoints]
    store_path = Path(store).resolve()
    if not store_path.is_dir():
        raise FileNotFoundError(
            f"--store {store_path} does not exist; run `panst3r preprocess --store` first"
        )
    if not checkpoints:
        raise ValueError("--checkpoints: give at least one checkpoint (a model folder or an official .pth)")
    for checkpoint in checkpoints:
        if not Path(checkpoint).exists():
            raise FileNotFoundError(
                f"checkpoint {checkpoint} does not exist; pass a model folder (e.g. RUNS/train/<run>/model-final)"
                " or an official .pth"
            )
    from panst3r_core.predictor import check_postprocess

    for name in postprocess:
        check_postprocess(name)
    for count in keyframes:
        EvalSettings(keyframes=count, max_views=max_views, query_vocabulary=query_vocabulary).validate()
    scenes = select_scenes(store_path, split)
    device = resolve_device(device)
    uri = tracking_uri or default_tracking_uri(runs_dir)
    client = _client(uri)
    artifact_root = Path(runs_dir) / ARTIFACTS_DIRNAME if uri.startswith("sqlite:") else None
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    sizes = {c: image_size or training_image_size(c) or 512 for c in checkpoints}
    settings = {
        "postprocess": postprocess,
        "keyframes": [keyframes_label(k) for k in keyframes],
        "split": split,
        "max_views": max_views,
        "image_size": sizes,
        "query_vocabulary": query_vocabulary,
    }
    key = sweep_key(store_path, checkpoints, settings)
    if reuse:
        previous = finished_sweep(client, experiment_id, key)
        if previous is not None:
            logger.info("sweep %s already evaluated exactly this (key %s); reusing it", previous, key)
            return {
                "parent_run_id": previous,
                "experiment": experiment,
                "experiment_id": experiment_id,
                "tracking_uri": uri,
                "sweep_key": key,
                "split": split,
                "scenes": scenes,
                "runs": child_summaries(client, experiment_id, previous),
                "reused": True,
            }
    parent = client.create_run(
        experiment_id,
        tags={PARENT_TAG: "parent", SWEEP_KEY_TAG: key, "store": str(store_path)},
        run_name=sweep_name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    parent_id = parent.info.run_id
    log_params(
        client,
        parent_id,
        {
            "store": str(store_path),
            "split": split,
            "checkpoints": ",".join(str(Path(c).resolve()) for c in checkpoints),
            "postprocess": ",".join(postprocess),
            "keyframes": ",".join(settings["keyframes"]),
            "max_views": "all" if max_views is None else str(max_views),
            "device": device,
            "num_scenes": str(len(scenes)),
            "num_configurations": str(len(checkpoints) * len(postprocess) * len(keyframes)),
        },
    )
    logger.info(
        "sweep %s: %d checkpoint(s) x %d post-processing(s) x %d keyframe setting(s) on %d %s scene(s), %s",
        parent_id,
        len(checkpoints),
        len(postprocess),
        len(keyframes),
        len(scenes),
        split,
        device,
    )
    summaries: list[dict[str, Any]] = []
    with run_status_on_exit(client, parent_id):
        for checkpoint in checkpoints:
            label = checkpoint_label(checkpoint)
            for name in postprocess:
                for count in keyframes:
                    summaries.append(
                        evaluate_configuration(
                            str(store_path),
                            checkpoint,
                            label,
                            name,
                            count,
                            keyframes_label(count),
                            scenes,
                            split,
                            max_views,
                            sizes[checkpoint],
                            device,
                            query_vocabulary,
                            visual_scenes,
                            uri,
                            experiment_id,
                            parent_id,
                        )
                    )
        with tempfile.TemporaryDirectory(prefix="panst3r-sweep-") as tmp:
            _log_table(client, parent_id, summaries, "sweep", Path(tmp))
        best = max(summaries, key=lambda s: s.get("PQ", float("-inf")))
        log_metrics(
            client,
            parent_id,
            {"best_PQ": best.get("PQ", 0.0), "best_coco_PQ": best.get("coco_PQ", 0.0)},
            step=0,
        )
        client.set_tag(parent_id, "best_run_id", best["run_id"])
    return {
        "parent_run_id": parent_id,
        "experiment": experiment,
        "experiment_id": experiment_id,
        "tracking_uri": uri,
        "sweep_key": key,
        "split": split,
        "scenes": scenes,
        "runs": summaries,
        "reused": False,
    }
