"""`panst3r preprocess --cluster slurm` against a real one-node Slurm: dask_jobqueue submits the workers as
Slurm jobs, every scene is committed, and the jobs are gone when the run ends."""

from __future__ import annotations

import pytest
from _preprocess_support import cli_env, make_root, run_preprocess
from _slurm_support import OneNodeSlurm, unavailable_reason

from datasets.store.reader import StoreReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no one-node Slurm: {reason}")
    cluster = OneNodeSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.skip(f"Slurm could not start on this machine: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def test_preprocess_on_slurm_jobs(tmp_path, prefect_server, slurm):
    root, pairs = make_root(tmp_path / "data", num_scenes=3, seed=14)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    store, logs = tmp_path / "store", tmp_path / "slurm-logs"
    env = {**cli_env(*prefect_server), "SLURM_CONF": slurm.env()["SLURM_CONF"]}
    result, summary = run_preprocess(
        env,
        root,
        pairs,
        store,
        tmp_path / "summary.json",
        "--cluster",
        "slurm",
        "--slurm-jobs",
        "2",
        "--slurm-cores",
        "1",
        "--slurm-memory",
        "2GB",
        "--slurm-walltime",
        "00:15:00",
        "--slurm-partition",
        slurm.partition,
        "--slurm-log-dir",
        str(logs),
    )
    assert result.returncode == 0, result.stderr[-3000:] + "\n" + slurm.logs()
    assert summary["done"] == scene_ids and not summary["failed"]
    assert StoreReader(store).scene_ids() == scene_ids
    # The workers ran as Slurm jobs: one output file per job, each with a Dask worker that joined.
    job_logs = sorted(logs.glob("panst3r-preprocess-*.err"))
    assert len(job_logs) == 2, [p.name for p in logs.iterdir()]
    for job_log in job_logs:
        assert "Registered to:" in job_log.read_text(), job_log.read_text()[-2000:]
    assert "Allocate JobId=" in (slurm.folder / "log" / "slurmctld.log").read_text()
    assert slurm.queue() == [], "the run left Slurm jobs behind"
