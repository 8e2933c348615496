"""`panst3r evaluate` argument parsing and the checks made before any Prefect server starts."""

from __future__ import annotations

import argparse

import pytest

from flows.cli import evaluate as evaluate_cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_keyframes_accept_counts_and_all():
    args = _parse(
        "--store", "S", "--checkpoints", "a", "b", "--keyframes", "4", "all", "--postprocess", "qubo"
    )
    assert args.keyframes == [4, None] and args.checkpoints == ["a", "b"] and args.postprocess == ["qubo"]
    assert _parse("--store", "S", "--checkpoints", "a").keyframes == [None]


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_keyframes_are_rejected(value, capsys):
    with pytest.raises(SystemExit):
        _parse("--store", "S", "--checkpoints", "a", "--keyframes", value)
    assert "keyframe count" in capsys.readouterr().err


def test_missing_store_or_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--store"):
        evaluate_cli.run(_parse("--store", str(tmp_path / "nope"), "--checkpoints", str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="--checkpoints"):
        evaluate_cli.run(_parse("--store", str(tmp_path), "--checkpoints", str(tmp_path / "missing")))
