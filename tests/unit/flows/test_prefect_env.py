import os

import pytest

from flows import prefect_env


def test_configure_keeps_a_user_prefect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    assert prefect_env.configure_prefect_env() == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_configure_defaults_under_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert prefect_env.configure_prefect_env() == (tmp_path / "runs" / "prefect").resolve()


def test_nothing_answers_on_a_free_port():
    assert not prefect_env.api_healthy(prefect_env.api_url_for(prefect_env.free_port()), timeout=0.5)


def test_a_dead_configured_server_is_one_clear_error(monkeypatch):
    dead = prefect_env.api_url_for(prefect_env.free_port())
    monkeypatch.setenv("PREFECT_API_URL", dead)
    with pytest.raises(ValueError, match="does not answer"):
        with prefect_env.prefect_api():
            pass


def test_without_a_server_and_without_start_it_asks_for_serve(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(ValueError, match="panst3r serve"):
        with prefect_env.prefect_api(port=prefect_env.free_port(), start=False):
            pass
