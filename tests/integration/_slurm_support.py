"""A real one-node Slurm for the tests: munged, slurmctld and slurmd from Debian's slurm-wlm and munge
(`make system-deps` installs them), all with their key, sockets, state, logs and ports in one folder, so
that nothing of the machine's own /etc/slurm or /etc/munge is read or changed.

Commands that talk to this cluster (sbatch, squeue, sinfo, and so dask_jobqueue) need `env()`: it points
SLURM_CONF at the folder's slurm.conf.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "sbatch", "squeue", "scancel", "scontrol")


def unavailable_reason() -> str | None:
    """Why a one-node Slurm cannot be started here, or None."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if not shutil.which(name)]
    if missing:
        return f"{', '.join(missing)} not installed (`make system-deps` installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs as the submitting user; run the tests as root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


class OneNodeSlurm:
    """`start()` brings up munged, slurmctld and slurmd for this host and waits until `sinfo` shows the
    node idle; `stop()` ends them (and any job still running)."""

    partition = "tests"

    def __init__(self, folder: Path):
        self.folder = folder
        self.node = socket.gethostname().split(".")[0]
        self.munge_socket = folder / "munge" / "munge.socket"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.folder / "slurm.conf")}

    def start(self, timeout: float = 60.0) -> OneNodeSlurm:
        for sub in ("munge", "state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # munged checks the socket's folders; pytest's temporary folders are private to root
        self.folder.chmod(0o755)
        (self.folder / "munge").chmod(0o755)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._write_conf()
        munge = self.folder / "munge"
        self._run(
            "munged",
            "--force",  # its folder checks fail on pytest's 0700 parents; the key stays 0600 all the same
            f"--key-file={key}",
            f"--socket={self.munge_socket}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        )
        self._run("slurmctld", "-f", str(self.folder / "slurm.conf"))
        self._run("slurmd", "-f", str(self.folder / "slurm.conf"), "-N", self.node)
        self._wait_idle(timeout)
        return self

    def _write_conf(self) -> None:
        f = self.folder
        lines = [
            "ClusterName=panst3rtests",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            # no cgroups, accounting or MPI: what a container without systemd can offer
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",  # several one-core jobs share the node
            "ReturnToService=2",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} "
            f"RealMemory={int(_memory_mb() * 0.8)} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        (f / "slurm.conf").write_text("\n".join(lines) + "\n")

    def _run(self, *command: str) -> None:
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["sinfo", "--noheader", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True
            )
            state = probe.stdout.strip() or probe.stderr.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node did not turn idle within {timeout:.0f} s (sinfo: {state!r})\n{self.logs()}")

    def queue(self) -> list[str]:
        """Job ids squeue lists (pending or running)."""
        out = subprocess.run(
            ["squeue", "--noheader", "-o", "%i"], env=self.env(), capture_output=True, text=True, timeout=30
        )
        return out.stdout.split()

    def logs(self, lines: int = 20) -> str:
        parts = []
        for path in (self.folder / "log" / "slurmctld.log", self.folder / "log" / "slurmd.log"):
            if path.is_file():
                parts.append(f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-lines:]))
        return "\n".join(parts)

    def stop(self) -> None:
        jobs = self.queue()
        if jobs:  # jobs outlive slurmd's shutdown (slurmstepd), so end them first
            subprocess.run(["scancel", *jobs], env=self.env(), capture_output=True, timeout=30)
            deadline = time.monotonic() + 30
            while self.queue() and time.monotonic() < deadline:
                time.sleep(0.5)
        subprocess.run(["scontrol", "shutdown"], env=self.env(), capture_output=True, timeout=30)
        _end(self.folder / "slurmd.pid")
        _end(self.folder / "slurmctld.pid")
        _end(self.folder / "munge" / "munged.pid", signal.SIGTERM)


def _end(pid_file: Path, signum: int | None = None, timeout: float = 20.0) -> None:
    """Wait for the daemon of `pid_file` to exit (after sending `signum`); SIGKILL it after `timeout`."""
    try:
        pid = int(pid_file.read_text().split()[0])
        if signum is not None:
            os.kill(pid, signum)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
