"""One compute thread per preprocessing worker process.

A preprocessing worker is one single-threaded process per core (flows/dask_cluster.py). Libraries that start
their own thread pools (OpenBLAS/MKL/OpenMP under numpy and OpenCV, OpenCV's parallel_for, Zarr's codec
thread pool) would otherwise each start one thread per core in every worker: N workers x N threads on N
cores, which the scheduler pays for in context switches and cache misses. The environment variables set at
cluster start (flows.dask_cluster.WORKER_ENV) cover the pools read at import; this covers the rest, and
workers of a cluster that someone else started.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

THREADS = 1
_limited = False


def limit_threads() -> None:
    """Cap BLAS/OpenMP (threadpoolctl), OpenCV and Zarr's codec pool at THREADS in this process; idempotent."""
    global _limited
    if _limited:
        return
    import cv2
    import zarr

    cv2.setNumThreads(THREADS)
    # Zarr encodes chunks on a thread pool; more threads than the worker's one core only contend.
    zarr.config.set({"threading.max_workers": THREADS})
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: the environment variables already cover BLAS loaded after them
        log.debug("threadpoolctl is not installed; BLAS threads follow OMP_NUM_THREADS and friends")
    else:
        threadpool_limits(limits=THREADS)
    _limited = True


def thread_limits() -> dict[str, int | None]:
    """The limits in force in this process (for tests and the benchmark)."""
    import cv2
    import zarr

    limits: dict[str, int | None] = {
        "opencv": cv2.getNumThreads(),
        "zarr": zarr.config.get("threading.max_workers"),
    }
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return limits
    for pool in threadpool_info():
        limits[pool["internal_api"]] = pool["num_threads"]
    return limits
