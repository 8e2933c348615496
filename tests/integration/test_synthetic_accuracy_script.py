"""tests/benchmarks/synthetic_accuracy.py at a toy size on the CPU: generate -> preprocess -> a training call
stopped by its time budget -> a resumed final call that finishes and evaluates -> a repeat that skips all.
Prefect and MLflow cannot be imported in these runs (torchrun's workers included), as on the GPU machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "benchmarks" / "synthetic_accuracy.py"
DATA = [
    "--train-scenes", "2", "--val-scenes", "1", "--frames", "6", "--image-size", "160", "120",
    "--target-resolution", "128", "--workers", "2",
]  # fmt: skip
TOY = [
    *DATA, "--recipe", "scratch", "--epochs", "2",
    "--set", "model.variant=tiny_v1", "--set", "data.resolutions=[[64,48]]", "--set", "data.num_views=3",
    "--set", "data.max_memory_num_views=3", "--set", "data.samples_per_epoch=8",
    "--set", "training.batch_size=2", "--set", "training.num_workers=0", "--set", "criterion.num_points=256",
    "--set", "training.print_freq=1", "--eval-keyframes", "all", "3",
]  # fmt: skip


def _script_module():
    return load_benchmark("synthetic_accuracy", "synthetic_accuracy")


def without_prefect_and_mlflow(folder: Path) -> str:
    """A folder for the front of PYTHONPATH whose `prefect`, `prefect_dask` and `mlflow` fail to import."""
    for name in ("prefect", "prefect_dask", "mlflow"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed on the GPU machines')\n"
        )
    return str(folder)


def run_script(work: Path, *args: str) -> subprocess.CompletedProcess:
    blocked = without_prefect_and_mlflow(work.parent / "blocked_imports")
    path = os.pathsep.join(p for p in (blocked, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [sys.executable, str(SCRIPT), "--work", str(work), *TOY, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_epoch_planning_follows_the_measured_rate_and_a_final_call_ends_in_its_budget():
    script = _script_module()
    calls = [{"start_step": 0, "end_step": 300, "loop_seconds": 100.0}, {"start_step": 300, "end_step": 500, "loop_seconds": 100.0}]  # fmt: skip
    assert script.measured_steps_per_second(calls) == 2.5
    assert script.measured_steps_per_second([]) is None
    # Steady-state timings, where recorded, replace the whole loops (start-up excluded).
    steady = [{**calls[0], "steady_steps": 290, "steady_seconds": 58.0}, calls[1]]
    assert script.measured_steps_per_second(steady) == 5.0
    # 2.5 steps/s for 20 min = 3000 steps = 15 epochs of 200 steps.
    assert script.plan_epochs(200, 500, 2, 100, 2.5, 1200.0, 300.0, final_call=False) == 15
    # A final call of 300 s at 2.5 x 0.9 steps/s reaches step 500 + 675 = 1175: 5 whole epochs.
    assert script.plan_epochs(200, 500, 2, 100, 2.5, 1200.0, 300.0, final_call=True) == 5
    # Never fewer epochs than already started (epoch 2 is under way).
    assert script.plan_epochs(200, 500, 2, 100, 2.5, 60.0, 10.0, final_call=True) == 3


def test_call_minutes_shorten_the_training_budget_to_fit_the_call():
    script = _script_module()
    started = time.monotonic() - 60.0  # a minute already spent on generating and preprocessing
    # 510 s - 60 spent - torchrun's start/exit leaves over 360 s: the asked 6 min fit; with an evaluation's
    # 150 s kept too, training gets what is left.
    left = 510.0 - 60.0 - script.TRAIN_OVERHEAD_S
    assert script.train_budget_seconds(6.0, 8.5, started, reserve_s=0.0) == pytest.approx(360.0, abs=1.0)
    assert script.train_budget_seconds(6.0, 8.5, started, reserve_s=150.0) == pytest.approx(
        left - 150.0, abs=1.0
    )
    assert script.train_budget_seconds(6.0, None, started, reserve_s=150.0) == 360.0


@pytest.mark.slow
def test_toy_run_stops_resumes_finishes_evaluates_and_then_skips(tmp_path):
    work = tmp_path / "work"
    first = run_script(work, "--stages", "generate,preprocess,train", "--train-minutes", "0.001")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "unfinished: run again to resume" in first.stdout
    calls = [json.loads(line) for line in (work / "train_calls.jsonl").read_text().splitlines()]
    assert [(c["start_step"], c["end_step"], c["finished"]) for c in calls] == [(0, 1, False)]
    assert not (work / "run" / "model-final").exists()
    assert json.loads((work / "run" / "config.json").read_text())["training"]["epochs"] == 2
    # An unfinished run can be evaluated: its checkpoint-last.
    early = run_script(
        work, "--stages", "evaluate", "--postprocess", "standard_v2", "--eval-keyframes", "all"
    )
    assert early.returncode == 0, early.stdout[-3000:] + early.stderr[-3000:]
    accuracy = json.loads((work / "accuracy.json").read_text())
    assert accuracy["training_finished"] is False and accuracy["training"]["steps"] == 1
    assert accuracy["settings"]["model"].endswith("checkpoint-last")

    second = run_script(work, "--stages", "train,evaluate", "--train-minutes", "5")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    calls = [json.loads(line) for line in (work / "train_calls.jsonl").read_text().splitlines()]
    # 8 samples / batch 2 = 4 steps per epoch, 2 epochs; the second call resumes at step 1.
    assert [(c["start_step"], c["end_step"], c["finished"]) for c in calls] == [(0, 1, False), (1, 8, True)]
    accuracy = json.loads((work / "accuracy.json").read_text())
    assert accuracy["training_finished"] is True
    training = accuracy["training"]
    assert (training["steps"], training["calls"], training["samples_seen"]) == (8, 2, 16)
    assert training["seconds_per_iteration"] > 0 and 0.0 <= training["data_wait_share"] <= 1.0
    assert [(r["postprocess"], r["keyframes"]) for r in accuracy["results"]] == [
        ("standard_v2", "all"),
        ("qubo", "all"),
        ("standard_v2", "3"),
        ("qubo", "3"),
    ]
    assert all(r["scenes"] == 1 and r["views"] == 6 for r in accuracy["results"])
    assert all(0.0 <= r["PQ"] <= 1.0 for r in accuracy["results"] if "PQ" in r)
    assert accuracy["primary"] == {"postprocess": "standard_v2", "keyframes": "all"}
    assert accuracy["config"]["model"]["variant"] == "tiny_v1"
    assert len(accuracy["data"]["val_scenes"]) == 1 and accuracy["data"]["preprocess"]["scenes"] == 3
    assert "postprocess keyframes" in second.stdout  # the table
    # Diagnostics: per-class scene scores of every result, and the headline settings on training scenes.
    assert set(accuracy["per_class"]) == {
        "standard_v2/kf=all",
        "qubo/kf=all",
        "standard_v2/kf=3",
        "qubo/kf=3",
    }
    for rows in accuracy["per_class"].values():
        assert rows and all(row["scenes"] == 1 and 0.0 <= row["PQ"] <= 1.0 for row in rows)
        assert all(row["scenes_matched"] == int(row["RQ"] > 0) for row in rows)
        assert [row["PQ"] for row in rows] == sorted(row["PQ"] for row in rows)
    seen = accuracy["training_scenes"]
    assert len(seen["scenes"]) == 2 and not set(seen["scenes"]) & set(accuracy["data"]["val_scenes"])
    assert 0.0 <= seen["PQ"] <= 1.0 and seen["per_class"]
    assert list(seen["by_postprocess"]) == ["standard_v2", "qubo"]  # sharing the headline's inference
    assert seen["by_postprocess"]["standard_v2"]["PQ"] == seen["PQ"]
    assert "training scenes, same settings" in second.stdout

    third = run_script(work, "--train-minutes", "5")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    for stage in ("generate", "preprocess", "train", "evaluate"):
        assert f"{stage}: skipped" in third.stdout


TWO_STAGE_MODEL = [
    "model.variant=tiny_v2", "data.resolutions=[[64,48]]", "data.num_views=3", "data.max_memory_num_views=3",
    "data.samples_per_epoch=8", "training.batch_size=2", "training.num_workers=0", "training.amp=false",
    "training.print_freq=1",
]  # fmt: skip


@pytest.mark.slow
def test_two_stage_toy_run_pretrains_trains_the_head_on_it_evaluates_and_ships(tmp_path):
    from panst3r_core.checkpoint.ours import WEIGHTS_FILE, read_config
    from panst3r_core.engine.checkpointing import MODEL_FILE

    work = tmp_path / "work"
    args = [*DATA, "--recipe", "two-stage", "--pretrain-epochs", "2", "--epochs", "1"]
    for item in TWO_STAGE_MODEL:
        args += ["--pretrain-set", item, "--set", item]
    args += ["--set", "criterion.num_points=256", "--postprocess", "standard_v2", "--eval-keyframes", "all"]
    run = run_script(work, *args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stage1 = json.loads((work / "pretrain" / "config.json").read_text())
    stage2 = json.loads((work / "run" / "config.json").read_text())
    assert stage1["training"]["objective"] == "pointmap" and stage2["training"]["objective"] == "panoptic"
    assert stage2["training"]["must3r_chkpt"] == str(work / "pretrain" / "model-final")
    assert not stage2["training"]["finetune_must3r_encoder"] and stage2["training"]["finetune_dino"]
    # stage 2 kept stage 1's backbone exactly (frozen)
    from safetensors.torch import load_file

    backbone = load_file(str(work / "pretrain" / "model-final" / WEIGHTS_FILE))
    trained = load_file(str(work / "run" / "model-final" / MODEL_FILE))
    must3r = [key for key in backbone if key.startswith(("must3r_encoder.", "must3r_decoder."))]
    assert must3r and all(backbone[key].equal(trained[key]) for key in must3r)
    accuracy = json.loads((work / "accuracy.json").read_text())
    pretraining = accuracy["pretraining"]
    assert pretraining["finished"] and pretraining["training"]["steps"] == 8
    assert pretraining["initial_weights"] == {"must3r_chkpt": None, "chkpt": None}  # from scratch
    for when in ("before", "after"):
        assert pretraining[when]["views"] == 6 and pretraining[when]["median_rel_error_global"] > 0
    assert "held-out median relative pointmap error" in run.stdout
    shipped = work / "shipped" / "compact_smooth_v2_synthetic"
    config, metadata = read_config(shipped)
    assert metadata["shipped"]["recipe"] == "two-stage" and metadata["variant"] == "tiny_v2"
    assert metadata["shipped"]["held_out"]["PQ"] == accuracy["PQ"]
    assert metadata["shipped"]["stages"]["pretrain"]["steps"] == 8  # this work's stage 1 is on record
    assert metadata["training_resolutions"] == [[64, 48]]
    weights = load_file(str(shipped / WEIGHTS_FILE))
    assert all(
        value.dtype.is_floating_point is False or str(value.dtype) == "torch.float16"
        for value in weights.values()
    )


def test_a_stage_2_on_a_given_backbone_exports_as_two_stage_with_that_backbones_stage_1():
    script = _script_module()
    trained = {"steps": 10, "seconds": 5.0}
    accuracy = {
        "config": {"training": {"must3r_chkpt": "shipped:compact_smooth_v2_synthetic"}},
        "training": trained,
    }
    provenance = script.given_backbone_provenance(accuracy)
    assert (
        provenance["recipe"] == "two-stage"
        and provenance["backbone"] == "shipped:compact_smooth_v2_synthetic"
    )
    assert provenance["stages"]["pretrain"]["steps"] > 0  # the shipped model's own stage 1
    assert provenance["stages"]["train"] == trained
    assert script.given_backbone_provenance({"config": {"training": {"must3r_chkpt": None}}}) == {}


def test_a_run_that_continues_a_shipped_model_records_its_lineage():
    script = _script_module()
    accuracy = {
        "config": {"training": {"chkpt": "shipped:compact_smooth_v2_synthetic"}},
        "training": {"steps": 10, "seconds": 5.0},
    }
    provenance = script.continued_provenance(accuracy)
    earlier = provenance["continued_from"]["shipped"]
    assert provenance["continued_from"]["model"] == "shipped:compact_smooth_v2_synthetic"
    assert provenance["recipe"] == earlier["recipe"] == "two-stage"
    assert earlier["stages"]["pretrain"]["steps"] > 0  # the lineage's stage 1 stays on record
    assert provenance["stages"]["pretrain"] == earlier["stages"]["pretrain"]  # the inherited backbone's
    assert provenance["lineage_train_steps"] > 10  # this run's steps on top of the earlier ones
    assert script.continued_provenance({"config": {"training": {"chkpt": None}}}) == {}


def _continued_stage_1(tmp_path: Path, stage1_start: str | None) -> dict:
    """accuracy.json of a stage 2 on this work's own stage 1, which started from `stage1_start`."""
    stage1 = str(tmp_path / "pretrain" / "model-final")
    return {
        "config": {"training": {"chkpt": stage1, "must3r_chkpt": stage1}},
        "training": {"steps": 10, "seconds": 5.0},
        "pretraining": {
            "model": stage1,
            "initial_weights": {"must3r_chkpt": None, "chkpt": stage1_start},
            "training": {"steps": 7, "seconds": 3.0},
        },
    }


def test_a_stage_2_on_its_own_continued_stage_1_carries_the_lineage_of_what_stage_1_continued(tmp_path):
    script = _script_module()
    accuracy = _continued_stage_1(tmp_path, "shipped:compact_smooth_v2_synthetic")
    assert script.given_backbone_provenance(accuracy) == {}  # the backbone is this work's stage 1
    provenance = script.continued_provenance(accuracy)
    earlier = provenance["continued_from"]["shipped"]
    assert provenance["continued_from"]["model"] == "shipped:compact_smooth_v2_synthetic"
    assert provenance["stages"]["pretrain"] == {"steps": 7, "seconds": 3.0}  # this work's, not the earlier's
    assert provenance["backbone"] == "this run's stage 1, continued from shipped:compact_smooth_v2_synthetic"
    assert provenance["lineage_train_steps"] == 10 + earlier["lineage_train_steps"]
    assert str(tmp_path) not in json.dumps(provenance)


def test_a_stage_2_on_its_own_stage_1_from_scratch_adds_no_lineage(tmp_path):
    script = _script_module()
    accuracy = _continued_stage_1(tmp_path, None)
    assert script.continued_provenance(accuracy) == {} and script.given_backbone_provenance(accuracy) == {}


def test_a_checkpoint_given_as_a_path_is_recorded_by_its_folder_name_only(tmp_path):
    script = _script_module()
    assert script.shipped_name(str(tmp_path / "runs" / "model-final")) == "model-final"
    assert script.shipped_name("shipped:some_model") == "shipped:some_model"


CONTINUE_SCRIPT = REPO / "tests" / "benchmarks" / "synthetic_continue.sh"
CONTINUE_TOY = [
    *DATA, "--val-scenes", "1", "--eval-train-scenes", "1", "--eval-keyframes", "all",
    "--set", "data.resolutions=[[64,48]]", "--set", "data.num_views=3", "--set", "data.max_memory_num_views=3",
    "--set", "data.samples_per_epoch=4", "--set", "training.batch_size=2", "--set", "training.num_workers=0",
    "--set", "training.amp=false", "--set", "criterion.num_points=256", "--assumed-steps-per-s", "0.02",
]  # fmt: skip


def run_continue_script(tmp_path: Path, work: Path, **settings: str) -> subprocess.CompletedProcess:
    blocked = without_prefect_and_mlflow(tmp_path / "blocked_imports")
    env = {
        **os.environ,
        "PYOPENGL_PLATFORM": "egl",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (blocked, os.environ.get("PYTHONPATH", "")) if p),
        "PYTHON": sys.executable,
        "SEED": "5",
        "WORK": str(work),
        "TRAIN_SCENES": "2",
        "CALL_SECONDS": "600",
        "TOTAL_MINUTES": "0.3",
        "EXTRA_ARGS": " ".join(CONTINUE_TOY),
        **settings,
    }
    command = ["bash", str(CONTINUE_SCRIPT)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_continue_script_trains_the_shipped_model_on_fresh_scenes_and_exports_its_lineage(tmp_path):
    """tests/benchmarks/synthetic_continue.sh at toy size on the CPU: a first call (FINAL=0) makes the data and
    trains one step of the shipped model on a seed's scenes; the final call resumes, ends the schedule inside
    the call, scores the model and exports it with the shipped lineage."""
    from panst3r_core.checkpoint.ours import read_config

    work = tmp_path / "work"
    first = run_continue_script(
        tmp_path, work, FINAL="0", EXTRA_ARGS=" ".join([*CONTINUE_TOY, "--train-minutes", "0.001"])
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    calls = [json.loads(line) for line in (work / "train_calls.jsonl").read_text().splitlines()]
    assert [(c["start_step"], c["end_step"], c["finished"]) for c in calls] == [(0, 1, False)]
    assert not (work / "accuracy.json").exists()

    final = run_continue_script(tmp_path, work)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    calls = [json.loads(line) for line in (work / "train_calls.jsonl").read_text().splitlines()]
    assert calls[1]["start_step"] == 1 and calls[1]["finished"] is True
    accuracy = json.loads((work / "accuracy.json").read_text())
    assert accuracy["training_finished"] is True and accuracy["training"]["steps"] == calls[1]["end_step"]
    assert accuracy["data"]["generated"]["seed"] == 5
    assert accuracy["config"]["training"]["chkpt"] == "shipped:compact_smooth_v2_synthetic"
    shipped = read_config(work / "shipped" / "compact_smooth_v2_synthetic")[1]["shipped"]
    assert shipped["continued_from"]["model"] == "shipped:compact_smooth_v2_synthetic"
    assert shipped["recipe"] == "two-stage" and shipped["stages"]["pretrain"]["steps"] > 0
    assert shipped["lineage_train_steps"] == accuracy["training"]["steps"] + int(
        shipped["continued_from"]["shipped"]["lineage_train_steps"]
    )


def test_a_backbone_given_as_a_path_is_recorded_without_the_path(tmp_path):
    script = _script_module()
    accuracy = {
        "config": {"training": {"must3r_chkpt": str(tmp_path / "pretrain" / "model-final")}},
        "training": {"steps": 10},
    }
    provenance = script.given_backbone_provenance(accuracy)
    assert provenance["backbone"] == "model-final" and provenance["stages"]["pretrain"] is None


def test_held_out_only_makes_the_same_held_out_scenes_as_a_full_run_and_nothing_else(tmp_path):
    data_only = ["--stages", "generate,preprocess"]
    full = tmp_path / "full"
    held_out = tmp_path / "held_out"
    assert run_script(full, "--stages", "generate").returncode == 0
    result = run_script(held_out, *data_only, "--held-out-only")
    assert result.returncode == 0, result.stderr[-2000:]
    full_split = json.loads((full / "generated.json").read_text())
    marker = json.loads((held_out / "generated.json").read_text())
    assert marker["train"] == [] and marker["val"] == full_split["val"]
    assert marker["settings"]["held_out_only"] is True
    scene = full_split["val"][0]
    made = sorted(p.name for p in (held_out / "scannetpp" / "data").iterdir())
    assert made == [scene]  # no training scene was rendered
    for file in sorted((full / "scannetpp" / "data" / scene).rglob("*")):
        twin = held_out / "scannetpp" / "data" / scene / file.relative_to(full / "scannetpp" / "data" / scene)
        assert file.is_dir() or file.read_bytes() == twin.read_bytes(), file.name
    preprocessed = json.loads((held_out / "preprocessed.json").read_text())
    assert preprocessed["scenes"] == 1 and preprocessed["frames"] == 6


def test_held_out_only_refuses_stages_that_need_training_scenes(tmp_path):
    result = run_script(tmp_path / "w", "--stages", "generate,preprocess,train", "--held-out-only")
    assert result.returncode == 2
    assert "--held-out-only makes no training scenes" in result.stderr


def test_a_dslr_focal_range_reaches_the_generated_cameras_and_the_marker(tmp_path):
    from datasets.scannetpp.reader import read_scene

    work = tmp_path / "w"
    result = run_script(work, "--stages", "generate", "--held-out-only", "--dslr-focal-range", "0.85", "0.9")
    assert result.returncode == 0, result.stderr[-2000:]
    marker = json.loads((work / "generated.json").read_text())
    assert marker["settings"]["dslr_focal_range"] == [0.85, 0.9]
    camera = read_scene(work / "scannetpp", marker["val"][0], work / "pairs").frames[0].camera
    assert 0.85 * 160 <= camera.params[0] <= 0.9 * 160


OVERFIT_SCRIPT = REPO / "tests" / "benchmarks" / "synthetic_overfit.sh"


@pytest.mark.slow
def test_the_overfit_check_trains_on_eight_scenes_alone_and_scores_them(tmp_path):
    """tests/benchmarks/synthetic_overfit.sh at toy size on the CPU: 8 training scenes of its seed, the shipped
    model continued on them in one call, and those same 8 scenes scored beside the held-out ones."""
    dropped = {"--train-scenes", "--eval-train-scenes"}  # the script's own 8 scenes stay, with their values
    toy = [
        arg for i, arg in enumerate(CONTINUE_TOY) if dropped.isdisjoint(CONTINUE_TOY[max(i - 1, 0) : i + 1])
    ]
    work = tmp_path / "work"
    env = {
        **os.environ,
        "PYOPENGL_PLATFORM": "egl",
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "WORK": str(work),
        "MINUTES": "0.3",
        "CALL_SECONDS": "600",
        "EXTRA_ARGS": " ".join(toy),
    }
    done = subprocess.run(
        ["bash", str(OVERFIT_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    accuracy = json.loads((work / "accuracy.json").read_text())
    assert (
        accuracy["data"]["generated"]["train_scenes"] == 8 and accuracy["data"]["generated"]["seed"] == 11000
    )
    assert len(accuracy["training_scenes"]["scenes"]) == 8
    assert accuracy["config"]["training"]["chkpt"] == "shipped:compact_smooth_v2_synthetic"
    assert accuracy["training_finished"] is True and accuracy["training"]["steps"] > 0


def test_a_stage_1_whose_starting_weights_are_not_here_reports_without_a_before_row():
    script = _script_module()
    assert script._before_arrow({"median_rel_error_global": 0.8123}, "median_rel_error_global") == "0.812 -> "
    assert script._before_arrow(None, "median_rel_error_global") == ""
