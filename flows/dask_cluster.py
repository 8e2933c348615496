"""Which Dask cluster runs the preprocess tasks: a temporary LocalCluster, an existing cluster at an address,
or Slurm jobs through dask_jobqueue.SLURMCluster. Dask and dask_jobqueue do all the scheduling; this module
only turns the user's choice into a prefect_dask.DaskTaskRunner.

Every worker process runs one task at a time with one thread: pyrender's EGL contexts are per thread, and
one scene per process keeps a scene's memory its own. Importing this module imports no Prefect (the CLI
reads its names before Prefect's settings are in place).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

CLUSTER_KINDS = ("local", "address", "slurm")
# Environment every worker process needs; PREFECT_API_URL and PREFECT_HOME reach the tasks through the
# Prefect settings that prefect_dask sends with every task. Each worker is one single-threaded process per
# core, so the thread pools of BLAS/OpenMP libraries (read at import) get one thread: N workers x N threads
# would oversubscribe the cores. The tasks cap OpenCV and Zarr too (datasets.preprocess.worker_threads).
WORKER_ENV = {
    "PYOPENGL_PLATFORM": "egl",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
# glibc's allocator settings for worker processes. Dask's Nanny sets MALLOC_TRIM_THRESHOLD_=65536 by default,
# and setting any of these switches off glibc's adaptive mmap threshold: every buffer over 128 KiB (a decoded
# 1752x1168 frame is 6 MB) is then mapped fresh, zero-filled on first touch and unmapped on free, which made
# a preprocessing worker's per-frame stages 1.3-2.5x slower than the same code in a plain process (JPEG
# decode 2x, depth and ids 2.5x). Buffers up to 32 MiB (glibc's largest mmap threshold) are recycled from the
# heap instead; free heap beyond 128 MiB is still returned to the system. glibc reads them when a process
# starts, so they go into the environment the worker is spawned with, not into WORKER_ENV (set after).
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20),
}
# A preprocessing worker imports the tasks' modules while it starts (in parallel with the Prefect server's
# boot and the flow run's creation) rather than when the first task reaches it: flows.preprocess_preload.
PREPROCESS_WORKER_OPTIONS = {"preload": ["flows.preprocess_preload"]}
# The preprocess flow places each task on a worker itself (flows.chunk_dispatch): the schedulers it starts do
# no work stealing, which moved its queued tasks between workers behind its back (on a 16-worker host: 14.7 s
# idle between tasks per worker).
PREPROCESS_WORK_STEALING = False
# Preloaded by every worker of the project's local and Slurm clusters, before any run-specific preload.
COMMON_WORKER_PRELOAD = ("flows.worker_shutdown_log",)
DEFAULT_SLURM_LOG_DIR = Path("runs") / "slurm"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B)$", re.IGNORECASE)
_WALLTIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){1,2}$")


@dataclass(frozen=True)
class SlurmSettings:
    """One Slurm job per `jobs`, each holding `cores` single-threaded Dask worker processes."""

    jobs: int = 1
    """Slurm jobs to submit (all at once; each becomes `cores` Dask workers when it starts)."""
    cores: int = 1
    """CPU cores per job (#SBATCH --cpus-per-task), one worker process per core."""
    memory: str = "4GB"
    """Memory per job, e.g. 4GB or 16GiB (#SBATCH --mem); split evenly between its workers."""
    walltime: str = "01:00:00"
    """Time limit per job, [D-]HH:MM[:SS] (#SBATCH -t); a job past it takes its workers with it."""
    partition: str | None = None
    """Slurm partition (#SBATCH -p); None: the cluster's default partition."""
    account: str | None = None
    """Slurm account to charge (#SBATCH -A); None: the user's default."""
    interface: str | None = None
    """Network interface (e.g. ib0) the scheduler and workers talk over; None: the default route's."""
    job_extra: tuple[str, ...] = ()
    """More #SBATCH options, each as on the command line, e.g. --constraint=avx2."""
    log_dir: str = str(DEFAULT_SLURM_LOG_DIR)
    """Folder (visible from the compute nodes) for the jobs' stdout/stderr files."""

    def check(self) -> None:
        """ValueError naming the flag for a setting Slurm would refuse or misread."""
        for flag, value in (("--slurm-jobs", self.jobs), ("--slurm-cores", self.cores)):
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        if not _MEMORY.match(self.memory.strip()):
            raise ValueError(f"--slurm-memory {self.memory!r}: give an amount with a unit, e.g. 4GB or 16GiB")
        if not _WALLTIME.match(self.walltime.strip()):
            raise ValueError(f"--slurm-walltime {self.walltime!r}: give [D-]HH:MM[:SS], e.g. 01:00:00")


@dataclass(frozen=True)
class ClusterChoice:
    """`kind` is one of CLUSTER_KINDS; `workers` sizes a local cluster, `address` names an existing one."""

    kind: str = "local"
    workers: int = 2
    address: str | None = None
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


def choose_cluster(
    kind: str | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    slurm: SlurmSettings | None = None,
) -> ClusterChoice:
    """Check the flags together. Without `kind`, `--dask-address` means "address", else "local"."""
    kind = kind or ("address" if dask_address else "local")
    if kind not in CLUSTER_KINDS:
        raise ValueError(f"--cluster {kind!r}: choose one of {', '.join(CLUSTER_KINDS)}")
    if kind == "address" and not dask_address:
        raise ValueError("--cluster address needs --dask-address tcp://HOST:PORT (the Dask scheduler)")
    if kind != "address" and dask_address:
        raise ValueError(f"--dask-address is for --cluster address, not --cluster {kind}; drop one of them")
    if kind == "local" and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    slurm = slurm or SlurmSettings()
    if kind == "slurm":
        slurm.check()
    return ClusterChoice(kind, workers, dask_address, slurm)


def make_task_runner(
    choice: ClusterChoice, worker_options: dict | None = None, work_stealing: bool = True
) -> DaskTaskRunner:
    """The DaskTaskRunner of `choice`; local and Slurm clusters live as long as the flow run.
    `worker_options`: more LocalCluster arguments for its workers (e.g. resources, plugins, preload); of
    them, `preload` also reaches Slurm workers (dask-worker --preload). `work_stealing`: whether the
    scheduler of a cluster it starts moves queued tasks between workers (an address's scheduler is its
    owner's)."""
    from prefect_dask import DaskTaskRunner

    if choice.kind == "address":
        return DaskTaskRunner(address=choice.address)
    if choice.kind == "slurm":
        return DaskTaskRunner(
            cluster_class="dask_jobqueue.SLURMCluster",
            cluster_kwargs=slurm_cluster_kwargs(
                choice.slurm, worker_env(), worker_preload(worker_options), work_stealing
            ),
        )
    spawn_workers_with_allocator_env()
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs=local_cluster_kwargs(choice, worker_options, work_stealing),
    )


def worker_env() -> dict[str, str]:
    """WORKER_ENV, where this process's environment does not set the value otherwise."""
    return {key: os.environ.get(key, value) for key, value in WORKER_ENV.items()}


def allocator_env() -> dict[str, str]:
    """ALLOCATOR_ENV, where this process's environment does not set the value otherwise."""
    return {key: os.environ.get(key, value) for key, value in ALLOCATOR_ENV.items()}


def spawn_workers_with_allocator_env() -> None:
    """Make the Nannies of local clusters started from this process spawn their workers with
    allocator_env() (distributed.nanny.pre-spawn-environ, which the Nanny applies before the spawn)."""
    import dask

    dask.config.set({f"distributed.nanny.pre-spawn-environ.{key}": value for key, value in allocator_env().items()})


def scheduler_options(work_stealing: bool) -> dict:
    """Scheduler arguments for a cluster of ours: none, or Dask's default extensions less work stealing.
    Given per cluster (the Scheduler's `extensions`), not through dask's global config, which would also
    reach every other cluster this process starts (e.g. batch prediction's)."""
    if work_stealing:
        return {}
    from distributed.scheduler import DEFAULT_EXTENSIONS

    return {"extensions": {name: ext for name, ext in DEFAULT_EXTENSIONS.items() if name != "stealing"}}


def worker_preload(worker_options: dict | None) -> list[str]:
    """The modules a worker preloads: COMMON_WORKER_PRELOAD, then the run's own `preload` option."""
    return [*COMMON_WORKER_PRELOAD, *(worker_options or {}).get("preload", ())]


def local_cluster_kwargs(
    choice: ClusterChoice, local_worker_options: dict | None = None, work_stealing: bool = True
) -> dict:
    """distributed.LocalCluster arguments: `choice.workers` single-threaded worker processes."""
    return {
        "n_workers": choice.workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "env": worker_env(),
        **(local_worker_options or {}),
        "preload": worker_preload(local_worker_options),
        "scheduler_kwargs": scheduler_options(work_stealing),
    }


def slurm_cluster_kwargs(
    slurm: SlurmSettings, env: dict[str, str], preload: Sequence[str] = (), work_stealing: bool = True
) -> dict:
    """dask_jobqueue.SLURMCluster arguments: `cores` single-threaded workers per job, `jobs` jobs. `env` and
    the allocator settings are exported by the job script, before its Nanny spawns the workers."""
    env = {**env, **allocator_env()}
    log_dir = Path(slurm.log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    return {
        "cores": slurm.cores,
        "processes": slurm.cores,
        "memory": slurm.memory.strip(),
        "walltime": slurm.walltime.strip(),
        "queue": slurm.partition,
        "account": slurm.account,
        "interface": slurm.interface,
        "job_extra_directives": list(slurm.job_extra),
        "worker_extra_args": [arg for module in preload for arg in ("--preload", module)],
        "job_script_prologue": [f"export {key}={value}" for key, value in sorted(env.items())],
        "log_directory": str(log_dir),
        "job_name": "panst3r-preprocess",
        # no dashboard; its HTTP server (metrics) on a free port, so that two runs never collide on 8787
        "scheduler_options": {"dashboard": False, "dashboard_address": ":0", **scheduler_options(work_stealing)},
        "n_workers": slurm.jobs * slurm.cores,
    }
