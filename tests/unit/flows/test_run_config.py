"""A run's config: resolved into its folder, refusing bad input, or kept from the folder."""

from __future__ import annotations

import json

import pytest
from toy_store import write_toy_store

from flows.run_config import prepare_run, resolve_run_config, write_run_config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("store") / "s", scenes=1, frames=3, image_size=(64, 48))


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
