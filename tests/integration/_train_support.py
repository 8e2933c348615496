"""Helpers of the tests that run `panst3r train` in processes of their own: a toy store and the command on it
with steps small enough for 2 CPU cores (64x48 views, 64 points, no loader workers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from _preprocess_support import cli_command
from toy_store import write_toy_store

TINY_STEPS = [
    "data.resolutions=[[64,48]]",
    "data.split=null",
    "criterion.num_points=64",
    "training.num_workers=0",
    "training.print_freq=1",
]


def toy_train_store(tmp_path_factory, name: str) -> Path:
    return write_toy_store(tmp_path_factory.mktemp(name) / "s", scenes=2, frames=4, image_size=(96, 72))


def train_command(
    store: Path, runs: Path, name: str, experiment: str, *overrides: str, flags: Sequence[str] = ()
) -> list[str]:
    """`panst3r train` of run `name` under `runs` with TINY_STEPS and `overrides` (key=value), `flags` before
    them: the overrides are one positional list, so no flag may come after them."""
    return cli_command(
        "train", "--store", str(store), "--runs-dir", str(runs), "--run-name", name, "--experiment", experiment,
        *flags, *TINY_STEPS, *overrides,
    )  # fmt: skip
