"""The MLflow record of an evaluation sweep: one parent run per sweep (the table of its configurations, the
best one) and one child run per configuration (params, both PQ modes, time, memory, tables, pictures).

Summary metrics plus artifact tables is what keeps comparing many runs cheap (paper_metrics_anchors.md
section 5.3); `flows.compare` reads these runs back by the names in `flows.mlflow_names`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from datasets.evaluation.label_maps import EvalVocabulary
from datasets.evaluation.scene_scores import per_class_rows, per_scene_rows
from datasets.evaluation.sweep import ConfigurationResult
from flows import mlflow_names as names
from flows.mlflow_tracking import (
    ARTIFACTS_DIRNAME,
    default_tracking_uri,
    ensure_experiment,
    log_metrics,
    log_params,
)


def open_experiment(tracking_uri: str | None, runs_dir: str | Path, experiment: str) -> tuple[str, str]:
    """(tracking URI, experiment id), creating the experiment (artifacts under RUNS/mlartifacts) if absent."""
    uri = tracking_uri or default_tracking_uri(runs_dir)
    artifact_root = Path(runs_dir) / ARTIFACTS_DIRNAME if uri.startswith("sqlite:") else None
    return uri, ensure_experiment(MlflowClient(tracking_uri=uri), experiment, artifact_root)


def log_table(client: MlflowClient, run_id: str, rows: Sequence[Mapping], name: str, folder: Path) -> None:
    """Rows -> `tables/<name>.parquet` and `.csv` artifacts of the run."""
    frame = pd.DataFrame(list(rows))
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False)
    for path in (parquet, csv):
        client.log_artifact(run_id, str(path), artifact_path=names.TABLES_ARTIFACTS)


def log_picture(client: MlflowClient, run_id: str, picture, scene_id: str, folder: Path) -> None:
    """An (H, W, 3) uint8 picture as the `vis/<scene>.png` artifact."""
    from PIL import Image

    path = folder / names.PICTURES_ARTIFACTS / f"{scene_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, optimize=True)
    client.log_artifact(run_id, str(path), artifact_path=names.PICTURES_ARTIFACTS)


# ---------------------------------------------------------------------- a configuration (child run)


def start_configuration_run(
    client: MlflowClient, experiment_id: str, parent_run_id: str, params: Mapping[str, str], run_name: str
) -> str:
    """A child run of the sweep with the configuration's params (CHECKPOINT_LABEL is a tag too)."""
    tags = {
        names.PARENT_RUN_TAG: parent_run_id,
        names.SWEEP_ROLE_TAG: names.SWEEP_CHILD,
        names.CHECKPOINT_LABEL: params[names.CHECKPOINT_LABEL],
    }
    run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
    log_params(client, run_id, params)
    return run_id


def log_configuration(
    client: MlflowClient, run_id: str, result: ConfigurationResult, vocabulary: EvalVocabulary, folder: Path
) -> None:
    """Metrics, the per-scene and per-class tables and result.json of an evaluated configuration."""
    log_params(client, run_id, {names.MEMORY_KIND: result.memory_kind})
    log_metrics(client, run_id, result.metrics, step=0)
    log_table(client, run_id, per_scene_rows(result.scores), names.PER_SCENE_TABLE, folder)
    log_table(client, run_id, per_class_rows(result.scores, vocabulary), names.PER_CLASS_TABLE, folder)
    document = {
        "settings": asdict(result.settings),
        "scene": result.scores.scene.to_dict(),
        "coco": result.scores.coco.to_dict(),
    }
    (folder / names.RESULT_ARTIFACT).write_text(json.dumps(document, indent=1, default=str))
    client.log_artifact(run_id, str(folder / names.RESULT_ARTIFACT))


def configuration_summary(run_id: str, params: Mapping[str, str], metrics: Mapping[str, float]) -> dict:
    """What the flow returns per configuration, from a fresh evaluation or a logged run alike."""
    return {
        "run_id": run_id,
        "checkpoint": params.get(names.CHECKPOINT_LABEL, ""),
        "variant": params.get(names.VARIANT, ""),
        "postprocess": params.get(names.POSTPROCESS, ""),
        "keyframes": params.get(names.KEYFRAMES, ""),
        **metrics,
    }


# ---------------------------------------------------------------------- the sweep (parent run)


def start_sweep_run(
    client: MlflowClient,
    experiment_id: str,
    key: str,
    store: object,
    params: Mapping[str, str],
    run_name: str,
    extra_tags: Mapping[str, str] | None = None,
) -> str:
    tags = {names.SWEEP_ROLE_TAG: names.SWEEP_PARENT, names.SWEEP_KEY_TAG: key, names.STORE_TAG: str(store)}
    tags.update(extra_tags or {})
    run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
    log_params(client, run_id, params)
    return run_id


def log_sweep_result(client: MlflowClient, run_id: str, summaries: list[dict], folder: Path) -> None:
    """The table of all configurations, the best scene PQ (and its COCO PQ) and the best run's id."""
    log_table(client, run_id, summaries, names.SWEEP_TABLE, folder)
    best = max(summaries, key=lambda s: s.get("PQ", float("-inf")))
    metrics = {"best_PQ": best.get("PQ", 0.0), "best_coco_PQ": best.get("coco_PQ", 0.0)}
    log_metrics(client, run_id, metrics, step=0)
    client.set_tag(run_id, names.BEST_RUN_TAG, best["run_id"])


def finished_sweep(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The newest finished parent run with this sweep key, if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{names.SWEEP_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def child_summaries(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """The configuration summaries of a logged sweep."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.{names.PARENT_RUN_TAG} = '{parent_run_id}'", max_results=1000
    )
    return [configuration_summary(run.info.run_id, run.data.params, run.data.metrics) for run in runs]
