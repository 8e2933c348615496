"""Synthetic-benchmark accuracy run: generate scenes, preprocess them, train, report scene PQ, ship the model.

Recipes (--recipe):
  two-stage   the official order on synthetic data: stage 1 (`pretrain`, config synthetic_must3r) trains the
              MUSt3R encoder and decoder with MUSt3R's own pointmap objective on the store's depth and poses;
              stage 2 (`train`, config synthetic_head) trains the panoptic head (and the DINO branch, which
              has no pretrained weights offline) on that backbone, frozen (`training.must3r_chkpt`).
  scratch     one run (config synthetic_gpu_accuracy) trains everything from scratch (the earlier rows).

For the GPU machine (no Prefect, no MLflow): every stage keeps its output under --work and is skipped when
that output exists, and training resumes from its last checkpoint, so the same command can be repeated until
the run is done. Each training stage plans its cosine schedule from its measured steady step rate: a short
launch measures it, the next plans the schedule to end inside the call (--final-call, or implied when the
next stage follows in the same call). The two-stage run in calls of under 10 minutes on one GPU:

    python tests/benchmarks/synthetic_accuracy.py --stages generate,preprocess,pretrain --pretrain-minutes 0.75 ...
    python tests/benchmarks/synthetic_accuracy.py --stages pretrain --final-call --call-minutes 7 ...
    python tests/benchmarks/synthetic_accuracy.py --stages train --train-minutes 0.75 ...
    python tests/benchmarks/synthetic_accuracy.py --stages train --final-call --call-minutes 8 ...
    python tests/benchmarks/synthetic_accuracy.py --stages evaluate,export ...

(the README's model card gives the exact commands of the shipped model).

Stages:
  generate    --train-scenes + --val-scenes synthetic scenes (ScanNet++ layout, explicit train/val split
              files), one process per scene.
  preprocess  every new or changed scene (content hashes, as the `preprocess` flow decides) into a Zarr
              store at --target-resolution with the library's `run_scene`, one process (one renderer) per
              scene; then the store's finalisation (vocabulary, cls_sep, Parquet tables).
  pretrain    stage 1 on WORK/pretrain (--pretrain-config plus --pretrain-set overrides).
  train       stage 2 (or the scratch run) on WORK/run (--config plus --set overrides; stage 2 of the
              two-stage recipe adds training.must3r_chkpt=<stage 1's model>). Both launch the run-folder
              launcher (`flows.run_folder`: torchrun on `flows.torchrun_worker`, as the `train` flow does)
              with the resolved config (`flows.run_config`). Each call trains at most --pretrain-minutes /
              --train-minutes (the engine's `training.time_budget_s`: it stops at an optimizer step and
              writes checkpoint-last); the schedule is planned to take --total-pretrain-minutes /
              --total-train-minutes at the measured rate, or fixed with --pretrain-epochs / --epochs.
  evaluate    the exported model (or, if training is unfinished, checkpoint-last) on the held-out scenes,
              with the library's sweep of one configuration (`datasets.evaluation.sweep`): scene-level PQ
              (PanSt3R / Panoptic Lifting protocol) and per-image COCO PQ, for every --postprocess x
              --eval-keyframes, a per-class table, the first setting on --eval-train-scenes training scenes
              (the generalisation gap), and for the two-stage recipe stage 1's pointmap error and focal
              estimates on the held-out views before and after pretraining; prints them and writes
              WORK/accuracy.json.
  export      the evaluated model in float16 with its recipe and scores as metadata: WORK/shipped/<--ship-name>.

Needs the project importable (installed, or the repository root on PYTHONPATH) and neither Prefect nor
MLflow: it drives the same library functions as the flows. Project imports sit inside the stages, so
that the generate and preprocess process pools start light.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_WORK = Path(__file__).resolve().parents[2] / "runs" / "synthetic_accuracy"

STAGES = ("generate", "preprocess", "pretrain", "train", "evaluate", "export")
RECIPES = {
    # recipe -> (stage 1 config or None, stage 2 config)
    "two-stage": ("synthetic_must3r", "synthetic_head"),
    "scratch": (None, "synthetic_gpu_accuracy"),
}
GENERATED_MARKER = "generated.json"
PREPROCESSED_MARKER = "preprocessed.json"
CALLS_FILE = "train_calls.jsonl"
PRETRAIN_CALLS_FILE = "pretrain_calls.jsonl"
ACCURACY_FILE = "accuracy.json"
# The weights settings a fresh run starts from (`panst3r_core.engine.initial_weights`).
INITIAL_WEIGHTS_KEYS = ("must3r_chkpt", "chkpt")
# Seconds a training call may take beyond its budget (start-up, the last checkpoint, export) before it is killed.
TRAIN_GRACE_S = 150.0
# Share of the measured step rate a final call relies on (checkpoint writes, loader start-up, rate noise).
FINAL_CALL_RATE_MARGIN = 0.9
# With --call-minutes: seconds kept for torchrun's start-up and the last checkpoint and export, and for the
# evaluation when it follows in the same call. Measured on an H100 and an H200 (2026-12-05 and -06): 14-22 s of
# start-up and exit around a training loop, 47-49 s to score 16 + 8 scenes with two post-processings and
# export; about twice that was kept before, which left two minutes of a final call unused.
TRAIN_OVERHEAD_S = 40.0
EVALUATION_RESERVE_S = 70.0
# While preprocessing workers run, the committed scenes' table rows are read this often.
TABLE_READ_SECONDS = 5.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class WorkLayout:
    """Where every stage keeps its output under --work."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "scannetpp"
        self.pairs = work / "pairs"
        self.store = work / "store"
        self.run = work / "run"
        self.pretrain = work / "pretrain"
        self.shipped = work / "shipped"

    @property
    def generated_marker(self) -> Path:
        return self.work / GENERATED_MARKER

    @property
    def preprocessed_marker(self) -> Path:
        return self.work / PREPROCESSED_MARKER

    @property
    def calls(self) -> Path:
        return self.work / CALLS_FILE

    @property
    def accuracy(self) -> Path:
        return self.work / ACCURACY_FILE


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def finished_stage(marker: Path, settings: dict, verb: str) -> dict | None:
    """The marker of a finished stage (None if the stage has not run); an error if it ran with other settings."""
    if not marker.is_file():
        return None
    done = _read_json(marker)
    if done["settings"] != settings:
        raise ValueError(
            f"{marker}: {verb} with {done['settings']}, asked for {settings}; use another --work or the same flags"
        )
    return done


def _pool(workers: int):
    # spawn: the parent must not hand an OpenGL/EGL state or torch threads to the workers
    return multiprocessing.get_context("spawn").Pool(processes=workers, maxtasksperchild=16)


# ---------------------------------------------------------------------------------------------- generate


def _generate_scene(task: dict) -> tuple[str, float]:
    """One scene in its own process (the library's `generate_scene`)."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from datasets.synthetic.generate import SynthConfig, generate_scene

    started = time.perf_counter()
    config = SynthConfig(**task["config"])
    generate_scene(config, task["index"], task["scene_id"], Path(task["root"]), Path(task["pairs"]))
    return task["scene_id"], time.perf_counter() - started


def stage_generate(args: argparse.Namespace, layout: WorkLayout) -> dict:
    from datasets.scannetpp.pairs import scene_pairs_path
    from datasets.synthetic.generate import SynthConfig, scene_ids
    from datasets.synthetic.writer import write_metadata, write_splits

    settings = {
        "train_scenes": args.train_scenes,
        "val_scenes": args.val_scenes,
        "frames": args.frames,
        "image_size": list(args.image_size),
        "seed": args.seed,
    }
    if args.held_out_only:
        settings["held_out_only"] = True  # only then: the markers of full runs keep their settings
    if args.dslr_focal_range is not None:
        settings["dslr_focal_range"] = list(args.dslr_focal_range)  # likewise
    done = finished_stage(layout.generated_marker, settings, "generated")
    if done is not None:
        say(f"generate: skipped ({len(done['train'])} train + {len(done['val'])} val scenes exist)")
        return done
    config = SynthConfig(
        num_scenes=args.train_scenes + args.val_scenes,
        seed=args.seed,
        frames=args.frames,
        image_size=tuple(args.image_size),
        **({} if args.dslr_focal_range is None else {"dslr_focal_range": tuple(args.dslr_focal_range)}),
    )
    config.validate()
    ids = scene_ids(args.seed, config.num_scenes)
    train, val = ids[: args.train_scenes], ids[args.train_scenes :]
    if args.held_out_only:
        # The held-out scenes keep the indices (so the content) of a full run; no training scene is made.
        train = []
    (layout.root / "data").mkdir(parents=True, exist_ok=True)
    write_metadata(layout.root)
    write_splits(layout.root, train, val)
    wanted = {*train, *val}
    todo = [
        {
            "config": asdict(config),
            "index": index,
            "scene_id": scene_id,
            "root": str(layout.root),
            "pairs": str(layout.pairs),
        }
        for index, scene_id in enumerate(ids)
        if scene_id in wanted
        and (
            not scene_pairs_path(layout.pairs, scene_id).is_file()
            or not (layout.root / "data" / scene_id).is_dir()
        )
    ]
    started = time.perf_counter()
    say(f"generate: {len(todo)} of {len(wanted)} scenes to render with {args.workers} processes")
    with _pool(min(args.workers, max(len(todo), 1))) as pool:
        for count, (scene_id, seconds) in enumerate(pool.imap_unordered(_generate_scene, todo), 1):
            if count % 8 == 0 or count == len(todo):
                say(f"generate: {count}/{len(todo)} scenes (last {scene_id}, {seconds:.1f} s)")
    done = {
        "settings": settings,
        "train": train,
        "val": val,
        "seconds": round(time.perf_counter() - started, 2),
    }
    _write_json(layout.generated_marker, done)
    say(f"generate: done in {done['seconds']:.0f} s")
    return done


# -------------------------------------------------------------------------------------------- preprocess


def _preprocess_scene(task: dict) -> dict:
    """One scene in its own process (the library's `run_scene`); a failure comes back as its reason."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from datasets.preprocess.error_kinds import failure_reason
    from datasets.preprocess.result import PreprocessConfig
    from datasets.preprocess.scene_job import run_scene

    config = PreprocessConfig(**task["config"])
    try:
        return run_scene(
            task["root"],
            task["store"],
            task["scene_id"],
            config,
            task["pairs"],
            task["split"],
            task["source_hash"],
        )
    except Exception as exc:  # noqa: BLE001 - recorded as the scene's failure, as the preprocess flow does
        return {"scene_id": task["scene_id"], "error": type(exc).__name__, "reason": failure_reason(exc)}


def stage_preprocess(args: argparse.Namespace, layout: WorkLayout, generated: dict) -> dict:
    from datasets.preprocess.result import PreprocessConfig
    from datasets.preprocess.scene_job import ScenePlanner
    from datasets.store.finalize import finalize_store
    from datasets.store.lock import store_lock
    from datasets.store.tables import TableBuilder
    from datasets.store.writer import open_or_create_store, sweep_staging

    settings = {"target_resolution": args.target_resolution, "generated": generated["settings"]}
    done = finished_stage(layout.preprocessed_marker, settings, "preprocessed")
    if done is not None:
        say(f"preprocess: skipped ({done['frames']} frames in {layout.store})")
        return done
    config = PreprocessConfig(target_resolution=args.target_resolution)
    splits = {**{s: "train" for s in generated["train"]}, **{s: "val" for s in generated["val"]}}
    started = time.perf_counter()
    with store_lock(layout.store):
        open_or_create_store(layout.store)
        sweep_staging(layout.store)
        planner = ScenePlanner(layout.store, layout.root, layout.pairs, config)
        plans: list = []
        say(
            f"preprocess: {len(splits)} scenes to plan, the changed ones written with {args.workers} processes"
        )
        tasks = _planned_tasks(planner, splits, plans, config, layout)
        builder = TableBuilder(layout.store)
        _run_preprocess_tasks(args.workers, tasks, layout, builder)
        current = planner.finish(plans).current_version()
        tables = finalize_store(layout.store, config.cls_sep, current, builder)
    failed = tables["scenes"].loc[tables["scenes"]["status"] == "failed", ["scene_id", "error"]]
    if len(failed):
        raise RuntimeError(f"preprocess: {len(failed)} scene(s) failed: {failed.to_dict('records')}")
    done = {
        "settings": settings,
        "scenes": int(tables["scenes"].shape[0]),
        "frames": int(tables["frames"].shape[0]),
        "pairs": int(tables["pairs"].shape[0]),
        "seconds": round(time.perf_counter() - started, 2),
    }
    _write_json(layout.preprocessed_marker, done)
    say(
        f"preprocess: {done['scenes']} scenes, {done['frames']} frames, {done['pairs']} pairs in {done['seconds']:.0f} s"
    )
    return done


def _planned_tasks(
    planner: Any, splits: dict, plans: list, config: Any, layout: WorkLayout
) -> Iterator[dict]:
    """Each changed scene's task as soon as its plan is decided, as the flow submits them: the workers start
    on the first scene while the others are still hashed (planning 2,016 scenes before the first task took
    67 s on the GPU machine). Every plan is kept, without the inputs it read, for the run's StorePlan."""
    for plan in planner.plans(list(splits)):
        plans.append(replace(plan, record=None))
        if plan.run:
            yield {
                "config": asdict(config),
                "root": str(layout.root),
                "store": str(layout.store),
                "scene_id": plan.scene_id,
                "pairs": str(layout.pairs),
                "split": splits[plan.scene_id],
                "source_hash": plan.source_hash,
            }


def _run_preprocess_tasks(workers: int, tasks: Iterable[dict], layout: WorkLayout, builder: Any) -> None:
    """The scene tasks in a process pool; each outcome is recorded in the store as the flow records it.
    Meanwhile `builder` reads the committed scenes' table rows, so that the final build has only the last
    few to read (a cold build of 2,016 scenes took 60 s)."""
    from datasets.store.failures import clear_failure, write_failure
    from datasets.store.schema import StoreLayout

    store_layout = StoreLayout(layout.store)
    frames, count, last_read = 0, 0, time.monotonic()
    with _pool(workers) as pool:
        for count, result in enumerate(pool.imap_unordered(_preprocess_scene, tasks), 1):
            if "error" in result:
                write_failure(store_layout, result["scene_id"], result["error"], result["reason"], attempt=1)
                say(f"preprocess: scene {result['scene_id']} failed: {result['reason']}")
                continue
            clear_failure(store_layout, result["scene_id"])
            frames += int(result["frames"])
            if count % 8 == 0:
                say(f"preprocess: {count} scenes written, {frames} frames")
            if time.monotonic() - last_read > TABLE_READ_SECONDS:
                builder.read_new_scenes()
                last_read = time.monotonic()
    say(f"preprocess: {count} scenes written, {frames} frames")


# ------------------------------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainingStage:
    """One training run of the recipe (stage 1 `pretrain` or stage 2 `train`) and how this call plans it."""

    name: str
    run: Path
    """Its run folder (config.json, checkpoints, model-final, result.json, torchrun.log)."""
    calls: Path
    """One JSON line per launch: steps, loop seconds and steady rate (what later calls plan with)."""
    config: str
    overrides: tuple[str, ...]
    minutes: float
    """Training time of this call's launch."""
    total_minutes: float
    """Planned training time of the whole schedule."""
    epochs: int | None
    """Fixed schedule instead of a planned one."""
    assumed_steps_per_s: float
    """Rate the first launch plans with (later launches use the measured one)."""
    backbone_from: Path | None = None
    """Stage 2 of the two-stage recipe: the stage-1 run whose MUSt3R weights it starts from (frozen)."""


def pretrain_stage(args: argparse.Namespace, layout: WorkLayout) -> TrainingStage:
    return TrainingStage(
        name="pretrain",
        run=layout.pretrain,
        calls=layout.work / PRETRAIN_CALLS_FILE,
        config=args.pretrain_config,
        overrides=tuple(args.pretrain_overrides),
        minutes=args.pretrain_minutes,
        total_minutes=args.total_pretrain_minutes,
        epochs=args.pretrain_epochs,
        assumed_steps_per_s=args.assumed_steps_per_s,
    )


def head_stage(args: argparse.Namespace, layout: WorkLayout) -> TrainingStage:
    return TrainingStage(
        name="train",
        run=layout.run,
        calls=layout.calls,
        config=args.config,
        overrides=tuple(args.overrides),
        minutes=args.train_minutes,
        total_minutes=args.total_train_minutes,
        epochs=args.epochs,
        assumed_steps_per_s=args.assumed_steps_per_s,
        backbone_from=layout.pretrain if RECIPES[args.recipe][0] is not None else None,
    )


def training_calls(stage: TrainingStage) -> list[dict]:
    if not stage.calls.is_file():
        return []
    return [json.loads(line) for line in stage.calls.read_text().splitlines() if line.strip()]


def measured_steps_per_second(calls: list[dict]) -> float | None:
    """Optimizer steps per second of training loop over earlier calls (None before any step was timed).

    Calls that timed their steady state (after their first steps: loader start-up, first kernel launches)
    count with that rate alone: a one-minute measuring call spends a third of its loop starting up (1.05
    steps/s measured there against 1.49 in the following call of the same run)."""
    steady = [c for c in calls if c.get("steady_steps", 0) > 0 and c.get("steady_seconds", 0) > 0]
    if steady:
        return sum(c["steady_steps"] for c in steady) / sum(c["steady_seconds"] for c in steady)
    steps = sum(c["end_step"] - c["start_step"] for c in calls)
    seconds = sum(c["loop_seconds"] for c in calls)
    return steps / seconds if steps > 0 and seconds > 0 else None


def plan_epochs(
    steps_per_epoch: int,
    done_steps: int,
    progress_epoch: int,
    progress_batch: int,
    steps_per_second: float,
    total_seconds: float,
    call_seconds: float,
    final_call: bool,
) -> int:
    """Epochs whose schedule takes `total_seconds` of training at the given rate; in a final call, at most
    what this call can still train. Never fewer than the epochs already started."""
    started_epochs = progress_epoch + (1 if progress_batch > 0 else 0)
    total_steps = steps_per_second * total_seconds
    if final_call:
        reachable = done_steps + steps_per_second * call_seconds * FINAL_CALL_RATE_MARGIN
        return max(
            started_epochs, min(round(total_steps / steps_per_epoch), int(reachable // steps_per_epoch)), 1
        )
    return max(started_epochs, round(total_steps / steps_per_epoch), 1)


def checkpoint_progress(run: Path) -> dict:
    from panst3r_core.engine.checkpointing import find_resume_checkpoint, read_progress

    checkpoint = find_resume_checkpoint(run)
    if checkpoint is None:
        return {"epoch": 0, "batch": 0, "global_step": 0}
    return asdict(read_progress(checkpoint))


def steps_per_epoch_of(config: Any, nproc: int) -> int:
    """Optimizer steps per epoch of a TrainConfig on `nproc` ranks."""
    training = config.training
    steps = config.data.samples_per_epoch // (training.batch_size * nproc) // training.accum_iter
    if training.max_steps_per_epoch:
        steps = min(steps, training.max_steps_per_epoch)
    if steps < 1:
        raise ValueError("data.samples_per_epoch is too small for one optimizer step; raise it with --set")
    return steps


def train_budget_seconds(
    minutes: float, call_minutes: float | None, call_started: float, reserve_s: float
) -> float:
    """`minutes` of training, shortened so that the whole call fits in `call_minutes` when that is given
    (`reserve_s`: what must still run after this launch in the call, e.g. the evaluation)."""
    budget = minutes * 60.0
    if call_minutes is None:
        return budget
    spent = time.monotonic() - call_started
    left = call_minutes * 60.0 - spent - TRAIN_OVERHEAD_S - reserve_s
    return max(0.0, min(budget, left))


def stage_overrides(stage: TrainingStage) -> list[str]:
    """The stage's --set overrides plus what the recipe sets itself: the training split and, for stage 2 of
    the two-stage recipe, the MUSt3R backbone of stage 1."""
    overrides = [*stage.overrides, "data.split=train"]
    if stage.backbone_from is not None:
        backbone, finished = trained_model(stage.backbone_from)
        if not finished:
            say(f"{stage.name}: stage 1 is unfinished; its backbone comes from {backbone}")
        overrides.append(f"training.must3r_chkpt={backbone}")
    return overrides


def run_training_stage(
    stage: TrainingStage,
    args: argparse.Namespace,
    layout: WorkLayout,
    final_call: bool,
    call_started: float,
    reserve_s: float = 0.0,
) -> dict:
    """Plan and launch this call's share of a stage's schedule (skipped once it finished)."""
    from flows.run_config import resolve_run_config, write_run_config
    from flows.run_folder import finished_export

    finished = finished_export(stage.run)
    if finished is not None:
        say(f"{stage.name}: skipped (finished at step {finished[1]}; {finished[0]})")
        return {"global_step": finished[1], "finished": True}
    # the run's config is resolved from its config once, then kept (later --set overrides apply on top)
    config = resolve_run_config(
        stage.run, [layout.store], stage.config, stage_overrides(stage), keep_folder_config=True
    )
    per_epoch = steps_per_epoch_of(config, args.nproc)
    progress = checkpoint_progress(stage.run)
    budget_s = train_budget_seconds(stage.minutes, args.call_minutes, call_started, reserve_s)
    if args.call_minutes is not None and budget_s < min(30.0, stage.minutes * 60.0) and not final_call:
        say(f"{stage.name}: skipped in this call (only {budget_s:.0f} s of --call-minutes left for it)")
        return {"global_step": progress["global_step"], "finished": False}
    epochs, why = planned_epochs(stage, per_epoch, progress, budget_s, final_call)
    config.training.epochs = int(epochs)
    config.training.time_budget_s = budget_s
    write_run_config(stage.run, config)
    say(
        f"{stage.name}: {epochs} epochs x {per_epoch} steps = {epochs * per_epoch} steps ({why}); now at step "
        f"{progress['global_step']} (epoch {progress['epoch']}, batch {progress['batch']}); "
        f"this call trains at most {budget_s / 60:.1f} min"
    )
    started = time.perf_counter()
    result = _launch_training(args, stage.run, budget_s + TRAIN_GRACE_S)
    _record_call(stage, result, time.perf_counter() - started, epochs)
    return result


def _record_call(stage: TrainingStage, result: dict, wall: float, epochs: int) -> None:
    from flows.run_folder import EXPORT_DIRNAME

    call = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "start_step": result["start_step"],
        "end_step": result["global_step"],
        "loop_seconds": result["loop_seconds"],
        "steady_steps": result.get("steady_steps", 0),
        "steady_seconds": result.get("steady_seconds", 0.0),
        "wall_seconds": round(wall, 2),
        "finished": result["finished"],
        "epochs_planned": int(epochs),
    }
    with stage.calls.open("a") as handle:
        handle.write(json.dumps(call) + "\n")
    steps = call["end_step"] - call["start_step"]
    say(
        f"{stage.name}: {steps} steps in {call['loop_seconds']:.0f} s of loop "
        f"({steps / max(call['loop_seconds'], 1e-9):.2f} steps/s), {wall:.0f} s wall; "
        + ("finished" if result["finished"] else "unfinished: run again to resume")
        + (f" ({stage.run / EXPORT_DIRNAME})" if result["finished"] else "")
    )


def planned_epochs(
    stage: TrainingStage, per_epoch: int, progress: dict, budget_s: float, final_call: bool
) -> tuple[int, str]:
    """(epochs of the whole schedule, why): fixed, or planned from the measured (else assumed) step rate."""
    if stage.epochs is not None:
        return stage.epochs, "fixed epochs"
    rate = measured_steps_per_second(training_calls(stage))
    used_rate = rate if rate is not None else stage.assumed_steps_per_s
    epochs = plan_epochs(
        per_epoch,
        progress["global_step"],
        progress["epoch"],
        progress["batch"],
        used_rate,
        stage.total_minutes * 60.0,
        budget_s,
        final_call,
    )
    source = "measured" if rate is not None else "assumed (--assumed-steps-per-s)"
    why = f"{used_rate:.2f} steps/s {source}, {stage.total_minutes:g} min in all"
    if final_call:
        why += f", ending within this call's {budget_s / 60:.1f} min"
    return epochs, why


def _launch_training(args: argparse.Namespace, run: Path, timeout_s: float) -> dict:
    """torchrun on the run folder through the run-folder launcher (the `train` flow's), without MLflow."""
    from flows.run_folder import TorchrunLaunch, launch

    spec = TorchrunLaunch(run, args.nproc, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4")})
    say("launch: " + " ".join(spec.command()))
    return launch(spec, on_line=lambda line: print(line, flush=True), timeout_s=timeout_s)


def trained_model(run: Path) -> tuple[Path, bool]:
    """(model folder, schedule finished): the export of a finished run, else its checkpoint-last."""
    from flows.run_folder import finished_export
    from panst3r_core.engine.checkpointing import find_resume_checkpoint

    finished = finished_export(run)
    if finished is not None:
        return finished[0], True
    checkpoint = find_resume_checkpoint(run)
    if checkpoint is None:
        raise FileNotFoundError(f"{run}: no trained model yet; run its training stage first")
    return checkpoint, False


# ---------------------------------------------------------------------------------------------- evaluate


def _training_summary(stage: TrainingStage, config: dict, steps: int, nproc: int) -> dict:
    from flows.run_folder import timing_summary

    calls = training_calls(stage)
    training = config["training"]
    return {
        "steps": steps,
        "seconds": round(sum(c["loop_seconds"] for c in calls), 1),
        "wall_seconds": round(sum(c["wall_seconds"] for c in calls), 1),
        "calls": len(calls),
        "samples_seen": steps * training["batch_size"] * training["accum_iter"] * nproc,
        "views_per_sample": config["data"]["num_views"],
        "steps_per_second": measured_steps_per_second(calls),
        **timing_summary(stage.run),  # seconds per iteration and the share spent waiting for the loader
    }


def model_steps(model_path: Path) -> int:
    """Optimizer steps behind a model folder (an export's metadata, or a checkpoint's progress)."""
    from panst3r_core.checkpoint.ours import read_config as read_model_config
    from panst3r_core.engine.checkpointing import read_progress

    try:
        return int(read_model_config(model_path)[1]["trained_steps"])
    except (FileNotFoundError, KeyError, ValueError):
        return read_progress(model_path).global_step


def stage_evaluate(args: argparse.Namespace, layout: WorkLayout, generated: dict) -> dict:
    from flows.run_folder import read_config

    model_path, finished = trained_model(layout.run)
    steps = model_steps(model_path)
    config = read_config(layout.run)
    image_size = args.eval_image_size or max(max(r) for r in config["data"]["resolutions"])
    settings = {
        "model": str(model_path),
        "steps": steps,
        "postprocess": args.postprocess,
        "keyframes": args.eval_keyframes,
        "image_size": image_size,
        "amp": args.eval_amp,
        "train_scenes": args.eval_train_scenes,
    }
    if layout.accuracy.is_file() and _read_json(layout.accuracy).get("settings") == settings:
        say(f"evaluate: skipped ({layout.accuracy} holds this model at step {steps})")
        accuracy = _read_json(layout.accuracy)
        print_table(accuracy)
        return accuracy
    if not finished:
        say(f"evaluate: training is unfinished; evaluating {model_path} (step {steps})")
    accuracy = {
        **_panoptic_scores(args, layout, generated, model_path, image_size),
        "training_finished": finished,
        "training": _training_summary(head_stage(args, layout), config, steps, args.nproc),
        "pretraining": _pretraining_report(args, layout, generated) if layout.pretrain.is_dir() else None,
        "geometry": _model_geometry(args, layout, generated, model_path),
        "data": {
            "generated": generated["settings"],
            "val_scenes": sorted(generated["val"]),
            "preprocess": _read_json(layout.preprocessed_marker)
            if layout.preprocessed_marker.is_file()
            else None,
        },
        "settings": settings,
        "config": config,
    }
    _write_json(layout.accuracy, accuracy)
    print_table(accuracy)
    say(f"evaluate: wrote {layout.accuracy}")
    return accuracy


def _panoptic_scores(
    args: argparse.Namespace, layout: WorkLayout, generated: dict, model_path: Path, image_size: int
) -> dict:
    """Both PQ modes of every --postprocess x --eval-keyframes on the held-out scenes (the first is the
    headline), per scene and per class, and the headline on --eval-train-scenes training scenes."""
    from datasets.evaluation.label_maps import EvalVocabulary
    from datasets.evaluation.predictors import load_predictor
    from datasets.store.reader import StoreReader
    from panst3r_core.device import resolve_device

    device = resolve_device(args.device)
    reader = StoreReader(layout.store)
    vocabulary = EvalVocabulary.from_categories(reader.categories(), layout.store)
    predictor = load_predictor(model_path, device, text_embeddings="hashed", amp=args.eval_amp)
    evaluation = Evaluation(predictor, reader, vocabulary, image_size)
    scenes = sorted(generated["val"])
    rows, per_scene, per_class = [], {}, {}
    for keyframe_text in args.eval_keyframes:
        for row, result in evaluation.run(scenes, list(args.postprocess), keyframe_text):
            rows.append(row)
            per_scene[f"{row['postprocess']}/kf={keyframe_text}"] = per_scene_table(result)
            per_class[f"{row['postprocess']}/kf={keyframe_text}"] = class_rows(result, vocabulary)
    return {
        **{key: rows[0].get(key) for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "coco_PQ")},
        "primary": {"postprocess": rows[0]["postprocess"], "keyframes": rows[0]["keyframes"]},
        "results": rows,
        "per_scene": per_scene,
        "per_class": per_class,
        "training_scenes": _training_scenes(args, evaluation, generated, rows[0], vocabulary),
        "device": _device_name(device),
    }


def _pointmap_errors(args: argparse.Namespace, layout: WorkLayout, generated: dict, models: dict, resolution):
    """Pointmap error and focal estimates on the held-out views (`datasets.evaluation.pointmap_run`) of each
    model of `models` (name -> a built model), at `resolution` (W, H)."""
    import torch

    from datasets.evaluation.pointmap_run import PointmapEvalSettings, evaluate_pointmaps
    from datasets.store.reader import StoreReader
    from panst3r_core.device import resolve_device

    device = resolve_device(args.device)
    settings = PointmapEvalSettings(
        resolution=tuple(resolution),
        max_views=None,
        amp=torch.bfloat16 if device.startswith("cuda") else None,
    )
    reader, scenes = StoreReader(layout.store), sorted(generated["val"])
    return {
        name: evaluate_pointmaps(model.to(device), reader, scenes, settings) for name, model in models.items()
    }


def _largest_resolution(config: dict) -> tuple[int, int]:
    return tuple(max(config["data"]["resolutions"], key=lambda r: r[0] * r[1]))


def _pretraining_report(args: argparse.Namespace, layout: WorkLayout, generated: dict) -> dict:
    """Stage 1: its schedule, and the pointmap error and focal estimates on held-out views before (the
    same variant at the run's initial weights: random, or the weights it continued) and after the 3-D
    pretraining."""
    from flows.run_folder import read_config
    from panst3r_core.checkpoint.loading import load_any_checkpoint
    from panst3r_core.engine.initial_weights import load_initial_weights
    from panst3r_core.engine.loop import seed_everything
    from panst3r_core.model.variants import build_model

    stage = pretrain_stage(args, layout)
    model_path, finished = trained_model(stage.run)
    config = read_config(stage.run)
    seed_everything(config["training"]["seed"])  # the worker's seed before it builds the model (rank 0)
    initial = build_model(config["model"]["variant"])
    starts = {key: config["training"].get(key) for key in INITIAL_WEIGHTS_KEYS}
    models = {"after": load_any_checkpoint(model_path).model}
    try:
        load_initial_weights(initial, starts["must3r_chkpt"], starts["chkpt"])
        models["before"] = initial
    except (OSError, ValueError) as error:  # e.g. weights carried to the training call but not to this one
        say(f"pretrain: no 'before' row: the weights stage 1 started from do not load here ({error})")
    errors = _pointmap_errors(args, layout, generated, models, _largest_resolution(config))
    before, after = errors.get("before"), errors["after"]
    steps = model_steps(model_path)
    report = {
        "finished": finished,
        "model": str(model_path),
        "initial_weights": starts,
        "training": _training_summary(stage, config, steps, args.nproc),
        "before": None
        if before is None
        else {key: value for key, value in before.items() if key != "per_scene"},
        "after": after,
    }
    say(
        f"pretrain: held-out median relative pointmap error {_before_arrow(before, 'median_rel_error_global')}"
        f"{after['median_rel_error_global']:.3f} (local {_before_arrow(before, 'median_rel_error_local')}"
        f"{after['median_rel_error_local']:.3f}); focal within {after['focal_tolerance']:.0%} on "
        f"{after['focal_within_tolerance']:.0%} of {after['views']} views (median error "
        f"{after['focal_median_rel_error']:.3f}, bias {after['focal_bias']:+.3f}, correlation with the truth "
        f"{after['focal_correlation']:.2f})"
    )
    return report


def _before_arrow(before: dict | None, key: str) -> str:
    """'0.812 -> ' for a report line, or nothing when stage 1's starting weights were not scored."""
    return "" if before is None else f"{before[key]:.3f} -> "


def _model_geometry(args: argparse.Namespace, layout: WorkLayout, generated: dict, model_path: Path) -> dict:
    """The evaluated model's own pointmap error and focal estimates on the held-out views: what stage 2 kept
    of stage 1's geometry (it changes when stage 2 fine-tunes the backbone)."""
    from flows.run_folder import read_config
    from panst3r_core.checkpoint.loading import load_any_checkpoint

    model = load_any_checkpoint(model_path).model
    errors = _pointmap_errors(
        args, layout, generated, {"model": model}, _largest_resolution(read_config(layout.run))
    )["model"]
    summary = {key: value for key, value in errors.items() if key != "per_scene"}
    say(
        f"evaluate: the model's held-out median relative pointmap error {summary['median_rel_error_global']:.3f} "
        f"(local {summary['median_rel_error_local']:.3f}); focal within {summary['focal_tolerance']:.0%} on "
        f"{summary['focal_within_tolerance']:.0%} of {summary['views']} views"
    )
    return summary


class Evaluation:
    """The library's sweep of one configuration (`datasets.evaluation.sweep`) with this run's model."""

    def __init__(self, predictor: Any, reader: Any, vocabulary: Any, image_size: int) -> None:
        self.predictor, self.reader, self.vocabulary, self.image_size = (
            predictor,
            reader,
            vocabulary,
            image_size,
        )

    def run(self, scenes: list[str], postprocesses: list[str], keyframe_text: str) -> list[tuple[dict, Any]]:
        """(table row, ConfigurationResult) of each post-processing at one keyframe setting on `scenes`; each
        scene's inference runs once for all of them."""
        from datasets.evaluation.scene_run import EvalSettings
        from datasets.evaluation.sweep import evaluate_configurations

        keyframes = None if keyframe_text == "all" else int(keyframe_text)
        settings = [
            EvalSettings(postprocess=name, keyframes=keyframes, image_size=self.image_size)
            for name in postprocesses
        ]
        started = time.perf_counter()
        results = evaluate_configurations(self.predictor, self.reader, scenes, settings, self.vocabulary)
        rows = [
            self._row(one.postprocess, keyframe_text, scenes, one_result)
            for one, one_result in zip(settings, results)
        ]
        for row in rows:
            say(
                f"evaluate: {row['postprocess']} kf={keyframe_text} on {len(scenes)} scenes: PQ {row.get('PQ', 0):.3f} "
                f"(coco {row.get('coco_PQ', 0):.3f})"
            )
        say(f"evaluate: {len(rows)} post-processing(s) in {time.perf_counter() - started:.0f} s")
        return list(zip(rows, results))

    @staticmethod
    def _row(postprocess: str, keyframe_text: str, scenes: list[str], result: Any) -> dict:
        from datasets.evaluation.sweep import NUM_SCENES, PEAK_MEMORY_MB, SECONDS_PER_SCENE, VIEWS_PER_SCENE

        metrics = dict(result.metrics)
        views = metrics.pop(VIEWS_PER_SCENE) * metrics.pop(NUM_SCENES)
        return {
            "postprocess": postprocess,
            "keyframes": keyframe_text,
            "scenes": len(scenes),
            "views": int(round(views)),
            "seconds_per_scene": round(metrics.pop(SECONDS_PER_SCENE), 3),
            "peak_memory_mb": round(metrics.pop(PEAK_MEMORY_MB), 1),
            **{key: round(value, 5) for key, value in metrics.items()},
        }


def _training_scenes(
    args: argparse.Namespace, evaluation: Evaluation, generated: dict, primary: dict, vocabulary: Any
) -> dict | None:
    """The headline setting on scenes the model trained on: the gap to the held-out score tells over-fitting
    (more scenes help) from under-fitting (more steps or capacity help). The other post-processings of the
    headline's keyframe setting come along (`by_postprocess`): they share its inference."""
    scenes = sorted(generated["train"])[: args.eval_train_scenes]
    if not scenes:
        return None
    names = [primary["postprocess"], *(p for p in args.postprocess if p != primary["postprocess"])]
    scored = evaluation.run(scenes, names, primary["keyframes"])
    row, result = scored[0]
    metrics = {key: value for key, value in row.items() if key not in ("postprocess", "keyframes", "scenes")}
    others = {
        other["postprocess"]: {key: other.get(key) for key in ("PQ", "PQ_th", "PQ_st", "coco_PQ")}
        for other, _ in scored
    }
    return {
        "scenes": scenes,
        **metrics,
        "per_class": class_rows(result, vocabulary),
        "by_postprocess": others,
    }


def per_scene_table(result: Any) -> list[dict]:
    from datasets.evaluation.scene_scores import per_scene_rows

    return per_scene_rows(result.scores)


def _device_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def class_rows(result: Any, vocabulary: Any) -> list[dict]:
    """The scene-mode columns of the library's per-class table, for the classes kept in at least one scene,
    worst first."""
    from datasets.evaluation.scene_scores import per_class_rows

    keys = ("class_id", "class_name", "isthing", "scenes", "scenes_matched", "PQ", "SQ", "RQ")
    rows = [
        {key: round(row[key], 4) if isinstance(row[key], float) else row[key] for key in keys}
        for row in per_class_rows(result.scores, vocabulary)
        if row["PQ"] is not None
    ]
    return sorted(rows, key=lambda row: (row["PQ"], -row["scenes"]))


def print_class_table(rows: list[dict], limit: int = 40) -> None:
    print(f"{'class':>24} {'thing':>5} {'kept':>4} {'matched':>7} {'PQ':>6} {'SQ':>6} {'RQ':>6}", flush=True)
    for row in rows[:limit]:
        print(
            f"{row['class_name'][:24]:>24} {'yes' if row['isthing'] else 'no':>5} {row['scenes']:>4} "
            f"{row['scenes_matched']:>7} {row['PQ']:>6.3f} {row['SQ']:>6.3f} {row['RQ']:>6.3f}",
            flush=True,
        )


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "-")


def print_table(accuracy: dict) -> None:
    training = accuracy["training"]
    print(
        f"\nmodel {accuracy['config']['model']['variant']} after {training['steps']} steps "
        f"({training['samples_seen']} samples of {training['views_per_sample']} views, {training['seconds']:.0f} s "
        f"of training in {training['calls']} call(s){'' if accuracy['training_finished'] else ', unfinished'}) "
        f"on {accuracy['device']}; {len(accuracy['data']['val_scenes'])} held-out scenes",
        flush=True,
    )
    columns = ["postprocess", "keyframes", "PQ", "SQ", "RQ", "PQ_th", "PQ_st", "coco_PQ", "seconds_per_scene"]
    widths = [12, 9, 6, 6, 6, 6, 6, 7, 17]
    print(" ".join(name.rjust(width) for name, width in zip(columns, widths)), flush=True)
    for row in accuracy["results"]:
        print(" ".join(_cell(row.get(name)).rjust(width) for name, width in zip(columns, widths)), flush=True)
    primary = accuracy["primary"]
    classes = accuracy.get("per_class", {}).get(f"{primary['postprocess']}/kf={primary['keyframes']}")
    if classes:
        print(f"\nper class, {primary['postprocess']} kf={primary['keyframes']} (worst first):", flush=True)
        print_class_table(classes)
    pretraining = accuracy.get("pretraining")
    if pretraining:
        before, after = pretraining["before"], pretraining["after"]
        print(
            f"\nstage 1 ({pretraining['training']['steps']} steps, {pretraining['training']['seconds']:.0f} s): "
            f"held-out median relative pointmap error {_before_arrow(before, 'median_rel_error_global')}"
            f"{after['median_rel_error_global']:.3f}, focal within {after['focal_tolerance']:.0%} on "
            f"{after['focal_within_tolerance']:.0%} of views (bias {after['focal_bias']:+.3f}, correlation "
            f"{after['focal_correlation']:.2f})",
            flush=True,
        )
    geometry = accuracy.get("geometry")
    if geometry:
        print(
            f"\nthe model's geometry: held-out median relative pointmap error "
            f"{geometry['median_rel_error_global']:.3f} (local {geometry['median_rel_error_local']:.3f}), focal "
            f"within {geometry['focal_tolerance']:.0%} on {geometry['focal_within_tolerance']:.0%} of views",
            flush=True,
        )
    seen = accuracy.get("training_scenes")
    if seen:
        print(
            f"\n{len(seen['scenes'])} training scenes, same settings: PQ {_cell(seen.get('PQ'))} "
            f"PQ_th {_cell(seen.get('PQ_th'))} PQ_st {_cell(seen.get('PQ_st'))} coco_PQ {_cell(seen.get('coco_PQ'))}",
            flush=True,
        )


# ------------------------------------------------------------------------------------------------ export


def training_metadata(layout: WorkLayout) -> dict:
    """The inference metadata of the run's model (embedder, vocabulary, variant, objective, resolutions), as
    the worker writes into a finished run's export, from the run's config and the store's vocabulary."""
    from datasets.store.reader import StoreReader
    from flows.run_folder import TRAINING_RESOLUTIONS_KEY, read_config

    config = read_config(layout.run)
    return {
        "text_embeddings": config["model"]["text_embeddings"],
        "class_names": [category["name"] for category in StoreReader(layout.store).categories()],
        "variant": config["model"]["variant"],
        "objective": config["training"]["objective"],
        TRAINING_RESOLUTIONS_KEY: [list(resolution) for resolution in config["data"]["resolutions"]],
    }


def model_metadata(weights: str) -> dict:
    """The metadata of a model given as a weights setting when it is one of our exports, else empty (an
    official .pth carries none)."""
    from panst3r_core.checkpoint.ours import read_config as read_model_config
    from panst3r_core.pretrained import resolve_weights

    try:
        return read_model_config(resolve_weights(weights))[1]
    except (FileNotFoundError, KeyError, ValueError):
        return {}


def given_backbone_provenance(accuracy: dict) -> dict:
    """For a stage 2 trained on a backbone given as `training.must3r_chkpt` (another model's stage 1): the
    two-stage recipe, that backbone's name and its own stage-1 record (read from its metadata when it is one
    of our exports). Empty when the run trained its backbone itself."""
    backbone = accuracy["config"]["training"].get("must3r_chkpt")
    if not backbone or own_pretraining(accuracy, backbone) is not None:
        return {}
    source = model_metadata(backbone).get("shipped", {})
    return {
        "recipe": "two-stage",
        "backbone": shipped_name(str(backbone)),
        "stages": {"pretrain": (source.get("stages") or {}).get("pretrain"), "train": accuracy["training"]},
    }


def continued_provenance(accuracy: dict) -> dict:
    """For a run that continued another model (`training.chkpt`): that model's name and its own shipped
    record (read from its metadata when it is one of our exports), and the panoptic (stage-2) optimizer
    steps of the whole lineage (stage 1's are in the nested records). Empty for a run that started from a
    backbone alone. When that model is this work's own stage 1 and stage 1 continued a model, the lineage
    goes on from the model stage 1 continued."""
    start = accuracy["config"]["training"].get("chkpt")
    if not start:
        return {}
    own_stage1 = own_pretraining(accuracy, start)
    if own_stage1 is None:
        return _lineage(accuracy, start, None)
    stage1_start = (own_stage1.get("initial_weights") or {}).get("chkpt")
    # a stage 1 from scratch: the export's own record (this work's stage 1) is the whole story
    return _lineage(accuracy, stage1_start, own_stage1["training"]) if stage1_start else {}


def _lineage(accuracy: dict, start: str, own_stage1: dict | None) -> dict:
    """The shipped record of a run continuing `start`; `own_stage1`: this work's stage-1 schedule when the
    backbone is this work's, else the backbone (and its stage 1) is the earlier model's."""
    source = model_metadata(start)
    earlier = source.get("shipped", {})
    if own_stage1 is None:
        # frozen, or fine-tuned from the earlier model's backbone
        inherited = {key: earlier[key] for key in ("recipe", "backbone") if key in earlier}
        pretrain = (earlier.get("stages") or {}).get("pretrain")
    else:
        inherited = {
            "recipe": "two-stage",
            "backbone": f"this run's stage 1, continued from {shipped_name(start)}",
        }
        pretrain = own_stage1
    return {
        **inherited,
        "stages": {"pretrain": pretrain, "train": accuracy["training"]},
        "continued_from": {"model": shipped_name(start), "shipped": earlier or None},
        "lineage_train_steps": accuracy["training"]["steps"]
        + int(earlier.get("lineage_train_steps", source.get("trained_steps", 0))),
    }


def own_pretraining(accuracy: dict, weights: str) -> dict | None:
    """This work's stage-1 report when `weights` names the model that stage 1 trained, else None."""
    from panst3r_core.pretrained import resolve_weights

    pretraining = accuracy.get("pretraining") or {}
    if not pretraining.get("model"):
        return None
    same = Path(resolve_weights(weights)).resolve() == Path(pretraining["model"]).resolve()
    return pretraining if same else None


def shipped_name(checkpoint: str) -> str:
    """A checkpoint's name fit for shipped metadata: `shipped:NAME` as given, else the folder's own name
    (a path names the machine it ran on)."""
    from panst3r_core.pretrained import SHIPPED_PREFIX

    return checkpoint if checkpoint.startswith(SHIPPED_PREFIX) else Path(checkpoint).name


def stage_export(args: argparse.Namespace, layout: WorkLayout) -> Path:
    """The evaluated model as a shipped checkpoint: float16 weights in our format, with how it was made and
    what it scored (from accuracy.json) in its metadata: WORK/shipped/<--ship-name>."""
    import torch

    from panst3r_core.checkpoint.loading import load_any_checkpoint
    from panst3r_core.checkpoint.ours import save_checkpoint

    if not layout.accuracy.is_file():
        raise FileNotFoundError(f"{layout.accuracy}: evaluate the model before exporting it")
    accuracy = _read_json(layout.accuracy)
    loaded = load_any_checkpoint(accuracy["settings"]["model"])
    metadata = {
        **training_metadata(layout),  # what a finished run's export records; a checkpoint-last lacks it
        # the training stores' paths name the machine it was trained on: not shipped
        **{key: value for key, value in loaded.metadata.items() if key != "train_stores"},
        "shipped": {
            "recipe": args.recipe,
            "generated": accuracy["data"]["generated"],
            "preprocess": (accuracy["data"]["preprocess"] or {}).get("settings"),
            "stages": {
                "pretrain": (accuracy.get("pretraining") or {}).get("training"),
                "train": accuracy["training"],
            },
            "held_out": {key: accuracy[key] for key in ("PQ", "PQ_th", "PQ_st", "coco_PQ", "primary")},
            "held_out_scenes": len(accuracy["data"]["val_scenes"]),
            "device": accuracy["device"],
        },
    }
    metadata["shipped"].update(given_backbone_provenance(accuracy))
    metadata["shipped"].update(continued_provenance(accuracy))
    if accuracy.get("training_scenes"):
        scored = accuracy["training_scenes"]
        metadata["shipped"]["train_scenes_PQ"] = {"PQ": scored["PQ"], "scenes": len(scored["scenes"])}
    out = save_checkpoint(loaded.model, layout.shipped / args.ship_name, metadata, dtype=torch.float16)
    size_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    say(f"export: {out} ({size_mb:.1f} MB, float16)")
    return out


# -------------------------------------------------------------------------------------------------- main


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-scenes", type=int, default=480, help="training scenes (default 480)")
    parser.add_argument("--val-scenes", type=int, default=16, help="held-out scenes (default 16)")
    parser.add_argument(
        "--held-out-only",
        action="store_true",
        help="generate and preprocess only the held-out scenes (the same ones a full run of these flags makes): "
        "another seed's held-out set to score models on, in seconds instead of minutes",
    )
    parser.add_argument("--frames", type=int, default=16, help="DSLR frames per scene (default 16)")
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"), help="generated size"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--dslr-focal-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="DSLR focal length per scene as a fraction of the width (default: the generator's, 0.58 0.64)",
    )
    parser.add_argument(
        "--target-resolution", type=int, default=512, help="preprocessing resolution (default 512: 512x384)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(15, (os.cpu_count() or 2) - 1)),
        help="processes for generate/preprocess (default: CPU count - 1, at most 15)",
    )


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe",
        default="two-stage",
        choices=sorted(RECIPES),
        help="two-stage: stage 1 pretrains the MUSt3R backbone (pointmap objective), stage 2 trains the "
        "panoptic head on it, frozen; scratch: one run trains everything from scratch (default two-stage)",
    )
    parser.add_argument("--config", default=None, help="stage-2 config (default: the recipe's)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="stage-2 override"
    )
    parser.add_argument("--pretrain-config", default=None, help="stage-1 config (default: the recipe's)")
    parser.add_argument(
        "--pretrain-set", dest="pretrain_overrides", action="append", default=[], metavar="KEY=VALUE",
        help="stage-1 override",
    )  # fmt: skip
    parser.add_argument("--nproc", type=int, default=1, help="torchrun processes (GPUs), default 1")
    parser.add_argument("--train-minutes", type=float, default=6.0, help="stage-2 training time of this call")
    parser.add_argument(
        "--pretrain-minutes", type=float, default=6.0, help="stage-1 training time of this call"
    )
    parser.add_argument(
        "--call-minutes",
        type=float,
        default=None,
        help="wall-clock limit of this whole call: training is shortened so that the stages before it, "
        "torchrun's start-up and exit and what follows in the call fit",
    )
    parser.add_argument(
        "--final-call",
        action="store_true",
        help="every training stage of this call ends its schedule within it (implied for stage 2 when "
        "evaluate follows, and for stage 1 when stage 2 follows)",
    )
    parser.add_argument("--total-train-minutes", type=float, default=17.0, help="stage-2 schedule length")
    parser.add_argument("--total-pretrain-minutes", type=float, default=8.0, help="stage-1 schedule length")
    parser.add_argument(
        "--assumed-steps-per-s",
        type=float,
        default=2.5,
        help="step rate a stage's first call plans with (later calls use the measured one)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="fix stage 2's training.epochs")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="fix stage 1's training.epochs")


def _add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postprocess", nargs="+", default=["standard_v2", "qubo"], help="post-processors")
    parser.add_argument(
        "--eval-keyframes",
        nargs="+",
        default=["all", "6"],
        help="keyframe counts to evaluate ('all' or a number); the first is the headline (default: all 6)",
    )
    parser.add_argument(
        "--eval-train-scenes",
        type=int,
        default=8,
        help="also score this many training scenes with the headline settings (the generalisation gap; 0: none)",
    )
    parser.add_argument(
        "--eval-image-size", type=int, default=None, help="network long side (default: training)"
    )
    parser.add_argument("--eval-amp", default="none", choices=("none", "bf16"), help="inference autocast")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="evaluation device")
    parser.add_argument(
        "--ship-name",
        default="compact_smooth_v2_synthetic",
        help="folder name of the exported model (export stage)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work folder")
    parser.add_argument(
        "--stages",
        default=None,
        help=f"comma-separated subset of {','.join(STAGES)} (default: all of them the recipe has)",
    )
    _add_data_arguments(parser)
    _add_training_arguments(parser)
    _add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    pretrain_config, head_config = RECIPES[args.recipe]
    default_stages = [s for s in STAGES if s != "pretrain" or pretrain_config is not None]
    args.stages = [s.strip() for s in (args.stages or ",".join(default_stages)).split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    args.config = args.config or head_config
    args.pretrain_config = args.pretrain_config or pretrain_config
    if "pretrain" in args.stages and args.pretrain_config is None:
        parser.error(f"--stages pretrain: the {args.recipe} recipe has no stage 1 (give --pretrain-config)")
    for text in args.eval_keyframes:
        if text != "all" and not (text.isdigit() and int(text) > 0):
            parser.error(f"--eval-keyframes: {text!r} is neither 'all' nor a positive number")
    if args.train_scenes < 1 or args.val_scenes < 1:
        parser.error("--train-scenes and --val-scenes must be at least 1")
    beyond_data = sorted(set(args.stages) - {"generate", "preprocess"})
    if args.held_out_only and beyond_data:
        parser.error(
            f"--held-out-only makes no training scenes: run it with --stages generate,preprocess, not "
            f"{','.join(beyond_data)} (score models on its store with `panst3r evaluate`)"
        )
    return args


def _data_stages(args: argparse.Namespace, layout: WorkLayout) -> tuple[dict | None, dict | None]:
    """(generated, preprocessed) markers, running those stages when asked."""
    generated = preprocessed = None
    if "generate" in args.stages:
        generated = stage_generate(args, layout)
    elif layout.generated_marker.is_file():
        generated = _read_json(layout.generated_marker)
    if "preprocess" in args.stages:
        if generated is None:
            raise FileNotFoundError(f"{layout.generated_marker}: no generated scenes; run the generate stage")
        preprocessed = stage_preprocess(args, layout, generated)
    elif layout.preprocessed_marker.is_file():
        preprocessed = _read_json(layout.preprocessed_marker)
    return generated, preprocessed


def _training_stages(args: argparse.Namespace, layout: WorkLayout, call_started: float) -> None:
    training = [name for name in ("pretrain", "train") if name in args.stages]
    if training and not layout.preprocessed_marker.is_file():
        raise FileNotFoundError(f"{layout.preprocessed_marker}: no store yet; run the preprocess stage")
    if "pretrain" in training:
        final = args.final_call or "train" in args.stages
        # when stage 2 follows in this call, it gets the share of the call that --train-minutes asks for
        reserve = args.train_minutes * 60.0 + TRAIN_OVERHEAD_S if "train" in args.stages else 0.0
        reserve += EVALUATION_RESERVE_S if "evaluate" in args.stages else 0.0
        run_training_stage(pretrain_stage(args, layout), args, layout, final, call_started, reserve)
    if "train" in training:
        final = args.final_call or "evaluate" in args.stages
        reserve = EVALUATION_RESERVE_S if "evaluate" in args.stages else 0.0
        run_training_stage(head_stage(args, layout), args, layout, final, call_started, reserve)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    layout = WorkLayout(args.work.resolve())
    layout.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    call_started = time.monotonic()
    say(f"work folder {layout.work}; stages {','.join(args.stages)}; recipe {args.recipe}")
    generated, preprocessed = _data_stages(args, layout)
    _training_stages(args, layout, call_started)
    if "evaluate" in args.stages:
        if generated is None or preprocessed is None:
            raise FileNotFoundError(f"{layout.work}: generate and preprocess first")
        stage_evaluate(args, layout, generated)
    if "export" in args.stages:
        stage_export(args, layout)
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
