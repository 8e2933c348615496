"""`panst3r train`: run the Prefect flow `train` (torchrun on a store, logged to MLflow)."""

from __future__ import annotations

import argparse
import logging
import sys

from flows.cli._common import (
    STORE_HELP_SUFFIX,
    add_overrides_argument,
    add_prefect_port_argument,
    add_s3_endpoint_argument,
    check_override_syntax,
    prepare_prefect,
    require_store,
)

HELP = "Prefect flow `train`: torchrun on a store, logged to MLflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        required=True,
        action="append",
        help="store made by `panst3r preprocess`; repeat the flag to train on several (one vocabulary)"
        + STORE_HELP_SUFFIX,
    )
    add_s3_endpoint_argument(parser)
    parser.add_argument(
        "--config",
        default="synthetic_cpu",
        help="conf/train/<NAME>.yaml or a path to a .yaml file (default synthetic_cpu)",
    )
    parser.add_argument(
        "--nproc-per-node", type=int, default=1, help="torchrun processes (one per GPU; gloo on the CPU)"
    )
    parser.add_argument(
        "--experiment", default="panst3r-train", help="MLflow experiment (default panst3r-train)"
    )
    parser.add_argument(
        "--run-name", default=None, help="run folder name under RUNS/train/; an existing one is resumed"
    )
    parser.add_argument("--runs-dir", default="runs", help="state folder (default ./runs)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="name the run after the store content and settings; if that run finished, reuse it",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default sqlite RUNS/mlflow.db)"
    )
    add_node_arguments(parser)
    add_prefect_port_argument(parser)
    add_overrides_argument(parser)


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nnodes", type=int, default=1, help="nodes of the run, one `panst3r train` on each (default 1)"
    )
    parser.add_argument(
        "--node-rank",
        type=int,
        default=0,
        help="this node's rank, 0..nnodes-1; node 0 records the run (MLflow, config, checkpoints, results)",
    )
    parser.add_argument(
        "--rdzv-endpoint",
        default=None,
        help="HOST:PORT of node 0 (reachable from every node, a free port): its c10d rendezvous (nnodes > 1)",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=0,
        help="torchrun restarts of every node's workers after a failure, resuming from checkpoint-last",
    )


def check_before_starting(args: argparse.Namespace) -> str:
    """Everything that can be refused before a Prefect server or torchrun starts: the stores, every setting
    (types, model variant, resolutions, data of the split, steps per epoch for the world size), the node
    flags and a run folder held by another launch. Returns the run name (the default one is fixed here)."""
    from flows.run_config import prepare_run, run_folder_for
    from flows.run_folder import TorchrunLaunch
    from flows.run_lock import check_run_folder_free

    for store in args.store:
        require_store(store)
    check_override_syntax(args.overrides)
    run_name = args.run_name
    if args.reuse and not run_name:
        from flows.train_reuse import reuse_run_name

        run_name = reuse_run_name(args.store, args.config, args.overrides, args.nproc_per_node * args.nnodes)
    if args.nnodes > 1 and not run_name:
        raise ValueError("--run-name: a multi-node run needs the same --run-name on every node")
    name, run_dir = run_folder_for(args.config, run_name, args.runs_dir)
    spec = TorchrunLaunch(run_dir, args.nproc_per_node, **node_fields(args))
    spec.validate()
    check_run_folder_free(run_dir, spec.lock_name)
    prepare_run(args.store, args.config, args.overrides, name, args.runs_dir, spec.world_size, write=False)
    return name


def node_fields(args: argparse.Namespace) -> dict:
    return {
        "nnodes": args.nnodes,
        "node_rank": args.node_rank,
        "rdzv_endpoint": args.rdzv_endpoint,
        "max_restarts": args.max_restarts,
    }


class _HideInterruptCrashes(logging.Filter):
    """Prefect reports an interrupted (Ctrl-C, SIGTERM) flow and task run as crashes, in four lines; `run`
    says it in one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Execution was aborted by a" not in record.getMessage()


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import prefect_api
    from flows.run_folder import LaunchError

    name = check_before_starting(args)
    prepare_prefect()
    for logger_name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(logger_name).addFilter(_HideInterruptCrashes())
    try:
        with prefect_api(port=args.prefect_port):
            from flows.train import train  # imports prefect: after the env is set

            summary = train(
                store=args.store,
                config=args.config,
                overrides=list(args.overrides),
                nproc_per_node=args.nproc_per_node,
                run_name=name,
                experiment=args.experiment,
                tracking_uri=args.tracking_uri,
                runs_dir=args.runs_dir,
                reuse=args.reuse,
                **node_fields(args),
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: torchrun and its workers were stopped, the MLflow run is marked KILLED; "
            f"`panst3r train --run-name {name} ...` resumes from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    if summary.get("mlflow_run_id") is None and "node_rank" in summary:
        print(
            f"node {summary['node_rank']} of {summary['nnodes']} done for run {summary['run_name']}; node 0 "
            "holds its checkpoints, metrics, model and MLflow run"
        )
        return
    uri = summary.get("tracking_uri") or ""
    lines = [
        f"run          {summary['run_name']}  ({summary['run_dir']})",
        f"steps        {summary['global_step']} optimizer steps, {summary['epochs']} epochs"
        + (f", resumed from {summary['resumed_from']}" if summary.get("resumed_from") else ""),
        f"checkpoints  {summary['final_checkpoint']} (resumable: checkpoint-last next to it)",
        f"model        {summary['exported_model']} (for panst3r predict / evaluate)",
    ]
    if "first_loss" in summary:
        lines.append(
            f"loss         {summary['first_loss']:.4f} (first logged) -> {summary['last_loss']:.4f} (last)"
        )
    if summary.get("reused"):
        lines.append("reused       a finished run of the same store content and settings; nothing trained")
        print("\n".join(lines))
        return
    lines.append(f"MLflow run   {summary['mlflow_run_id']} ({uri})")
    if uri.startswith("sqlite:"):
        lines.append(
            f"MLflow UI    mlflow ui --backend-store-uri {uri} --port 5000   (then http://127.0.0.1:5000)"
        )
    print("\n".join(lines))
