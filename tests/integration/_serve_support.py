"""`panst3r serve` as a user starts it, and `prefect deployment run` against it, for the deployment tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _preprocess_support import REPO, cli_command

from flows.prefect_env import api_url_for


class Serve:
    """A `panst3r serve --port PORT ...` process in its own session, with its Prefect home under `home`."""

    def __init__(self, home: Path, port: int, *flags: str, cwd: Path = REPO):
        self.api_url = api_url_for(port)
        self.env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        self.env.update({"PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        self.log_path = home / "serve.log"
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen(
                cli_command("serve", "--port", str(port), *flags),
                cwd=cwd,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_line(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                pytest.fail(f"`panst3r serve` exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.5)
        pytest.fail(f"`panst3r serve` did not print {text!r} within {timeout} s:\n{self.log()[-3000:]}")

    def watch_deployment(
        self, name: str, *params: str, cwd: Path, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """`prefect deployment run NAME -p ... --watch` from another process, whatever its outcome (wide
        columns, so that a failure's log line reaches stdout unwrapped)."""
        command = [str(REPO / ".venv" / "bin" / "prefect"), "deployment", "run", name, "--watch"]
        for param in params:
            command += ["-p", param]
        env = {**self.env, "PREFECT_API_URL": self.api_url, "COLUMNS": "400"}
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

    def run_deployment(self, name: str, *params: str, cwd: Path, timeout: float = 600) -> str:
        """`watch_deployment` that must complete; its output."""
        done = self.watch_deployment(name, *params, cwd=cwd, timeout=timeout)
        assert done.returncode == 0 and "Completed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL of its session after a minute."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def assert_stopped_cleanly(self) -> None:
        """After `stop`: SIGTERM ended serving with exit 0 through our handler, with no coroutine left
        un-awaited by Prefect's own signal handler."""
        log = self.log()
        assert self.process.returncode == 0 and "SIGTERM received" in log, log[-3000:]
        assert "never awaited" not in log and "RuntimeWarning" not in log, log[-3000:]


# The answers the Prefect client itself retries (prefect.client.base): a busy server answers 503 under load.
RETRIED_HTTP_CODES = (429, 502, 503)


def rest_call(api_url: str, path: str, body: dict | None = None, attempts: int = 5):
    """One call of the Prefect REST API (POST with a JSON body, else GET), retried on a transient answer as
    the Prefect client retries it: on two loaded cores the server's database is at times too busy (503)."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(
            f"{api_url}/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or "null")
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRIED_HTTP_CODES or attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
