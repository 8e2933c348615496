"""`panst3r train`: bad input fails with one clear line and exit code 2, before any Prefect server starts."""

import pytest

from flows.cli.main import main


def test_missing_store(tmp_path, capsys):
    assert main(["train", "--store", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,message",
    [
        ("training.epoch=3", "unknown key(s) epoch"),
        ("training.output_dir=x", "set by the train flow"),
        ("no-equals-sign", "key=value"),
    ],
)
def test_bad_overrides(tmp_path, capsys, override, message):
    assert main(["train", "--store", str(tmp_path), override]) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_lists_the_presets(tmp_path, capsys):
    assert main(["train", "--store", str(tmp_path), "--config", "nope"]) == 2
    assert "synthetic_cpu" in capsys.readouterr().err


def test_help_lists_the_contract_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--store", "--config", "--nproc-per-node", "--experiment", "key=value"):
        assert flag in out
