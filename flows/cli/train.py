"""`panst3r train`: run the Prefect flow `train` (torchrun on a store, logged to MLflow)."""

from __future__ import annotations

import argparse

from flows.cli._common import (
    add_overrides_argument,
    add_prefect_port_argument,
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
        help="store made by `panst3r preprocess`; repeat the flag to train on several (one vocabulary)",
    )
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
    add_prefect_port_argument(parser)
    add_overrides_argument(parser)


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import prefect_api

    for store in args.store:
        require_store(store)
    check_override_syntax(args.overrides)
    from flows.run_config import check_overrides

    check_overrides(args.config, args.overrides)  # fail on a bad key before starting Prefect
    prepare_prefect()
    with prefect_api(port=args.prefect_port):
        from flows.train import train  # imports prefect: after the env is set

        summary = train(
            store=args.store,
            config=args.config,
            overrides=list(args.overrides),
            nproc_per_node=args.nproc_per_node,
            run_name=args.run_name,
            experiment=args.experiment,
            tracking_uri=args.tracking_uri,
            runs_dir=args.runs_dir,
            reuse=args.reuse,
        )
    print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
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
