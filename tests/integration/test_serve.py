"""`panst3r serve` + `prefect deployment run 'preprocess/local'` from another process, as the README says."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from _preprocess_support import REPO, TARGET_RESOLUTION, cli_command, make_root

from datasets.store.reader import StoreReader
from flows.prefect_env import api_healthy, api_url_for, free_port

pytestmark = pytest.mark.slow


def _wait_for_line(path, text, process, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"`panst3r serve` exited with {process.returncode}:\n{path.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"`panst3r serve` did not print {text!r} within {timeout} s:\n{path.read_text()[-3000:]}")


def test_serve_then_trigger_the_preprocess_deployment(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=1, seed=21)
    store = tmp_path / "store"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        serve = subprocess.Popen(
            cli_command("serve", "--port", str(port), "--workers", "1"),
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url = api_url_for(port)
    try:
        _wait_for_line(log_path, "serving: preprocess/local", serve)
        trigger = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "prefect"),
                "deployment",
                "run",
                "preprocess/local",
                "-p",
                f"root={root}",
                "-p",
                f"pairs={pairs}",
                "-p",
                f"store={store}",
                "-p",
                f"target_resolution={TARGET_RESOLUTION}",
                "--watch",
            ],
            cwd=tmp_path,
            env={**env, "PREFECT_API_URL": api_url},
            capture_output=True,
            text=True,
            timeout=420,
        )
        assert trigger.returncode == 0, trigger.stdout[-3000:] + trigger.stderr[-3000:]
        assert "Completed" in trigger.stdout
        assert len(StoreReader(store).scene_ids()) == 1

        # A run that fails shows why in the watching terminal, not only in the serve terminal.
        missing = tmp_path / "no_such_root"
        failing = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "prefect"),
                *("deployment", "run", "preprocess/local", "-p", f"root={missing}", "-p", f"store={store}"),
                "--watch",
            ],
            cwd=tmp_path,
            env={**env, "PREFECT_API_URL": api_url, "COLUMNS": "400"},
            capture_output=True,
            text=True,
            timeout=420,
        )
        assert failing.returncode == 1 and "Failed" in failing.stdout
        assert f"--root {missing} is not a directory" in failing.stdout, failing.stdout[-3000:]
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait(timeout=30)
    # SIGTERM stops serving cleanly: no coroutine left un-awaited by Prefect's own signal handler.
    log = log_path.read_text()
    assert serve.returncode == 0 and "SIGTERM received" in log, log[-3000:]
    assert "never awaited" not in log and "RuntimeWarning" not in log, log[-3000:]
    # The server that `serve` started is stopped with it.
    deadline = time.monotonic() + 30
    while api_healthy(api_url, timeout=1.0) and time.monotonic() < deadline:
        time.sleep(1)
    assert not api_healthy(api_url, timeout=1.0), "serve left its Prefect server running"
