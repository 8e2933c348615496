"""Which training runs are reused: the run name is the identity of store content + settings."""

import pytest
from toy_store import write_toy_store

from flows.train_reuse import reuse_run_name


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(
        tmp_path_factory.mktemp("reuse") / "store", scenes=1, frames=2, image_size=(32, 24)
    )


def test_equal_requests_share_a_name_and_others_do_not(store, tmp_path):
    name = reuse_run_name([store], "synthetic_cpu", [], 1)
    assert name.startswith("synthetic_cpu-")
    # the same settings spelled out as an override, and the store under another path: the same identity
    assert reuse_run_name([store], "synthetic_cpu", ["training.epochs=4"], 1) == name
    copy = tmp_path / "elsewhere"
    copy.symlink_to(store)
    assert reuse_run_name([copy], "synthetic_cpu", [], 1) == name
    assert reuse_run_name([store], "synthetic_cpu", ["training.epochs=5"], 1) != name
    assert reuse_run_name([store], "synthetic_cpu", [], 2) != name
    write_toy_store(store, scenes=1, frames=2, image_size=(32, 24), seed=1)  # one more scene
    assert reuse_run_name([store], "synthetic_cpu", [], 1) != name


def test_a_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `panst3r preprocess --store` first"):
        reuse_run_name([tmp_path / "nothing"], "synthetic_cpu", [], 1)


def test_other_starting_weights_under_the_same_name_are_another_run(store, tmp_path):
    weights = tmp_path / "model-final"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"first")
    start = [f"training.chkpt={weights}"]
    name = reuse_run_name([store], "synthetic_cpu", start, 1)
    assert reuse_run_name([store], "synthetic_cpu", start, 1) == name
    (weights / "model.safetensors").write_bytes(b"second, replaced")  # e.g. a new shipped model
    assert reuse_run_name([store], "synthetic_cpu", start, 1) != name
    # a shipped model is named, and its files identify it
    shipped = reuse_run_name(
        [store], "synthetic_cpu", ["training.chkpt=shipped:compact_smooth_v2_synthetic"], 1
    )
    assert shipped != reuse_run_name([store], "synthetic_cpu", [], 1)
