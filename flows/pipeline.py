"""Prefect flow `pipeline`: preprocess -> train -> evaluate as subflows, each skipping what is up to date.

- preprocess skips scenes whose committed version has the same inputs, settings and code;
- train reuses a finished run of the same store content and settings (flows.train_reuse);
- evaluate reuses a finished sweep of the same store content, checkpoint files and settings.

So a second run with nothing changed trains and evaluates nothing, and a run after one changed scene
preprocesses that scene and trains and evaluates again (the store content changed). `panst3r serve` offers
it as the deployment `pipeline/local`; `panst3r run-all` (`make run`) calls it on synthetic scenes.
Import this module only after `flows.prefect_env.configure_prefect_env` (Prefect reads settings at import).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, get_run_logger

from flows.dask_cluster import choose_cluster
from flows.evaluate import evaluate
from flows.preprocess import WORKERS_ENV, preprocess
from flows.preprocess_runner import preprocess_task_runner
from flows.train import train


@flow(name="pipeline")
def pipeline(
    root: str,
    store: str,
    pairs: str | None = None,
    target_resolution: int = 920,
    workers: int | None = None,
    dask_address: str | None = None,
    config: str = "synthetic_cpu",
    overrides: list[str] | None = None,
    nproc_per_node: int = 1,
    postprocess: list[str] | None = None,
    keyframes: list[int | None] | None = None,
    split: str = "val",
    device: str = "auto",
    experiment: str = "panst3r-pipeline",
    runs_dir: str = "runs",
    baselines: list[str] | None = None,
) -> dict[str, Any]:
    """Preprocess `root` into `store` (Dask: `workers` local processes, default 2 or what `panst3r serve
    --workers` set, or the cluster at `dask_address`),
    train `config` + `overrides` on it, evaluate the trained model on `split` (`postprocess` x `keyframes`,
    None = all views) into the MLflow experiment `experiment`, in one sweep with the `baselines` (other
    checkpoints, e.g. the model a fine-tune started from). Stops after preprocess if a scene failed.

    Returns `{preprocess, train, evaluate, seconds: {stage: s}}` (the three subflows' summaries)."""
    logger = get_run_logger()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    workers = workers or int(os.environ.get(WORKERS_ENV, "2"))
    runner = preprocess_task_runner(choose_cluster(None, workers, dask_address))
    prepared = preprocess.with_options(task_runner=runner)(
        root=root, store=store, pairs=pairs, target_resolution=target_resolution
    )
    seconds["preprocess"] = time.perf_counter() - started
    if prepared["failed"]:
        raise ValueError(
            f"preprocess failed for {prepared['failed']}; fix those scenes (`panst3r status --store {store}`) "
            "and run the pipeline again: training waits for a complete store"
        )

    started = time.perf_counter()
    trained = train(
        store=store,
        config=config,
        overrides=list(overrides or []),
        nproc_per_node=nproc_per_node,
        runs_dir=runs_dir,
        reuse=True,
    )
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    sweep = evaluate(
        store=store,
        checkpoints=[*(baselines or []), trained["exported_model"]],
        postprocess=list(postprocess or ["standard_v2"]),
        keyframes=list(keyframes) if keyframes else [None],
        split=split,
        device=device,
        experiment=experiment,
        runs_dir=runs_dir,
        reuse=True,
    )
    seconds["evaluate"] = time.perf_counter() - started
    logger.info(
        "pipeline done: preprocess %d done / %d skipped, train %s (%s), evaluate sweep %s (%s)",
        len(prepared["done"]),
        len(prepared["skipped"]),
        trained["run_name"],
        "reused" if trained["reused"] else "trained",
        sweep["parent_run_id"],
        "reused" if sweep.get("reused") else "evaluated",
    )
    return {"preprocess": prepared, "train": trained, "evaluate": sweep, "seconds": seconds}
