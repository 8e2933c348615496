"""The flags that pick the Dask cluster of `panst3r preprocess` (flows.dask_cluster does the rest)."""

from __future__ import annotations

import argparse

from flows.dask_cluster import (
    CLUSTER_KINDS,
    DEFAULT_SLURM_LOG_DIR,
    ClusterChoice,
    SlurmSettings,
    choose_cluster,
)


def add_cluster_arguments(
    parser: argparse.ArgumentParser,
    workers_default: int | None = 2,
    workers_help: str = "Dask worker processes of the local cluster (default 2)",
) -> None:
    parser.add_argument(
        "--cluster",
        choices=CLUSTER_KINDS,
        default=None,
        help="local: a temporary LocalCluster of --workers processes (default); address: the existing "
        "cluster at --dask-address; slurm: Slurm jobs through dask_jobqueue (--slurm-* flags)",
    )
    parser.add_argument("--workers", type=int, default=workers_default, help=workers_help)
    parser.add_argument(
        "--dask-address",
        default=None,
        help="scheduler address of an existing Dask cluster, e.g. tcp://HOST:8786 (implies --cluster address)",
    )
    slurm = parser.add_argument_group("Slurm (--cluster slurm)")
    slurm.add_argument("--slurm-jobs", type=int, default=1, help="Slurm jobs to submit (default 1)")
    slurm.add_argument(
        "--slurm-cores",
        type=int,
        default=1,
        help="cores per job, one single-threaded Dask worker per core (default 1)",
    )
    slurm.add_argument("--slurm-memory", default="4GB", help="memory per job, e.g. 16GB (default 4GB)")
    slurm.add_argument(
        "--slurm-walltime", default="01:00:00", help="time limit per job, [D-]HH:MM[:SS] (default 01:00:00)"
    )
    slurm.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's default)")
    slurm.add_argument("--slurm-account", default=None, help="account to charge (default: yours)")
    slurm.add_argument(
        "--slurm-interface",
        default=None,
        help="network interface of the scheduler and workers, e.g. ib0 (default: the default route's)",
    )
    slurm.add_argument(
        "--slurm-job-extra",
        action="append",
        default=[],
        metavar="OPTION",
        help="one more #SBATCH option, e.g. --slurm-job-extra=--constraint=avx2 (repeatable)",
    )
    slurm.add_argument(
        "--slurm-log-dir",
        default=str(DEFAULT_SLURM_LOG_DIR),
        help=f"folder for the jobs' output files, visible from the compute nodes (default {DEFAULT_SLURM_LOG_DIR})",
    )


def cluster_from_args(args: argparse.Namespace) -> ClusterChoice:
    """The checked ClusterChoice of the parsed flags (ValueError naming the flag otherwise)."""
    slurm = SlurmSettings(
        jobs=args.slurm_jobs,
        cores=args.slurm_cores,
        memory=args.slurm_memory,
        walltime=args.slurm_walltime,
        partition=args.slurm_partition,
        account=args.slurm_account,
        interface=args.slurm_interface,
        job_extra=tuple(args.slurm_job_extra),
        log_dir=args.slurm_log_dir,
    )
    return choose_cluster(args.cluster, args.workers, args.dask_address, slurm)
