"""The set-up shared by the flow commands (flows/cli/_common.py)."""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

from flows.cli._common import (
    add_overrides_argument,
    add_prefect_port_argument,
    check_override_syntax,
    prepare_prefect,
    require_store,
    unwind_on_sigterm,
)


def test_shared_flags_parse():
    parser = argparse.ArgumentParser()
    add_prefect_port_argument(parser)
    add_overrides_argument(parser, "training config")
    args = parser.parse_args(["a=1", "b.c=2"])
    assert args.prefect_port == 4200
    assert args.overrides == ["a=1", "b.c=2"]
    assert parser.parse_args(["--prefect-port", "4300"]).prefect_port == 4300
    assert "training config overrides" in parser.format_help()


def test_override_without_equals_sign_names_the_item():
    check_override_syntax(["training.epochs=2", "a.b=c=d"])
    with pytest.raises(ValueError, match="'training.epochs' is not of the form key=value"):
        check_override_syntax(["model.x=1", "training.epochs"])


def test_missing_store_names_the_flag_and_the_fix(tmp_path):
    require_store(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"--store .*nowhere does not exist; run `panst3r preprocess"):
        require_store(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(FileNotFoundError):
        require_store(tmp_path / "file")


@pytest.fixture
def restore_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_unwinds_like_ctrl_c(restore_sigterm):
    unwind_on_sigterm()
    unwound = []
    with pytest.raises(KeyboardInterrupt):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises as soon as the signal is handled; never sleeps long
        finally:
            unwound.append(True)
    assert unwound == [True]


def test_prepare_prefect_sets_home_and_sigterm(tmp_path, monkeypatch, restore_sigterm):
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    home = prepare_prefect(tmp_path / "prefect")
    assert home == (tmp_path / "prefect").resolve() and home.is_dir()
    assert os.environ["PREFECT_HOME"] == str(home)
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
