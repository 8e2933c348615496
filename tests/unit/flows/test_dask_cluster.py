"""The cluster choice of `panst3r preprocess`: flag checks and the task runners they build."""

import pytest

from flows.dask_cluster import (
    ALLOCATOR_ENV,
    PREPROCESS_WORKER_OPTIONS,
    SlurmSettings,
    choose_cluster,
    make_task_runner,
    slurm_cluster_kwargs,
    worker_preload,
)


def test_local_and_address_runners():
    local = make_task_runner(choose_cluster(workers=3))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["env"]["PYOPENGL_PLATFORM"]
    remote = make_task_runner(choose_cluster(dask_address="tcp://127.0.0.1:8786"))
    assert remote.address == "tcp://127.0.0.1:8786"
    assert choose_cluster("address", dask_address="tcp://h:1").kind == "address"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "--workers must be at least 1"),
        ({"kind": "address"}, "--cluster address needs --dask-address"),
        ({"kind": "slurm", "dask_address": "tcp://h:1"}, "--dask-address is for --cluster address"),
        ({"kind": "kubernetes"}, "choose one of local, address, slurm"),
        ({"kind": "slurm", "slurm": SlurmSettings(jobs=0)}, "--slurm-jobs must be at least 1"),
        ({"kind": "slurm", "slurm": SlurmSettings(memory="lots")}, "--slurm-memory 'lots'"),
        ({"kind": "slurm", "slurm": SlurmSettings(walltime="1h")}, "--slurm-walltime '1h'"),
    ],
)
def test_bad_flags_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_cluster(**kwargs)


def test_slurm_settings_become_the_job_script(tmp_path):
    """The arguments go through dask_jobqueue itself: the #SBATCH header it would submit."""
    from dask_jobqueue import SLURMCluster

    settings = SlurmSettings(
        jobs=3,
        cores=2,
        memory="3GB",
        walltime="00:20:00",
        partition="cpu",
        account="lab",
        job_extra=("--constraint=avx2",),
        log_dir=str(tmp_path / "logs"),
    )
    choice = choose_cluster("slurm", slurm=settings)
    assert make_task_runner(choice).cluster_class == "dask_jobqueue.SLURMCluster"
    kwargs = slurm_cluster_kwargs(settings, {"PYOPENGL_PLATFORM": "egl"}, worker_preload(PREPROCESS_WORKER_OPTIONS))
    assert kwargs.pop("n_workers") == 6  # 3 jobs x 2 single-threaded workers
    with SLURMCluster(**kwargs) as cluster:
        script = cluster.job_script()
    for line in (
        "#SBATCH -p cpu",
        "#SBATCH -A lab",
        "#SBATCH -t 00:20:00",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --constraint=avx2",
        f"#SBATCH -o {tmp_path / 'logs'}/panst3r-preprocess-%J.out",
        "export PYOPENGL_PLATFORM=egl",
        f"export MALLOC_MMAP_THRESHOLD_={ALLOCATOR_ENV['MALLOC_MMAP_THRESHOLD_']}",
        f"export MALLOC_TRIM_THRESHOLD_={ALLOCATOR_ENV['MALLOC_TRIM_THRESHOLD_']}",
        "--nthreads 1",
        "--nworkers 2",
        "--preload flows.worker_shutdown_log --preload flows.preprocess_preload",
    ):
        assert line in script, f"{line!r} not in\n{script}"


def _limits_after_a_task_started() -> dict:
    import os

    from datasets.preprocess.scene_job import prepare_worker
    from datasets.preprocess.worker_threads import thread_limits

    prepare_worker()  # the first thing every preprocessing task does
    env = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"env": env, **thread_limits()}


def test_a_local_worker_computes_on_one_thread():
    """A real worker of the flow's LocalCluster: one thread for BLAS/OpenMP (environment at start, then
    threadpoolctl), OpenCV and Zarr's codec pool, so that N workers on N cores do not oversubscribe them."""
    from distributed import Client, LocalCluster

    kwargs = dict(make_task_runner(choose_cluster(workers=1)).cluster_kwargs)
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        limits = client.submit(_limits_after_a_task_started, pure=False).result(timeout=60)
    assert set(limits.pop("env").values()) == {"1"}
    assert limits.pop("opencv") == 1 and limits.pop("zarr") == 1
    assert set(limits.values()) <= {1}, f"a BLAS/OpenMP pool kept more threads: {limits}"


def _allocator_environment() -> dict:
    import os

    return {key: os.environ.get(key) for key in ALLOCATOR_ENV}


def test_local_workers_start_with_the_allocator_settings():
    """glibc reads MALLOC_* when a process starts: a worker must be spawned with them (Dask's own default,
    MALLOC_TRIM_THRESHOLD_=65536, made every large buffer a fresh zero-filled mapping)."""
    from distributed import Client, LocalCluster

    kwargs = dict(make_task_runner(choose_cluster(workers=1)).cluster_kwargs)
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        environment = client.submit(_allocator_environment, pure=False).result(timeout=60)
    assert environment == ALLOCATOR_ENV


def test_preprocessing_schedulers_do_no_work_stealing(tmp_path):
    """The preprocess flow places its tasks itself: the schedulers its runner, its early cluster and a Slurm
    run start load no stealing extension (the early cluster's and warm workers' tests check theirs), and Dask's global setting is left alone for other clusters."""
    import dask
    from distributed import LocalCluster

    from flows.preprocess_runner import preprocess_task_runner

    before = dask.config.get("distributed.scheduler.work-stealing")
    runner = preprocess_task_runner(choose_cluster("local", 1))
    kwargs = {**runner.cluster_kwargs, "n_workers": 0, "processes": False}
    with LocalCluster(**kwargs) as cluster:
        assert "stealing" not in cluster.scheduler.extensions
        assert "amm" in cluster.scheduler.extensions  # the other defaults stay
    slurm = slurm_cluster_kwargs(SlurmSettings(log_dir=str(tmp_path)), {}, work_stealing=False)
    assert "stealing" not in slurm["scheduler_options"]["extensions"]
    assert dask.config.get("distributed.scheduler.work-stealing") == before


def test_other_clusters_keep_work_stealing():
    """Batch prediction's cluster (make_task_runner's default) keeps Dask's stealing."""
    from distributed import LocalCluster

    runner = make_task_runner(choose_cluster(workers=1))
    kwargs = {**runner.cluster_kwargs, "n_workers": 0, "processes": False}
    with LocalCluster(**kwargs) as cluster:
        assert "stealing" in cluster.scheduler.extensions
