"""Dask "hosts" on one machine, for the multi-host test and benchmark of preprocess.

Each host is a Linux network namespace (`ip netns`, needs root) with an address of its own on a bridge;
this (the root) namespace has the bridge's gateway address, where servers that every host must reach
listen (the Prefect API). The hosts share the filesystem, as cluster nodes share a network filesystem.
Host 0 runs Dask's own `dask scheduler`, every other host one `dask worker` (one thread: one scene at a
time). Where namespaces cannot be made, `namespaces=False` gives the loopback variant: the same processes
on 127.0.14.x addresses, one process group per host.

    with DaskHosts(worker_hosts=2, folder=tmp) as hosts:
        hosts.address            # tcp://10.214.X.2:8786, for `panst3r preprocess --dask-address`
        hosts.kill(hosts.workers[0])   # SIGKILL every process of that host
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEDULER_PORT = 8786
# Rendering settings of the project's own LocalCluster workers (flows.dask_cluster.WORKER_ENV).
WORKER_ENV = {"PYOPENGL_PLATFORM": "egl", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not shutil.which("ip"):
        return "`ip` (iproute2) is not installed; `make system-deps` installs it"
    probe = f"panst3r-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    address: str
    netns: str | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """Run `argv` on this host (inside its namespace), output to `log`."""
        command = ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process on this host: the namespace's, or the process groups started here."""
        if self.netns:
            return [int(pid) for pid in _ip("netns", "pids", self.netns, check=False).stdout.split()]
        return [p.pid for p in self.processes if p.poll() is None]

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL everything running on this host, as when a machine loses power; returns once all of it
        is gone (a process in the middle of a system call takes a moment to die)."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL) if self.netns else os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for process in self.processes:
                if process.poll() is None:
                    try:
                        process.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        pass
            time.sleep(0.1)


class HostNetwork:
    """`count` hosts with addresses of their own and the gateway address of this namespace."""

    def __init__(self, count: int, namespaces: bool = True):
        self.token = secrets.token_hex(2)
        self.namespaces = namespaces
        self.bridge = f"pnstbr{self.token}"
        if namespaces:
            subnet = self._free_subnet()
            self.gateway = f"{subnet}.1"
            names = [f"panst3r-{self.token}-{i}" for i in range(count)]
            self.hosts = [Host(f"host{i}", f"{subnet}.{i + 2}", names[i]) for i in range(count)]
        else:
            self.gateway = "127.0.0.1"
            self.hosts = [Host(f"host{i}", f"127.0.14.{i + 2}") for i in range(count)]

    @staticmethod
    def _free_subnet() -> str:
        routes = _ip("-4", "route", "show", "table", "all").stdout
        for _ in range(50):
            subnet = f"10.214.{secrets.randbelow(250) + 1}"
            if f"{subnet}." not in routes:
                return subnet
        raise RuntimeError("no free 10.214.x.0/24 subnet for the test hosts")

    def __enter__(self) -> HostNetwork:
        if not self.namespaces:
            return self
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for host in self.hosts:
                self._add_namespace(host, self._veth(host))
        except BaseException:
            self.teardown()
            raise
        return self

    def _veth(self, host: Host) -> str:
        return f"pnstv{self.token}{self.hosts.index(host)}"  # interface names hold 15 characters

    def _add_namespace(self, host: Host, veth: str) -> None:
        _ip("netns", "add", host.netns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "route", "add", "default", "via", self.gateway)

    def __exit__(self, *exc) -> None:
        self.teardown()

    def teardown(self) -> None:
        """Kill every host's processes, then delete the namespaces (their veth ends go too) and the bridge."""
        for host in self.hosts:
            host.kill()
        if not self.namespaces:
            return
        existing = _ip("netns", "list", check=False).stdout
        for host in self.hosts:
            if host.netns in existing:
                _ip("netns", "del", host.netns, check=False)
            # the kernel frees a namespace only once its last socket is gone (TIME_WAIT lasts a minute);
            # deleting our end of the veth pair removes both ends now
            _ip("link", "del", self._veth(host), check=False)
        _ip("link", "del", self.bridge, check=False)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class DaskHosts(HostNetwork):
    """A HostNetwork running `dask scheduler` on host 0 and a `dask worker` on each other host."""

    def __init__(
        self,
        worker_hosts: int,
        folder: Path,
        namespaces: bool = True,
        scheduler_env: dict[str, str] | None = None,
    ):
        super().__init__(worker_hosts + 1, namespaces)
        self.folder = folder
        self.scheduler_env = scheduler_env or {}
        self.scheduler, *self.workers = self.hosts
        port = SCHEDULER_PORT if namespaces else _free_port(self.scheduler.address)
        self.address = f"tcp://{self.scheduler.address}:{port}"

    def __enter__(self) -> DaskHosts:
        super().__enter__()
        try:
            self._start_processes()
        except BaseException:
            self.teardown()
            raise
        return self

    def _start_processes(self, timeout: float = 120.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        dask = [sys.executable, "-m", "dask"]
        port = self.address.rsplit(":", 1)[1]
        self.scheduler.start(
            [*dask, "scheduler", "--host", self.scheduler.address, "--port", port, "--no-dashboard"],
            {**os.environ, **self.scheduler_env},
            self.folder / "scheduler.log",
        )
        for host in self.workers:
            self.start_worker(host)
        self.wait_for_workers(len(self.workers), timeout)

    def start_worker(self, host: Host) -> None:
        command = [
            sys.executable, "-m", "dask", "worker", self.address,
            "--nthreads", "1", "--nworkers", "1", "--host", host.address, "--name", host.name,
            "--no-dashboard", "--local-directory", str(self.folder / host.name),
        ]  # fmt: skip
        host.start(command, {**os.environ, **WORKER_ENV}, self.folder / f"{host.name}.log")

    def worker_addresses(self) -> dict[str, str]:
        """{worker name: address} as the scheduler knows them (asked from this namespace)."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        return {info["name"]: address for address, info in workers.items()}

    def wait_for_workers(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if len(self.worker_addresses()) >= count:
                    return
            except OSError as exc:  # the scheduler is not listening yet
                last_error = exc
            time.sleep(1)
        logs = "\n".join(p.name + ":\n" + p.read_text()[-1500:] for p in sorted(self.folder.glob("*.log")))
        raise RuntimeError(f"{count} Dask workers did not join {self.address} ({last_error}):\n{logs}")

    def processing(self) -> dict[str, int]:
        """{worker name: tasks it is running now}."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            busy = client.processing()
        return {info["name"]: len(busy.get(address, ())) for address, info in workers.items()}
