"""A run's config: resolved into its folder, refusing bad input, or kept from the folder."""

from __future__ import annotations

import json

import pytest
from toy_store import write_toy_store

from flows.run_config import prepare_run, resolve_run_config, write_run_config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(
        tmp_path_factory.mktemp("store") / "s", scenes=1, frames=3, image_size=(64, 48), split="train"
    )


def test_prepare_run_writes_the_resolved_config(store, tmp_path):
    plan = prepare_run([store], "synthetic_cpu", ["training.epochs=7"], "r1", tmp_path / "runs")
    assert plan.run_dir == (tmp_path / "runs" / "train" / "r1").resolve()
    written = json.loads((plan.run_dir / "config.json").read_text())
    assert written["training"]["epochs"] == 7
    assert written["training"]["output_dir"] == str(plan.run_dir)
    assert written["data"]["stores"] == [str(store.resolve())]
    assert written["model"]["text_embeddings"] == "hashed"
    assert plan.resume_from is None and (plan.run_dir / "config.yaml").is_file()


def test_prepare_run_refuses_bad_input(store, tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        prepare_run([store], "synthetic_cpu", ["training.epoch=7"], "r", tmp_path)
    with pytest.raises(ValueError, match="set by the train flow"):
        prepare_run([store], "synthetic_cpu", ["training.output_dir=/elsewhere"], "r", tmp_path)
    with pytest.raises(ValueError, match="unknown training config"):
        prepare_run([store], "no_such_config", [], "r", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_run([tmp_path / "missing"], "synthetic_cpu", [], "r", tmp_path)
    with pytest.raises(ValueError, match="run-name"):
        prepare_run([store], "synthetic_cpu", [], "a/b", tmp_path)


def test_a_kept_folder_config_takes_later_overrides_on_top(store, tmp_path):
    run = tmp_path / "run"
    first = resolve_run_config(run, [store], "synthetic_cpu", ["training.epochs=3"], keep_folder_config=True)
    first.training.seed = 11  # e.g. a setting changed by an earlier call
    write_run_config(run, first)
    kept = resolve_run_config(run, [store], "base", ["training.lr=0.5"], keep_folder_config=True)
    assert (kept.training.seed, kept.training.epochs, kept.training.lr) == (11, 3, 0.5)
    assert kept.model.variant == first.model.variant  # not re-resolved from `base`
    assert kept.training.output_dir == str(run) and kept.data.stores == [str(store)]
    fresh = resolve_run_config(run, [store], "synthetic_cpu", [])
    assert fresh.training.seed != 11


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.variant=huge", "model.variant: 'huge' is not a model variant; valid: .*tiny_v2"),
        ("data.resolutions=[[0,0]]", "data.resolutions: 0x0 must be a landscape"),
        ("data.resolutions=[[48,64]]", "W >= H"),
        ("training.batch_size=[1]", "training.batch_size: expected an integer, got \\[1\\]"),
        ("training.epochs=abc", "training.epochs: expected an integer, got 'abc'"),
        ("training.lr=-1", "training.lr"),
        ("data.split=val", "no training pairs .* for split 'val'"),
        ("data.samples_per_epoch=2", "data.samples_per_epoch \\(2\\) is too small .* x 2 rank"),
    ],
)
def test_settings_are_checked_in_full_before_anything_is_written(store, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        prepare_run([store], "synthetic_cpu", [override], "bad", tmp_path, world_size=2)
    assert not (tmp_path / "train" / "bad").exists()


def test_a_missing_initial_checkpoint_is_refused_and_a_shipped_one_is_found(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="training.chkpt: .*nope.pth does not exist"):
        prepare_run([store], "synthetic_cpu", [f"training.chkpt={tmp_path / 'nope.pth'}"], "c", tmp_path)
    with pytest.raises(FileNotFoundError, match="training.must3r_chkpt: no shipped model 'nope'"):
        prepare_run([store], "synthetic_cpu", ["training.must3r_chkpt=shipped:nope"], "c", tmp_path)
    plan = prepare_run([store], "synthetic_finetune_cpu", [], "c", tmp_path, write=False)
    assert plan.config.training.chkpt.startswith("shipped:")


def test_without_write_the_plan_is_checked_but_nothing_is_written(store, tmp_path):
    plan = prepare_run([store], "synthetic_cpu", [], "dry", tmp_path, write=False)
    assert plan.run_name == "dry" and not plan.run_dir.exists()
