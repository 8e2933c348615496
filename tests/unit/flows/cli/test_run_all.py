"""`panst3r run-all`: argument checks and the idempotent synthetic step (the whole chain runs in `make run`)."""

from __future__ import annotations

import argparse

import pytest

from flows.cli import run_all
from panst3r_core.pretrained import DENSE_POSTPROCESS


def _args(**changes) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_all.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def test_defaults_are_the_documented_chain():
    args = _args()
    assert (args.scenes, args.val_scenes, args.config) == (6, 2, "synthetic_finetune_cpu")
    assert args.postprocess == ["standard_v2", DENSE_POSTPROCESS, "standard_v1"]
    assert args.keyframes == ["4", "all"]
    # the shipped model is fine-tuned and evaluated beside the fine-tuned one, on frames of its own aspect
    assert args.baseline == "shipped:compact_smooth_v2_synthetic" and tuple(args.image_size) == (320, 240)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scenes": 2, "val_scenes": 2}, "at least one training"),
        ({"val_scenes": 0}, "at least one training"),
        ({"keyframes": ["0"]}, "positive integers"),
        ({"overrides": ["training.epochs"]}, "key=value"),
    ],
)
def test_bad_arguments_fail_before_any_work(changes, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        run_all.run(_args(runs=str(tmp_path / "runs"), **changes))
    assert not (tmp_path / "runs").exists()


def test_synthesize_writes_the_split_once(tmp_path):
    args = _args(scenes=3, val_scenes=1, frames=2, image_size=(96, 64))
    root = tmp_path / "synthetic"
    ids, written = run_all.synthesize(args, root)
    assert written and len(ids) == 3
    assert (root / "splits" / "nvs_sem_train.txt").read_text().split() == ids[:2]
    assert (root / "splits" / "nvs_sem_val.txt").read_text().split() == ids[2:]
    again, written_again = run_all.synthesize(args, root)
    assert again == ids and not written_again
    # other settings: written again
    _, rewritten = run_all.synthesize(_args(scenes=3, val_scenes=2, frames=2, image_size=(96, 64)), root)
    assert rewritten and (root / "splits" / "nvs_sem_val.txt").read_text().split() == ids[1:]
