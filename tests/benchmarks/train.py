"""Training throughput benchmark: optimizer steps of PanSt3R (random weights) on synthetic batches.

Each step is what the training loop does per iteration: forward (DINOv2 and MUSt3R without gradients
unless --finetune, panoptic decoder with gradients) under the chosen autocast, targets from the objects the
loader found (or, with --objects-in-step, from the id maps on the device),
Hungarian matching + losses with deep supervision, backward, AdamW step. Batches are random images with
rectangle instances built once on the device, or with --store one batch of a preprocessed store's real samples (its
object counts vary per sample, as training's do); the loader is not measured (see tests/benchmarks/loader.py). Reports training samples
per second (samples = multi-view tuples; all ranks together), seconds per step, peak GPU memory and the median
seconds of each phase (forward, loss, backward, optimizer) timed with a synchronisation around it; prints a
table and writes JSON (default runs/benchmarks/train.json). --profile adds the operator tables (the phases are
named in them) and the operator calls per step.

Stage 2 of the synthetic recipe on the GPU (MUSt3R frozen, DINO branch and head trained):
    .venv/bin/python tests/benchmarks/train.py --device cuda --variant compact_smooth_v2 --views 12 \
        --resolution 256 192 --batch-size 16 --precisions bf16 --train-dino --objects 30 --profile DIR

GPU (full-size v1, 5 views at 512x384, batch 2 per GPU, fp32 and bf16):
    .venv/bin/python tests/benchmarks/train.py --device cuda
Several GPUs (DDP over NCCL, NVLink multicast off):
    NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 \
    .venv/bin/torchrun --standalone --nproc-per-node 2 tests/benchmarks/train.py --device cuda --precisions bf16
CPU smoke:
    .venv/bin/python tests/benchmarks/train.py --device cpu --variant tiny_v1 --views 3 --resolution 64 48 \
        --steps 2 --warmup 1 --precisions fp32 --num-points 256
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from flows.run_folder import NCCL_SAFE_ENV
from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.config import DataConfig, TrainConfig, TrainingConfig
from panst3r_core.engine.loop import autocast_dtype
from panst3r_core.engine.objectives import apply_freezing, build_objective, default_forward
from panst3r_core.engine.optim import build_optimizer
from panst3r_core.losses.criterion import TOTAL_LOSS_NAME, CriterionConfig, PanopticCriterion
from panst3r_core.losses.sample_objects import BatchObjects, find_sample_objects
from panst3r_core.model.hashed_text_embedding import hashed_class_embeddings
from panst3r_core.model.variants import build_model

PRECISION_TO_AMP = {"fp32": False, "bf16": "bf16", "fp16": "fp16"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu"
    )
    parser.add_argument("--variant", default="panst3r_v1_512", help="registered model variant")
    parser.add_argument("--views", type=int, default=5, help="views per sample (default 5)")
    parser.add_argument("--resolution", nargs=2, type=int, default=[512, 384], metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=2, help="samples per GPU per step (official 2)")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISION_TO_AMP), default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per precision")
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps first (allocator, cuDNN autotune)"
    )
    parser.add_argument(
        "--finetune", action="store_true", help="train MUSt3R and DINOv2 too (default: frozen)"
    )
    parser.add_argument(
        "--train-dino",
        action="store_true",
        help="train the DINO branch with the head, MUSt3R frozen (stage 2 of the synthetic recipe)",
    )
    parser.add_argument("--num-classes", type=int, default=100, help="vocabulary size (ScanNet++: 100)")
    parser.add_argument("--num-points", type=int, default=12288, help="loss points per view (official 12288)")
    parser.add_argument("--objects", type=int, default=20, help="instances per sample")
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="draw the batch from this preprocessed store (real samples; its vocabulary replaces --num-classes)",
    )
    parser.add_argument(
        "--objects-in-step",
        action="store_true",
        help="drop the batch's objects found by the loader: the step finds them on the device (device syncs), "
        "as for a batch built by hand; for A/B",
    )
    parser.add_argument("--no-tf32", action="store_true", help="exact fp32 matmuls (TF32 is on officially)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/train.json"))
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also profile 3 steps; write DIR/profile_<precision>.txt",
    )
    return parser.parse_args(argv)


def synthetic_batch(args, device: torch.device, generator: torch.Generator) -> TrainBatch:
    """Random images in [-1, 1] with `objects` rectangles per sample, each visible in a random subset of
    views (ids shared across views, as in real scenes)."""
    width, height = args.resolution
    batch, views = args.batch_size, args.views
    images = torch.rand(batch, views, 3, height, width, generator=generator) * 2 - 1
    inst = torch.zeros(batch, views, height, width, dtype=torch.int32)
    cls = torch.zeros_like(inst)
    for b in range(batch):
        for obj in range(1, args.objects + 1):
            label = int(torch.randint(0, args.num_classes, (1,), generator=generator))
            for v in range(views):
                if torch.rand(1, generator=generator) < 0.3:
                    continue
                y0 = int(torch.randint(0, height * 3 // 4, (1,), generator=generator))
                x0 = int(torch.randint(0, width * 3 // 4, (1,), generator=generator))
                inst[b, v, y0 : y0 + height // 4, x0 : x0 + width // 4] = obj
                cls[b, v, y0 : y0 + height // 4, x0 : x0 + width // 4] = label
    true_shape = torch.tensor([height, width]).expand(batch, views, 2).clone()
    class_sets = [[f"class {i}" for i in range(args.num_classes)]] * batch
    # As the store loader's collate does: each sample's objects found on the host.
    objects = BatchObjects.pack(
        [find_sample_objects(inst[b], cls[b], args.num_classes) for b in range(batch)]
    )
    return TrainBatch(images, true_shape, inst, cls, class_sets, objects=objects).to(device)


def store_batch(args, device: torch.device) -> tuple[TrainBatch, list[str]]:
    """A batch of the store's samples as training draws them (views, the default crop jitter, resolution),
    seeded, and the store's vocabulary."""
    from datasets.training.collate import collate_views
    from datasets.training.dataset import StoreViewDataset

    dataset = StoreViewDataset(
        stores=[args.store],
        num_views=args.views,
        resolutions=[tuple(args.resolution)],
        aug_crop=DataConfig().aug_crop,
        seed=0,
    )
    generator = torch.Generator().manual_seed(0)
    indices = torch.randperm(len(dataset), generator=generator)[: args.batch_size].tolist()
    batch = TrainBatch.from_any(collate_views([dataset[index] for index in indices]))
    return batch.to(device), list(dataset.classes)


def objects_per_sample(batch: TrainBatch) -> list[int]:
    """Distinct instances over each sample's views: the matcher pads a batch's targets to the largest."""
    return [int((ids.unique() != 0).sum()) for ids in batch.pan_inst_id]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseClock:
    """Names a step's phases for the profiler and, when asked, times each one with a synchronisation around it
    (so that a phase is charged its own GPU work; the timed steps above run without these syncs)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, list[float]] | None = None

    @contextlib.contextmanager
    def __call__(self, name: str):
        with torch.profiler.record_function(f"phase/{name}"):
            if self.seconds is None:
                yield
                return
            sync(self.device)
            started = time.perf_counter()
            yield
            sync(self.device)
            self.seconds.setdefault(name, []).append(time.perf_counter() - started)

    def timed(self, step, steps: int) -> dict[str, float]:
        """Median seconds of each phase over `steps` synchronised steps."""
        self.seconds = {}
        for _ in range(steps):
            step()
        medians = {name: statistics.median(values) for name, values in self.seconds.items()}
        self.seconds = None
        return medians


def profile_steps(step, device: torch.device, path: Path, steps: int = 3) -> None:
    """Profile a few more steps (after the timed ones) and write the operator tables: where a step's time
    goes (GPU kernels, host-side launches and synchronisations)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    averages = prof.key_averages()
    calls = sum(event.count for event in averages if event.key.startswith("aten::"))
    tables = [
        f"{steps} profiled steps; {calls / steps:.0f} aten operator calls a step (nested included)\n",
        averages.table(sort_by="cpu_time_total", row_limit=40),
        averages.table(sort_by="self_cpu_time_total", row_limit=30),
    ]
    if device.type == "cuda":
        tables.append(averages.table(sort_by="self_cuda_time_total", row_limit=40))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(tables))
    print(f"profile: {path}")


def run_precision(args, precision: str, model: nn.Module, device: torch.device, world: int) -> dict:
    config = TrainingConfig(
        amp=PRECISION_TO_AMP[precision],
        finetune_must3r_encoder=args.finetune,
        finetune_must3r_decoder=args.finetune,
        finetune_dino=args.finetune or args.train_dino,
    )
    apply_freezing(model, build_objective(TrainConfig(training=config), []), config)
    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=args.finetune,
        )
    optimizer = build_optimizer(model, config, lr=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    criterion = PanopticCriterion(CriterionConfig(num_points=args.num_points))
    if args.store is None:
        vocabulary = [f"class {i}" for i in range(args.num_classes)]
        generator = torch.Generator().manual_seed(int(os.environ.get("RANK", "0")))
        batch = synthetic_batch(args, device, generator)
    else:
        batch, vocabulary = store_batch(args, device)
    if args.objects_in_step:
        batch = dataclasses.replace(batch, objects=None)
    objective = build_objective(TrainConfig(training=config), vocabulary, criterion)
    embeddings = hashed_class_embeddings(vocabulary).to(device)
    dtype = autocast_dtype(config.amp, device)

    phases = PhaseClock(device)

    def step() -> torch.Tensor:
        with phases("forward"), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = default_forward(ddp, batch, embeddings, config)
        with phases("loss"):  # targets, matching and losses, as in the loop
            loss = objective.loss(outputs, batch)[TOTAL_LOSS_NAME]
        with phases("backward"):
            scaler.scale(loss).backward()
        with phases("optimizer"):
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach()  # read after the timed steps, as the loop reads its losses once per window

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    sync(device)
    if world > 1:
        dist.barrier()
    started = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    sync(device)
    seconds = time.perf_counter() - started
    if args.profile:
        profile_steps(step, device, args.profile / f"profile_{precision}.txt")
    phase_seconds = phases.timed(step, args.steps)
    samples = args.steps * args.batch_size * world
    return {
        "precision": precision,
        "samples_per_s": samples / seconds,
        "seconds_per_step": seconds / args.steps,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "phase_seconds": phase_seconds,
        "last_loss": float(losses[-1]),
        "objects_per_sample": objects_per_sample(batch),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for key, value in NCCL_SAFE_ENV.items():
        os.environ.setdefault(key, value)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", device.index or 0)))
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(0)
    model = build_model(args.variant).to(device).train()
    rows = [run_precision(args, precision, model, device, world) for precision in args.precisions]
    if rank == 0:
        report = {
            "benchmark": "train",
            "variant": args.variant,
            "views": args.views,
            "resolution": args.resolution,
            "batch_size_per_rank": args.batch_size,
            "world_size": world,
            "finetune_backbones": args.finetune,
            "train_dino": args.finetune or args.train_dino,
            "num_points": args.num_points,
            "objects_found_in": "step" if args.objects_in_step else "loader",
            "batch_source": str(args.store)
            if args.store
            else f"synthetic, {args.objects} rectangles a sample",
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu",
            "torch": torch.__version__,
            "results": rows,
        }
        print(
            f"\ntrain: {args.variant}, {args.views} views at {args.resolution[0]}x{args.resolution[1]}, batch "
            f"{args.batch_size} x {world} rank(s), backbones {'trained' if args.finetune else 'frozen'}"
        )
        print(f"{'precision':>9} {'samples/s':>10} {'s/step':>8} {'peak GiB':>9}")
        for row in rows:
            peak = f"{row['peak_memory_gib']:.1f}" if row["peak_memory_gib"] is not None else "-"
            print(
                f"{row['precision']:>9} {row['samples_per_s']:>10.3f} {row['seconds_per_step']:>8.3f} {peak:>9}"
            )
            phases = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in row["phase_seconds"].items())
            print(f"{'':>9} synchronised phases: {phases}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results: {args.out}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
