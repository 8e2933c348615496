"""Synthetic benchmark: train on the train scenes of a store, report scene-level PQ on its held-out scenes.

    python tests/benchmarks/synthetic_pq.py --store runs/gpu_bench/store --config synthetic_cpu \
        --budget-s 420 --out runs/benchmarks/synthetic_pq.json [--set key=value ...]

For machines without Prefect or MLflow (the GPU machines): the run folder's config.json is written here,
the torchrun worker trains (stopped after --budget-s seconds of wall time; the last epoch checkpoint is
then evaluated), and the evaluation calls `datasets.evaluation` directly, the same functions as the
`evaluate` flow. Prints a table and writes the numbers to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script: the project's packages are not installed there


def write_run_config(run_dir: Path, store: Path, config: str, overrides: list[str]) -> dict:
    from panst3r_core.engine.config_files import config_to_dict, load_train_config

    managed = [f"data.stores={json.dumps([str(store)])}", f"training.output_dir={run_dir}"]
    resolved = config_to_dict(load_train_config(config, [*overrides, *managed]))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
    return resolved


def train(run_dir: Path, budget_s: float, nproc: int) -> tuple[float, bool]:
    """torchrun on the run folder; (seconds, finished). Stopped at the budget."""
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
    env["NVSHMEM_DISABLE_NVLS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    command += ["-m", "flows.torchrun_worker", "--run-dir", str(run_dir)]
    started = time.perf_counter()
    with open(run_dir / "torchrun.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=60)
            return time.perf_counter() - started, False
    if code != 0:
        raise RuntimeError(f"torchrun exited with {code}; see {run_dir / 'torchrun.log'}")
    return time.perf_counter() - started, True


def evaluate(
    store: Path, model: Path, postprocess: list[str], image_size: int, split: str, embedder: str
) -> list[dict]:
    import pandas as pd

    from datasets.evaluation.label_maps import EvalVocabulary
    from datasets.evaluation.scene_run import EvalSettings, evaluate_scene
    from datasets.evaluation.scene_scores import aggregate, summary_metrics
    from datasets.store.reader import StoreReader
    from panst3r_core.predictor import Predictor

    reader = StoreReader(store)
    scenes = pd.read_parquet(store / "tables" / "scenes.parquet")
    scene_ids = sorted(scenes.loc[scenes["split"].astype(str) == split, "scene_id"].astype(str))
    vocabulary = EvalVocabulary.from_categories(reader.categories(), store)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = Predictor(weights=model, device=device, text_embeddings=embedder)
    rows = []
    for name in postprocess:
        settings = EvalSettings(postprocess=name, image_size=image_size)
        results = [evaluate_scene(predictor, reader, s, settings, vocabulary, 256)[0] for s in scene_ids]
        metrics = summary_metrics(aggregate(results, vocabulary))
        metrics["seconds_per_scene"] = sum(r.extra["seconds"] for r in results) / len(results)
        rows.append({"postprocess": name, "scenes": len(results), **metrics})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--config", default="synthetic_cpu")
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "benchmarks" / "synthetic_pq_run")
    parser.add_argument("--budget-s", type=float, default=420.0, help="training wall-time budget")
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--postprocess", nargs="+", default=["standard_v2", "qubo"])
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "synthetic_pq.json")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    args = parser.parse_args(argv)

    store = args.store.resolve()
    config = write_run_config(args.run_dir.resolve(), store, args.config, args.overrides)
    seconds, finished = train(args.run_dir.resolve(), args.budget_s, args.nproc)
    model = args.run_dir / "model-final"
    if not finished or not (model / "config.json").is_file():
        model = args.run_dir / "checkpoint-last"  # the last completed epoch
    steps = 0
    metrics_file = args.run_dir / "metrics.jsonl"
    if metrics_file.is_file():
        steps = max(
            (json.loads(line).get("step", 0) for line in metrics_file.read_text().splitlines()), default=0
        )
    image_size = max(max(r) for r in config["data"]["resolutions"])
    embedder = config["model"]["text_embeddings"]
    rows = evaluate(store, model.resolve(), args.postprocess, image_size, args.split, embedder)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "train_seconds": seconds,
        "train_finished": finished,
        "last_logged_step": steps,
        "model": str(model),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"trained {seconds:.0f} s ({'finished' if finished else 'stopped at the budget'}), step {steps}")
    print(f"{'postprocess':<12} {'PQ':>6} {'PQ_th':>6} {'PQ_st':>6} {'coco_PQ':>8} {'s/scene':>8}")
    for row in rows:
        print(
            f"{row['postprocess']:<12} {row.get('PQ', 0):6.3f} {row.get('PQ_th', 0):6.3f} "
            f"{row.get('PQ_st', 0):6.3f} {row.get('coco_PQ', 0):8.3f} {row['seconds_per_scene']:8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
