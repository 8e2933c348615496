"""Batch prediction throughput: scenes per GPU-hour of the `predict-batch` flow itself (Prefect, Dask, one
GPU per worker, the model loaded once per worker, every scene's files written and committed).

Scenes are image folders of random 512x384 views (as tests/benchmarks/inference.py draws them); the model
is a registered variant with random weights saved as a checkpoint folder. For each worker count the flow
predicts every scene into a fresh output folder, then runs once more over the same folder to time the
incremental re-run (every scene skipped).

GPU:   python tests/benchmarks/predict_batch.py --device cuda --scenes 16 --views 100
Smoke: python tests/benchmarks/predict_batch.py --device cpu --variant tiny_v1 --scenes 2 --views 3 \
           --width 96 --height 64 --workers 1

Per row: scenes per hour and per GPU-hour over the prediction phase (from the first submission to the
last scene's end: includes each worker's start and model load, as a real run pays them), the steady
rate from the scenes each worker predicted after its first (load excluded), and the re-run's seconds.
On CPU workers "per device-hour" is per worker-hour. Prints a table and writes JSON (default
runs/benchmarks/predict_batch.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cuda (one GPU per worker) or cpu",
    )
    parser.add_argument(
        "--variant", default="panst3r_v1_512", help="registered model variant (random weights)"
    )
    parser.add_argument("--scenes", type=int, default=8, help="scenes per run")
    parser.add_argument("--views", type=int, default=100, help="views per scene")
    parser.add_argument("--width", type=int, default=512, help="view width")
    parser.add_argument("--height", type=int, default=384, help="view height")
    parser.add_argument("--num-keyframes", type=int, default=50, help="keyframes per scene (default 50)")
    parser.add_argument(
        "--amp", choices=["none", "bf16", "fp16"], default="none", help="mixed precision on CUDA"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="worker counts to measure (default: one per visible GPU; 1 on the CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", default=None, help="folder for scenes, model and outputs (default: a temporary one)"
    )
    parser.add_argument("--out", default="runs/benchmarks/predict_batch.json", help="results JSON path")
    return parser.parse_args(argv)


def write_scenes(args: argparse.Namespace, root: Path) -> list[Path]:
    """`--scenes` folders of `--views` random PNG views each."""
    from inference import random_views  # this folder's inference benchmark: the same synthetic views

    folders = []
    for number in range(args.scenes):
        folder = root / f"scene{number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for view, pixels in enumerate(random_views(args.views, args.height, args.width, args.seed + number)):
            Image.fromarray(pixels).save(folder / f"view{view:05d}.png", compress_level=1)
        folders.append(folder)
    return folders


def write_model(args: argparse.Namespace, folder: Path) -> Path:
    """A checkpoint folder of the variant with random weights (built on the device: seconds, not minutes)."""
    from inference import build_random_model

    from panst3r_core.checkpoint.ours import save_checkpoint

    model = build_random_model(args.variant, args.seed, torch.device(args.device)).to("cpu")
    return save_checkpoint(model, folder, metadata={"text_embeddings": "hashed", "variant": args.variant})


def steady_seconds_per_scene(done: dict[str, dict]) -> float | None:
    """Median seconds between one loaded model's consecutive scenes, its first left out (it also loads the
    model): a scene's own seconds would miss that its export overlaps the next scene's prediction."""
    by_model: dict[str, list[float]] = {}
    for result in done.values():
        by_model.setdefault(result["predictor"], []).append(result["finished_at"])
    gaps = [b - a for ends in by_model.values() for a, b in zip(sorted(ends), sorted(ends)[1:])]
    return statistics.median(gaps) if gaps else None


def measure(args, folders: list[Path], model: Path, work: Path, workers: int) -> dict:
    from datasets.batch_prediction.settings import PredictionSettings
    from flows.predict_batch import run_predict_batch, throughput

    settings = PredictionSettings(
        num_keyframes=args.num_keyframes, amp=args.amp, image_size=max(args.width, args.height)
    )
    out = work / f"out_w{workers}"
    run = dict(
        out=str(out),
        weights=str(model),
        settings=settings,
        folders=folders,
        device=args.device,
        workers=workers,
    )
    summary = run_predict_batch(**run)
    if summary["failed"]:
        raise SystemExit(f"benchmark scenes failed: {summary['failed']}")
    started = time.perf_counter()
    rerun = run_predict_batch(**run)
    rerun_seconds = time.perf_counter() - started
    devices = summary["gpus"] or workers
    rates = throughput(len(summary["done"]), summary["predict_seconds"], devices)
    steady = steady_seconds_per_scene(summary["done"])
    return {
        "workers": workers,
        "gpus": summary["gpus"],
        "scenes": len(summary["done"]),
        "views_per_scene": args.views,
        "predict_seconds": round(summary["predict_seconds"], 2),
        "flow_seconds": round(summary["seconds"], 2),
        "scenes_per_hour": round(rates["scenes_per_hour"], 1),
        "scenes_per_device_hour": round(rates["scenes_per_gpu_hour"], 1),
        "steady_seconds_per_scene": None if steady is None else round(steady, 3),
        "steady_scenes_per_device_hour": None if not steady else round(3600.0 / steady, 1),
        "rerun_seconds": round(rerun_seconds, 2),
        "rerun_skipped": len(rerun["skipped"]),
    }


def default_workers(device: str) -> list[int]:
    from flows.gpu_workers import visible_gpus

    return [len(visible_gpus()) or 1] if device.startswith("cuda") else [1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory(prefix="predict-batch-bench-") as tmp:
        work = Path(args.work or tmp)
        from flows.prefect_env import LocalServer, configure_prefect_env, drain_prefect_clients, free_port

        configure_prefect_env(work / "prefect")  # before anything imports prefect
        server = LocalServer(free_port()).start()
        os.environ["PREFECT_API_URL"] = server.api_url
        try:
            folders = write_scenes(args, work / "scenes")
            model = write_model(args, work / "model")
            rows = [
                measure(args, folders, model, work, w) for w in args.workers or default_workers(args.device)
            ]
        finally:
            drain_prefect_clients()  # queued logs go out while the server still runs
            server.stop()
    report(args, rows)
    return 0


def report(args: argparse.Namespace, rows: list[dict]) -> None:
    columns = [
        ("workers", "workers"),
        ("gpus", "GPUs"),
        ("scenes", "scenes"),
        ("predict_seconds", "predict s"),
        ("scenes_per_hour", "scenes/h"),
        ("scenes_per_device_hour", "scenes/dev-h"),
        ("steady_scenes_per_device_hour", "steady scenes/dev-h"),
        ("rerun_seconds", "re-run s"),
    ]
    print(" | ".join(title for _, title in columns))
    for row in rows:
        print(" | ".join(str(row[key]) for key, _ in columns))
    settings = {k: v for k, v in vars(args).items() if k not in ("work", "out")}
    machine = f"{platform.node()} {torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()}"
    document = {"benchmark": "predict_batch", "settings": settings, "machine": machine, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    sys.exit(main())
