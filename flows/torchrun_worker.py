"""The process torchrun starts on every rank: `python -m flows.torchrun_worker --run-dir DIR`.

Reads the resolved config (`DIR/config.json`, written by the `train` flow or a benchmark), joins the process
group (gloo on the CPU, nccl on GPUs, `env://` from torchrun; with several ranks, rank 0 reads the config and
the others take it from rank 0, see `flows.worker_group`), builds the store dataset, the model and the
loss, and runs the engine's loop, which auto-resumes from `DIR/checkpoint-last`. Rank 0 writes every logged loss term and the
learning rate to `DIR/metrics.jsonl` and, when the launcher set MLFLOW_RUN_ID and MLFLOW_TRACKING_URI, to that
MLflow run; every rank logs its own throughput there. At the end rank 0 exports the trained model in the
inference checkpoint format (`DIR/model-final`, loadable by `panst3r predict`/evaluate) and `DIR/result.json`.
A launch stopped by `training.time_budget_s` writes result.json with `finished: false` and no export; the
next launch resumes from `DIR/checkpoint-last`.

Under torchrun's agent (`flows.torchrun_agent`) the worker dies with it (SIGKILL on the agent's death), so no
worker outlives its launch. Imports no Prefect (an import-linter contract), and MLflow only when the launcher
handed it a run: it runs under torchrun, not inside a flow, also on machines without either. Run-folder
names: `flows.run_folder`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from datasets.store.integrity import CorruptSceneError
from datasets.training.collate import collate_views
from datasets.training.color_jitter import ColorJitter
from datasets.training.dataset import StoreViewDataset, loader_worker_init
from flows import mlflow_names, worker_group
from flows.parent_death import die_with_parent
from flows.run_folder import (
    AGENT_PID_ENV,
    CONFIG_FILE,
    EXPORT_DIRNAME,
    METRICS_FILE,
    NCCL_SAFE_ENV,
    TRAINING_RESOLUTIONS_KEY,
    read_config,
    write_data_error,
    write_result,
)
from panst3r_core.config import from_dict
from panst3r_core.device import resolve_device
from panst3r_core.engine import JsonlMetricsWriter, TrainConfig, TrainData, seed_everything, train

log = logging.getLogger("flows.torchrun_worker")

DATA_ERROR_EXIT_CODE = 65  # EX_DATAERR


def read_run_config(run_dir: Path) -> TrainConfig:
    return from_dict(TrainConfig, read_config(run_dir), where=str(run_dir / CONFIG_FILE))


def class_embeddings(names: list[str], embedder: str) -> torch.Tensor:
    """(C, 768) embeddings of the vocabulary with the configured embedder."""
    if embedder == "hashed":
        from panst3r_core.model.hashed_text_embedding import hashed_class_embeddings

        return hashed_class_embeddings(names)
    from panst3r_core.model.text_encoder import TextEncoder

    return TextEncoder(kind=embedder)(names)


def init_distributed(join: bool, device_kind: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when torchrun started several ranks (or `join`:
    the config asks for it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(device_kind).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 or join:
        if "MASTER_ADDR" not in os.environ:
            raise ValueError(
                "training.distributed is true but no torchrun environment (MASTER_ADDR) is set; launch with "
                "torchrun or set training.distributed=false"
            )
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return rank, world, device


def join_run(run_dir: Path, device_kind: str) -> tuple[TrainConfig, int, int, torch.device]:
    """(config, rank, world size, device). Several ranks take their rank from their node
    (`flows.worker_group`), join the process group, take rank 0's config and agree on the resume point; a
    single process reads the config itself."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        config = read_run_config(run_dir)
        return (config, *init_distributed(config.training.distributed, device_kind))
    worker_group.assign_node_rank()
    rank, world, device = init_distributed(True, device_kind)
    config = from_dict(
        TrainConfig, worker_group.shared_config(run_dir, rank), where=str(run_dir / CONFIG_FILE)
    )
    if config.training.resume:
        worker_group.check_same_resume_point(config.training.output_dir, world)
    return config, rank, world, device


def build_dataset(config: TrainConfig) -> StoreViewDataset:
    data = config.data
    return StoreViewDataset(
        stores=data.stores,
        num_views=data.num_views,
        resolutions=data.resolutions,
        aug_crop=data.aug_crop,
        seed=config.training.seed,
        split=data.split,
        transform=ColorJitter() if data.color_jitter else None,
    )


def make_train_data(config: TrainConfig, dataset: StoreViewDataset, device: torch.device) -> TrainData:
    workers = config.training.num_workers

    def make_loader(sampler):
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate_views,
            num_workers=workers,
            multiprocessing_context=dataset.loader_start_method if workers > 0 else None,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            worker_init_fn=loader_worker_init,
        )

    return TrainData(
        dataset_size=len(dataset),
        make_loader=make_loader,
        vocabulary=dataset.classes,
        class_embeddings=class_embeddings(dataset.classes, config.model.text_embeddings),
    )


def export_model(model: torch.nn.Module, run_dir: Path, config: TrainConfig, dataset, step: int) -> Path:
    """The trained weights in the inference format (`panst3r_core.checkpoint.ours`), with the embedder and
    the training vocabulary as metadata."""
    from panst3r_core.checkpoint.ours import save_checkpoint

    metadata = {
        "text_embeddings": config.model.text_embeddings,
        "class_names": list(dataset.classes),
        "variant": config.model.variant,
        "objective": config.training.objective,
        TRAINING_RESOLUTIONS_KEY: [list(resolution) for resolution in config.data.resolutions],
        "trained_steps": step,
        "train_stores": [str(store) for store in dataset.stores],
    }
    return save_checkpoint(model, run_dir / EXPORT_DIRNAME, metadata=metadata)


def run(run_dir: Path, device_kind: str = "auto") -> dict[str, Any] | None:
    config, rank, world, device = join_run(run_dir, device_kind)
    for handler in logging.getLogger().handlers:  # the rank in every line: ranks share one output stream
        handler.setFormatter(logging.Formatter(f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s"))
    from panst3r_core.model.variants import build_model

    dataset = build_dataset(config)
    data = make_train_data(config, dataset, device)
    log.info(
        "rank %d/%d on %s: %d samples (pairs) from %d store(s), %d classes, embedder %s",
        rank,
        world,
        device,
        len(dataset),
        len(dataset.stores),
        len(dataset.classes),
        config.model.text_embeddings,
    )
    seed_everything(config.training.seed + rank)
    model = build_model(config.model.variant)

    tracking = None
    if os.environ.get(mlflow_names.RUN_ID_ENV) and os.environ.get(mlflow_names.TRACKING_URI_ENV):
        from flows import mlflow_tracking

        tracking = mlflow_tracking.run_from_environment()
    callbacks = []
    if rank == 0:
        callbacks.append(JsonlMetricsWriter(run_dir / METRICS_FILE))
    if tracking is not None:
        from flows.mlflow_tracking import MlflowMetricsCallback, ThroughputCallback

        client, run_id = tracking
        if rank == 0:
            callbacks.append(MlflowMetricsCallback(client, run_id))
        every = config.training.print_freq or 1
        callbacks.append(ThroughputCallback(rank, config.training.batch_size, every, client, run_id))

    result = train(config, model, data, callbacks=callbacks, device=device)
    if rank != 0:
        return None
    finished = not result.stopped_early
    exported = export_model(model, run_dir, config, dataset, result.global_step) if finished else None
    summary = {
        "final_checkpoint": str(result.final_checkpoint) if finished else None,
        "exported_model": str(exported) if finished else None,
        "global_step": result.global_step,
        "epochs": result.epochs,
        "resumed_from": str(result.resumed_from) if result.resumed_from else None,
        "world_size": world,
        "device": str(device),
        "finished": finished,
        "start_step": result.start_step,
        "loop_seconds": round(result.seconds, 3),
        "steady_steps": result.steady_steps,
        "steady_seconds": round(result.steady_seconds, 3),
    }
    write_result(run_dir, summary)
    if finished:
        log.info("training finished: %s", summary)
    else:
        log.info("training stopped by its time budget (resume by launching again): %s", summary)
    return summary


def teardown() -> None:
    """Leave without letting gloo's threads race the interpreter shutdown (environment.md section 7: a
    barrier, destroy, flush, then os._exit was the only variant without SIGABRTs after training)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flows.torchrun_worker", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--run-dir", required=True, help="run folder holding config.json (written by the flow)"
    )
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when available"
    )
    args = parser.parse_args(argv)
    agent = os.environ.get(AGENT_PID_ENV)
    if agent and agent.isdigit():  # under torchrun's agent: never outlive it, even when it is SIGKILLed
        die_with_parent(int(agent), signal.SIGKILL)
    for key, value in NCCL_SAFE_ENV.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir).resolve()
    try:
        run(run_dir, args.device)
    except CorruptSceneError as exc:
        report_data_error(run_dir, exc)
        logging.shutdown()
        os._exit(DATA_ERROR_EXIT_CODE)
    teardown()


def report_data_error(run_dir: Path, exc: CorruptSceneError) -> None:
    """One line naming the damaged scene/frame/file, also left in the run folder for the launcher. A
    DataLoader worker re-raises it with the worker's traceback in front: keep only the message."""
    message = str(exc).rsplit(f"{type(exc).__name__}: ", 1)[-1].strip()
    log.error("training stopped: %s", message)
    write_data_error(run_dir, message)


if __name__ == "__main__":
    main()
