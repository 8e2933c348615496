"""`panst3r predict-batch`: a help line per flag, and the checks made before any Prefect server or Dask
cluster starts."""

from __future__ import annotations

import argparse

import pytest

from flows.cli import predict_batch as batch_cli
from flows.cli.main import main


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    batch_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_flag_has_a_help_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict-batch", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    parser = argparse.ArgumentParser()
    batch_cli.add_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
            assert action.option_strings[0] in text


def test_source_is_a_store_or_folders_not_both():
    with pytest.raises(SystemExit):
        _parse("--weights", "w", "--out", "o")
    with pytest.raises(SystemExit):
        _parse("--weights", "w", "--out", "o", "--store", "s", "--folders", "f")
    assert _parse("--weights", "w", "--out", "o", "--folders", "a", "b").folders == ["a", "b"]


def test_bad_input_is_one_clear_error_before_anything_starts(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    cases = [
        (["--weights", str(tmp_path / "nope"), "--store", str(tmp_path)], "--weights"),
        (["--weights", str(model), "--store", str(tmp_path / "nostore")], "--store"),
        (
            ["--weights", str(model), "--folders", str(tmp_path), "--scenes", "a"],
            "--scenes selects scenes of a --store",
        ),
        (["--weights", str(model), "--folders", str(tmp_path), "--image-size", "100"], "--image-size 100"),
        (["--weights", str(model), "--folders", str(tmp_path), "--postprocess", "nope"], "nope"),
        (["--weights", str(model), "--folders", str(tmp_path), "--chunk-views", "0"], "chunk"),
    ]
    for extra, message in cases:
        assert main(["predict-batch", "--out", str(tmp_path / "out"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_kernel_flags_reach_the_settings(tmp_path):
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"w")
    args = _parse(
        "--weights", str(weights), "--out", "o", "--folders", "a", "--attention", "cudnn", "--no-tf32",
        "--encoder-attention", "tf32", "--compile",
    )  # fmt: skip
    settings = batch_cli._settings(args)
    assert (settings.attention, settings.tf32) == ("cudnn", False)
    assert (settings.encoder_attention, settings.compile) == ("tf32", True)
    defaults = batch_cli._settings(_parse("--weights", str(weights), "--out", "o", "--folders", "a"))
    assert (defaults.attention, defaults.tf32) == ("auto", True)
    assert (defaults.encoder_attention, defaults.compile) == ("exact", False)
    with pytest.raises(SystemExit):
        _parse("--weights", "w", "--out", "o", "--folders", "a", "--attention", "flash9")
    with pytest.raises(SystemExit):
        _parse("--weights", "w", "--out", "o", "--folders", "a", "--encoder-attention", "bf16")
