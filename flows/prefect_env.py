"""Where Prefect keeps its state, and the local Prefect server the flows report to.

Prefect reads its settings when it is first imported, so `configure_prefect_env` and `prefect_api`
must run before anything imports `prefect`.

Why a server and not Prefect's ephemeral mode: without PREFECT_API_URL every process that runs a task,
including each Dask worker, starts its own temporary server on one shared SQLite file (measured in
environment.md section 3: 3.5-9.5 s each and occasional "database is locked"). One server per run,
shared by the flow and its workers through the inherited PREFECT_API_URL, avoids both.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flows.parent_death import guarded_command
from flows.prefect_home_template import is_fresh, save_template, seed_home

log = logging.getLogger(__name__)

DEFAULT_PREFECT_HOME = Path("runs") / "prefect"
DEFAULT_PORT = 4200
HOST = "127.0.0.1"


def configure_prefect_env(home: str | Path | None = None) -> Path:
    """Set PREFECT_HOME (default ./runs/prefect unless the user set it), analytics off, EGL rendering."""
    if home is not None or "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = str(Path(home or DEFAULT_PREFECT_HOME).resolve())
    # Without this the server tries to send telemetry from an offline machine and logs DNS errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    path = Path(os.environ["PREFECT_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def api_url_for(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}/api"


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """`prefect server start` on 127.0.0.1 (or `host`: an address other machines reach, for workers on other
    hosts) as a child process (own process group, so `stop` ends it and everything it started; it also ends
    when the process that started it dies)."""

    def __init__(self, port: int, log_path: Path | None = None, host: str = HOST):
        self.port = port
        self.host = host
        self.api_url = api_url_for(port, host)
        self.log_path = log_path or Path(os.environ.get("PREFECT_HOME", ".")) / f"server-{port}.log"
        self.process: subprocess.Popen | None = None
        self.home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
        self.fresh_database = False

    def start(self, timeout: float = 120.0) -> LocalServer:
        return self.launch().wait_ready(timeout)

    def launch(self) -> LocalServer:
        """Start the server process without waiting for it: the caller can do other start-up work (imports,
        a Dask cluster) during the seconds the server needs to boot and migrate its database."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh home starts from a migrated empty database when one is cached (flows.prefect_home_template).
        self.fresh_database = is_fresh(self.home) and not seed_home(self.home)
        env = {
            **os.environ,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Stream flow-run logs to watchers: `prefect deployment run --watch` then shows why a run
            # failed, not only that it did (both off by default: the watch gets state events alone).
            "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
        }
        env.pop("PREFECT_API_URL", None)
        with open(self.log_path, "ab") as log_file:
            # Guarded: the server ends with this process even when it is SIGKILLed (flows.parent_death).
            self.process = subprocess.Popen(
                guarded_command(
                    [
                        sys.executable,
                        "-m",
                        "prefect",
                        "server",
                        "start",
                        "--host",
                        self.host,
                        "--port",
                        str(self.port),
                    ]
                ),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 120.0) -> LocalServer:
        """Block until the launched server answers /health (RuntimeError naming its log if it exits or
        stays silent for `timeout` seconds)."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api_healthy(self.api_url, timeout=1.0):
                log.info("Prefect server up at %s (log: %s)", self.api_url, self.log_path)
                if self.fresh_database:
                    self.fresh_database = not save_template(self.home)
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with code {self.process.returncode}; see {self.log_path}"
                )
            # A short poll: the server's boot is on the start-up's critical path, each idle step adds to it.
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"prefect server did not answer at {self.api_url} within {timeout:.0f} s; see {self.log_path}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass


def drain_prefect_clients(timeout: float = 10.0) -> None:
    """Send queued logs and events now, while the server still runs; otherwise Prefect retries them at
    interpreter exit against a stopped server and the process hangs for a minute."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - best effort; the run's own result is already known
            log.debug("could not drain %s: %s", worker.__name__, exc)


CHATTY_LOGGERS = ("httpx", "distributed", "distributed.scheduler", "distributed.nanny", "distributed.core", "OpenGL")


def quiet_chatty_loggers() -> None:
    """httpx logs every API call and distributed every worker heartbeat at INFO, and PyOpenGL that its
    optional accelerator is missing (at import) and that a platform import failed (at interpreter exit):
    keep the CLI readable."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class PrefectApi:
    """The Prefect API a run reports to: `url` is set in PREFECT_API_URL at once; `wait_ready` blocks until
    it answers (a no-op for a server that answered already)."""

    url: str
    server: LocalServer | None = None

    def wait_ready(self) -> str:
        if self.server is not None:
            self.server.wait_ready()
            self.server = None  # checked once; later calls return at once
        return self.url


@contextmanager
def prefect_api(port: int = DEFAULT_PORT, start: bool = True) -> Iterator[str]:
    """Make PREFECT_API_URL point at a live server for the duration of the block.

    Order: the server named by PREFECT_API_URL (an error if it does not answer); else the local one on
    `port` (e.g. the one `panst3r serve` started); else, when `start`, a temporary server on a free port,
    stopped at the end of the block."""
    with prefect_api_starting(port, start) as api:
        yield api.wait_ready()


@contextmanager
def prefect_api_starting(port: int = DEFAULT_PORT, start: bool = True) -> Iterator[PrefectApi]:
    """`prefect_api`, but a temporary server is only launched: PREFECT_API_URL is set before it answers, so
    that the caller can import prefect and start its cluster meanwhile, then call `wait_ready()`."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not api_healthy(configured):
            raise ValueError(
                f"PREFECT_API_URL={configured} does not answer at /health; start that server "
                "(`panst3r serve`) or unset PREFECT_API_URL to let panst3r start a local one"
            )
        log.info("Prefect server at %s answers", configured)
        with _drained_at_exit():
            yield PrefectApi(configured)
        return
    local = api_url_for(port)
    if api_healthy(local, timeout=1.0):
        log.info("Prefect server at %s answers", local)
        os.environ["PREFECT_API_URL"] = local
        try:
            with _drained_at_exit():
                yield PrefectApi(local)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
        return
    if not start:
        raise ValueError(f"no Prefect server answers at {local}; run `panst3r serve` first")
    server = LocalServer(free_port()).launch()
    os.environ["PREFECT_API_URL"] = server.api_url
    _temporary_servers.append(server)
    try:
        with _drained_at_exit():
            yield PrefectApi(server.api_url, server)
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
        _temporary_servers.remove(server)


@contextmanager
def _drained_at_exit() -> Iterator[None]:
    """Leaving a run's API, its queued logs and events are sent while the server answers, and before the
    caller prints its last line: at interpreter exit Prefect would send them itself, logging its progress
    after that line (or retrying against a stopped server)."""
    try:
        yield
    finally:
        drain_prefect_clients()


# Servers `prefect_api` started and has not stopped yet, for a process that must end without unwinding.
_temporary_servers: list[LocalServer] = []


def stop_temporary_servers() -> None:
    """Stop every temporary server of this process now (they run in their own process group and would
    outlive an `os._exit`)."""
    for server in list(_temporary_servers):
        server.stop()
