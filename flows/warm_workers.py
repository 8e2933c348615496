"""Warm preprocessing workers: a local Dask cluster that `panst3r serve` keeps up for the runs of its machine.

Why: a run's own local cluster costs seconds before its first task (the worker processes spawn, then import
prefect, the flow and pyrender: 1.3-3 s on two cores, longer with 16 workers), and every run pays it again.
A running `panst3r serve` starts one cluster of preprocessing workers and advertises it; a preprocess run
of the same user and machine whose own local cluster would be the same one (worker count, worker options,
worker environment, interpreter and source code) submits to it instead. Each worker still runs one task at
a time, so runs that overlap share the workers instead of starting more processes than there are cores.

The advertisement is a small JSON record in the user's cache folder (flows.cache_dir), named by a digest of
that identity and the serving process; a record whose process is gone or whose scheduler does not answer is
ignored and
the run starts its own cluster as before. Importing this module imports neither Prefect nor Dask.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from datasets.store.hashing import source_tree_digest
from flows.cache_dir import cache_base
from flows.dask_cluster import (
    PREPROCESS_WORK_STEALING,
    ClusterChoice,
    allocator_env,
    local_cluster_kwargs,
    spawn_workers_with_allocator_env,
)

log = logging.getLogger(__name__)

RECORDS_FOLDER = "warm-workers"
# The packages whose code a preprocessing worker runs; a change in any of them makes a pool started
# before it a different one.
_WORKER_PACKAGES = ("datasets", "flows", "panst3r_core")
_CONNECT_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class WarmWorkers:
    """An advertised pool: its scheduler's address, the serving process and its worker count."""

    address: str
    pid: int
    workers: int

    def describe(self) -> str:
        """The log line of a run that uses them (the start-up benchmark reads it as the cluster's start)."""
        return f"Dask cluster up: the {self.workers} warm workers of panst3r serve (pid {self.pid}) at {self.address}"


def pool_key(choice: ClusterChoice, worker_options: dict | None) -> str:
    """A digest of everything that makes two local preprocessing clusters interchangeable."""
    source_root = Path(__file__).resolve().parents[1]
    identity = {
        "workers": choice.workers,
        # The scheduler's extensions enter as the flag that chooses them: building them imports the scheduler,
        # which would cost a served run's look-up 0.4 s.
        "cluster": {
            k: v
            for k, v in local_cluster_kwargs(choice, worker_options).items()
            if k not in ("n_workers", "scheduler_kwargs")
        },
        "work_stealing": PREPROCESS_WORK_STEALING,
        "allocator": allocator_env(),
        "python": sys.executable,
        "code": source_tree_digest(source_root / name for name in _WORKER_PACKAGES),
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def record_path(key: str, pid: int) -> Path:
    """The record of the pool of `key` served by process `pid` (one per process: two servers of the same
    pool on one machine each advertise, and withdraw, their own)."""
    return cache_base() / RECORDS_FOLDER / f"{key}-{pid}.json"


def find_warm_workers(choice: ClusterChoice, worker_options: dict | None) -> WarmWorkers | None:
    """An advertised pool that `choice` (a local cluster) would duplicate, whose server lives and answers;
    the newest first."""
    if choice.kind != "local":
        return None
    key = pool_key(choice, worker_options)
    records = sorted(
        (cache_base() / RECORDS_FOLDER).glob(f"{key}-*.json"), key=_modified, reverse=True
    )
    for path in records:
        pool = _read_record(path)
        if pool is None:
            continue
        alive = _process_alive(pool.pid)
        if alive and _scheduler_answers(pool.address):
            return pool
        log.info("ignoring the warm-workers record %s: its process %d is gone or does not answer", path, pool.pid)
        if not alive:
            path.unlink(missing_ok=True)  # a killed server's: nobody else will withdraw it
    return None


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_record(path: Path) -> WarmWorkers | None:
    try:
        record = json.loads(path.read_text())
        return WarmWorkers(str(record["address"]), int(record["pid"]), int(record["workers"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # withdrawn meanwhile, or not a record of ours


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process took the pid; the scheduler check decides
    return True


def _scheduler_answers(address: str) -> bool:
    parts = urlsplit(address)
    if parts.scheme != "tcp" or parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class WarmWorkersHost:
    """Starts the pool of `choice` in a thread on `__enter__` and advertises it once it is up; `__exit__`
    withdraws the record and closes the cluster. Used by `panst3r serve`."""

    def __init__(self, choice: ClusterChoice, worker_options: dict | None):
        if choice.kind != "local":
            raise ValueError(f"warm workers are a local cluster, not {choice.kind!r}")
        self.choice = choice
        self.worker_options = worker_options
        self.path = record_path(pool_key(choice, worker_options), os.getpid())
        self.cluster: Any = None
        self._thread = threading.Thread(target=self._start, name="warm-workers-start", daemon=True)

    def __enter__(self) -> WarmWorkersHost:
        spawn_workers_with_allocator_env()  # dask's config is global: set here, not in the thread
        # Every run's look-up opens and closes a TCP connection to the scheduler (find_warm_workers), which
        # its comm logger would report at INFO each time.
        logging.getLogger("distributed.comm.tcp").setLevel(logging.WARNING)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True once the pool is advertised (False: still starting, or it failed: see the log)."""
        self._thread.join(timeout)
        return self.cluster is not None and not self._thread.is_alive()

    def _start(self) -> None:
        started = time.perf_counter()
        try:
            from distributed import LocalCluster

            # its HTTP server on a free port: a pool that lives as long as serving must not hold 8787
            kwargs = {
                **local_cluster_kwargs(self.choice, self.worker_options, PREPROCESS_WORK_STEALING),
                "dashboard_address": ":0",
            }
            self.cluster = LocalCluster(**kwargs)
        except Exception as exc:  # noqa: BLE001 - serving goes on; runs start their own clusters
            log.warning("warm preprocessing workers did not start (%s: %s); runs start their own", type(exc).__name__, exc)
            return
        self._advertise(self.cluster.scheduler_address)
        log.info(
            "%d warm preprocessing workers up in %.1f s at %s",
            self.choice.workers,
            time.perf_counter() - started,
            self.cluster.scheduler_address,
        )

    def _advertise(self, address: str) -> None:
        record = {"address": address, "pid": os.getpid(), "workers": self.choice.workers}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(record, indent=1))
        os.replace(partial, self.path)  # readers see no record or a whole one

    def __exit__(self, *exc) -> None:
        self._thread.join()
        if self.cluster is None:
            return
        self.path.unlink(missing_ok=True)
        self.cluster.close()
