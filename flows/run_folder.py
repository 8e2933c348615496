"""A training run folder and the torchrun launch on it: the one owner of the folder's file names, of the
launch's command and environment, and of what other code reads back from a run.

    <run folder>/config.json, config.yaml   the resolved TrainConfig the workers read (and its YAML twin)
                 metrics.jsonl               every logged loss term, learning rate and iteration / data-wait seconds (rank 0)
                 checkpoint-last, checkpoint-<epoch>, checkpoint-final   engine format, resumable
                 model-final                 the inference format (`panst3r predict --weights`)
                 result.json                 what the last launch did (rank 0, at its end)
                 torchrun.log                every output line of every launch (node 0)
                 torchrun-node<r>.log        the same for node r > 0 of a multi-node run
                 launch.lock                 held by the running launch, with its pid (launch-node<r>.lock)
                 data_error.json             the damaged store data a launch stopped on (a rank writes it)
                 final_checkpoint.json       where the finished run's checkpoints are (the `train` flow)

Imports neither prefect, mlflow nor torch (an import-linter contract): the `train` and `evaluate` flows, the
torchrun worker and the GPU benchmarks (whose machines have neither Prefect nor MLflow) all use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows.child_session import end_session, run_followed, start_in_session
from flows.mlflow_names import RUN_ID_ENV, TRACKING_URI_ENV
from flows.run_lock import hold_run_folder
from panst3r_core.training_timings import DATA_WAIT_SECONDS, ITERATION_SECONDS

CONFIG_FILE = "config.json"
CONFIG_YAML_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
LOG_FILE = "torchrun.log"
LOCK_FILE = "launch.lock"
FINAL_CHECKPOINT_FILE = "final_checkpoint.json"
DATA_ERROR_FILE = "data_error.json"
EXPORT_DIRNAME = "model-final"
WORKER_MODULE = "flows.torchrun_worker"
TRAINING_RESOLUTIONS_KEY = "training_resolutions"
"""Metadata key of an exported model: the (W, H) resolutions it was trained at."""
AGENT_MODULE = "flows.torchrun_agent"

# The launch's environment for the processes it starts (torchrun passes it on to every worker).
LAUNCHER_PID_ENV = "PANST3R_LAUNCHER_PID"
"""The launcher's pid: torchrun's agent dies with it (flows.torchrun_agent)."""
AGENT_PID_ENV = "PANST3R_TORCHRUN_PID"
"""Set by torchrun's agent for its workers, which die with it."""
NODE_RANK_ENV = "PANST3R_NODE_RANK"
NNODES_ENV = "PANST3R_NNODES"
"""This node's rank and the node count: the workers take their global rank from them."""

# NVLink multicast (NVLS) stays off in every launched process: it is not available on the lent machines.
NCCL_SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
TERMINATE_GRACE_S = 30.0
"""Seconds between SIGTERM and SIGKILL when a launch ends early (timeout, interrupt): torchrun stops its
workers in that time."""
_TAIL_LINES = 30


# ---------------------------------------------------------------------- files of a run folder


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """config.json (what the workers read) and config.yaml (for people) from a resolved, plain config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (run_dir / CONFIG_YAML_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=False))


def read_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config as a plain dict; FileNotFoundError naming the file when it was never written."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; the `train` flow (or the benchmark) writes it before launching torchrun"
        )
    return json.loads(path.read_text())


def write_result(run_dir: Path, result: Mapping[str, Any]) -> None:
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")


def write_data_error(run_dir: Path, message: str) -> None:
    """What damaged store data stopped a launch (one line naming scene, frame and file); ranks may race,
    so each writes a temporary file and renames it."""
    target = run_dir / DATA_ERROR_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"message": message}) + "\n")
    os.replace(tmp, target)


def read_data_error(run_dir: Path) -> str | None:
    path = run_dir / DATA_ERROR_FILE
    return json.loads(path.read_text())["message"] if path.is_file() else None


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The last launch's result.json, or None when no launch has finished since the last one started."""
    path = run_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def finished_result(run_dir: Path) -> dict[str, Any] | None:
    """The last launch's result when it finished the schedule and its export is still there (moving
    `model-final` aside lets a longer schedule continue the run), else None. A result.json that does not
    parse (a launch killed while writing it) counts as unfinished: the next launch resumes and rewrites it."""
    try:
        result = read_result(run_dir)
    except ValueError:
        return None
    if result is None or not result.get("finished") or not result.get("exported_model"):
        return None
    return result if Path(result["exported_model"]).is_dir() else None


def finished_export(run_dir: Path) -> tuple[Path, int] | None:
    """(exported model, optimizer steps) of a finished run (`finished_result`), else None."""
    result = finished_result(run_dir)
    return None if result is None else (Path(result["exported_model"]), int(result["global_step"]))


def loss_summary(run_dir: Path, key: str = "panoptic_loss") -> dict[str, float]:
    """First and last logged value of `key` in metrics.jsonl (all launches append to this folder)."""
    path = run_dir / METRICS_FILE
    values = []
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "log" and key in record:
                values.append(float(record[key]))
    return {"first_loss": values[0], "last_loss": values[-1]} if values else {}


def timing_summary(run_dir: Path) -> dict[str, float]:
    """Mean seconds per loader batch over the logged windows of metrics.jsonl, and the share of them spent
    waiting for the loader (a share near 0: the step is compute-bound; near 1: loader-bound)."""
    path = run_dir / METRICS_FILE
    iterations, waits = [], []
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "log" and ITERATION_SECONDS in record:
                iterations.append(float(record[ITERATION_SECONDS]))
                waits.append(float(record.get(DATA_WAIT_SECONDS, 0.0)))
    if not iterations or sum(iterations) <= 0:
        return {}
    return {
        "seconds_per_iteration": sum(iterations) / len(iterations),
        "data_wait_share": sum(waits) / sum(iterations),
    }


# ---------------------------------------------------------------------- checkpoint identity


def checkpoint_label(checkpoint: str | Path) -> str:
    """A short name: `<run>/model-final` for a run folder's export, else the file or folder name."""
    path = Path(checkpoint).resolve()
    if path.name.startswith("model-") and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.stem if path.is_file() else path.name


def training_image_size(checkpoint: str | Path) -> int | None:
    """Long side the model was trained at: from the model folder's own metadata (`training_resolutions`,
    written by the worker's export, so a model moved out of its run folder keeps it), else from the run's
    config.json next to an exported model folder."""
    path = Path(checkpoint).resolve()
    if not path.is_dir():
        return None
    for config, keys in (
        (path / CONFIG_FILE, ("metadata", TRAINING_RESOLUTIONS_KEY)),
        (path.parent / CONFIG_FILE, ("data", "resolutions")),
    ):
        try:
            resolutions = json.loads(config.read_text())
            for key in keys:
                resolutions = resolutions[key]
            return int(max(max(int(v) for v in resolution) for resolution in resolutions))
        except (OSError, KeyError, TypeError, ValueError):
            continue
    return None


def checkpoint_digest(checkpoint: str | Path) -> str:
    """Cheap identity of a checkpoint file or folder: names, sizes and modification times of its files."""
    path = Path(checkpoint).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path.parent)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------- the launch


@dataclass(frozen=True)
class TorchrunLaunch:
    """One torchrun launch of the worker on a run folder: on one node (`--standalone`) or as node
    `node_rank` of `nnodes` (c10d rendezvous at `rdzv_endpoint`, hosted by node 0)."""

    run_dir: Path
    """The run folder holding config.json; results, checkpoints and torchrun.log land there."""
    nproc_per_node: int = 1
    """Worker processes (one per GPU; gloo ranks on the CPU)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of every launched process (e.g. the MLflow run the workers log to)."""
    python: str = sys.executable
    """The interpreter whose torchrun runs the worker."""
    nnodes: int = 1
    """Nodes of the run, one launch on each; every node runs `nproc_per_node` workers."""
    node_rank: int = 0
    """This node's place: node r holds global ranks r * nproc_per_node ...; node 0 (global rank 0) alone
    writes the run folder's shared files (config, metrics, checkpoints, result, torchrun.log)."""
    rdzv_endpoint: str | None = None
    """HOST:PORT of node 0, where it hosts the rendezvous (multi-node only)."""
    max_restarts: int = 0
    """How often torchrun restarts every node's workers after a failure (they resume from checkpoint-last)."""

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def writes_shared_files(self) -> bool:
        return self.node_rank == 0

    @property
    def log_name(self) -> str:
        """Node 0 logs to torchrun.log, node r to torchrun-node<r>.log (several nodes may share a folder)."""
        return LOG_FILE if self.node_rank == 0 else f"torchrun-node{self.node_rank}.log"

    @property
    def lock_name(self) -> str:
        return LOCK_FILE if self.node_rank == 0 else f"launch-node{self.node_rank}.lock"

    def validate(self) -> None:
        if self.nproc_per_node < 1:
            raise ValueError(f"--nproc-per-node must be >= 1, got {self.nproc_per_node}")
        if self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(
                f"--nnodes {self.nnodes} --node-rank {self.node_rank}: need nnodes >= 1 and 0 <= node rank < nnodes"
            )
        if self.max_restarts < 0:
            raise ValueError(f"--max-restarts must be >= 0, got {self.max_restarts}")
        if self.nnodes == 1 and self.rdzv_endpoint:
            raise ValueError(
                "--rdzv-endpoint is for several nodes; give --nnodes N (N > 1) with it, or drop it"
            )
        if self.nnodes > 1:
            check_endpoint(self.rdzv_endpoint)

    def command(self) -> list[str]:
        """`python -m flows.torchrun_agent` (torchrun tied to this process) with `--standalone` on one node,
        else c10d rendezvous flags, then `-m flows.torchrun_worker --run-dir DIR`."""
        self.validate()
        if self.nnodes == 1:
            nodes = ["--standalone"]
        else:
            nodes = [
                "--nnodes",
                str(self.nnodes),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                str(self.rdzv_endpoint),
                "--rdzv-id",
                self.run_dir.name,
                "--rdzv-conf",
                f"is_host={int(self.node_rank == 0)}",
            ]
        return [
            self.python,
            "-m",
            AGENT_MODULE,
            *nodes,
            "--max-restarts",
            str(self.max_restarts),
            "--nproc-per-node",
            str(self.nproc_per_node),
            "-m",
            WORKER_MODULE,
            "--run-dir",
            str(self.run_dir),
        ]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's) without an inherited MLflow run, plus the NCCL settings, unbuffered
        output, this launcher's pid and node, and `env`: the workers log to MLflow only when the launcher
        says so."""
        environment = {
            key: value
            for key, value in (os.environ if base is None else base).items()
            if key not in (RUN_ID_ENV, TRACKING_URI_ENV)
        }
        environment.update(NCCL_SAFE_ENV)
        environment["PYTHONUNBUFFERED"] = "1"
        environment[LAUNCHER_PID_ENV] = str(os.getpid())
        environment[NODE_RANK_ENV] = str(self.node_rank)
        environment[NNODES_ENV] = str(self.nnodes)
        environment.update(self.env)
        return environment


def check_endpoint(endpoint: str | None) -> None:
    """ValueError unless `endpoint` is HOST:PORT."""
    host, _, port = (endpoint or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--rdzv-endpoint {endpoint!r}: give node 0's HOST:PORT (an address every node reaches and a free "
            "port), e.g. 10.0.0.1:29400"
        )


class LaunchError(RuntimeError):
    """torchrun failed, ran past its timeout, or ended without a result.json. `retryable`: whether launching
    again could help (not after a timeout)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class LaunchDataError(ValueError):
    """The workers stopped on damaged store data: launching again would fail the same way."""


def launch(
    spec: TorchrunLaunch,
    on_line: Callable[[str], None] = print,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run torchrun and return the workers' result.json (node 0; other nodes: what they ran). torchrun runs in
    a session of its own, holding the run folder's lock, with every output line going straight to the
    node's log and from there to `on_line` (called in this thread); the session ends on any way out of this
    call, including an interrupt, and torchrun ends with this process even when it is SIGKILLed. Past
    `timeout_s` torchrun gets SIGTERM, then SIGKILL, and a LaunchError says so; LaunchError with the last
    lines when torchrun fails; RunFolderBusyError when another launch holds the folder."""
    spec.validate()
    run_dir = spec.run_dir
    with hold_run_folder(run_dir, spec.lock_name) as lock_fd:
        if spec.writes_shared_files:  # left by an earlier launch, they must not count
            for stale in (RESULT_FILE, DATA_ERROR_FILE):
                (run_dir / stale).unlink(missing_ok=True)
        log = run_dir / spec.log_name
        tail: deque[str] = deque(maxlen=_TAIL_LINES)

        def forward(line: str) -> None:
            tail.append(line)
            on_line(line)

        process, offset = start_in_session(spec.command(), spec.environment(), log, pass_fds=(lock_fd,))
        # A timer, not a read timeout: a silent hang must end too, and lines stay in the caller's thread.
        timed_out = threading.Event()
        timer = threading.Timer(timeout_s, _stop, (process, timed_out)) if timeout_s is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            code = run_followed(process, log, offset, forward, TERMINATE_GRACE_S)
        finally:
            if timer is not None:
                timer.cancel()
    return _launch_outcome(spec, code, timed_out.is_set(), timeout_s, tail)


def _stop(process: subprocess.Popen, timed_out: threading.Event) -> None:
    timed_out.set()
    end_session(process, TERMINATE_GRACE_S)


def _launch_outcome(
    spec: TorchrunLaunch, code: int, timed_out: bool, timeout_s: float | None, tail: deque[str]
) -> dict[str, Any]:
    log = spec.run_dir / spec.log_name
    if timed_out:
        raise LaunchError(
            f"torchrun ran past its {timeout_s:.0f} s timeout and was stopped (full log: {log})",
            retryable=False,
        )
    data_error = read_data_error(spec.run_dir)
    if code != 0 and data_error is not None:
        raise LaunchDataError(data_error)
    if code != 0:
        raise LaunchError(
            f"torchrun exited with code {code} (full log: {log}); last lines:\n" + "\n".join(tail)
        )
    if not spec.writes_shared_files:
        return {"node_rank": spec.node_rank, "nnodes": spec.nnodes, "world_size": spec.world_size}
    result = read_result(spec.run_dir)
    if result is None:
        raise LaunchError(f"torchrun finished but wrote no {spec.run_dir / RESULT_FILE}; see {log}")
    return result
