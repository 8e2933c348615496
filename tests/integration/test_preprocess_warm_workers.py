"""`panst3r preprocess` on the warm workers of a running `panst3r serve` (flows.warm_workers): a real pool
as serve hosts it, a real Prefect server and the real CLI."""

from __future__ import annotations

import pytest
from _preprocess_support import cli_env, make_root, run_preprocess

from datasets.store.reader import StoreReader
from flows.cache_dir import CACHE_ENV
from flows.dask_cluster import PREPROCESS_WORKER_OPTIONS, choose_cluster
from flows.warm_workers import WarmWorkersHost

pytestmark = pytest.mark.slow

WARM_LINE = "warm workers of panst3r serve"


def test_a_run_uses_the_warm_workers_and_fresh_workers_opts_out(prefect_server, tmp_path, monkeypatch):
    root, pairs = make_root(tmp_path / "synthetic", num_scenes=2, seed=17)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    env = {**cli_env(*prefect_server), CACHE_ENV: str(tmp_path / "cache")}
    with WarmWorkersHost(choose_cluster(workers=1), PREPROCESS_WORKER_OPTIONS) as host:
        assert host.wait(timeout=240), "the warm pool did not come up"
        warm, summary = run_preprocess(env, root, pairs, tmp_path / "store", tmp_path / "a.json", "--workers", "1")
        assert warm.returncode == 0 and WARM_LINE in warm.stderr, warm.stderr[-3000:]
        assert sorted(summary["done"]) == sorted(StoreReader(tmp_path / "store").scene_ids())
        assert len(summary["done"]) == 2
        assert host.cluster.status.name == "running", "the run closed the pool it borrowed"

        # Another worker count is another cluster; --fresh-workers asks for an own one anyway.
        for flags, name in ((("--workers", "2"), "b"), (("--workers", "1", "--fresh-workers"), "c")):
            own, summary = run_preprocess(env, root, pairs, tmp_path / name, tmp_path / f"{name}.json", *flags)
            assert own.returncode == 0 and len(summary["done"]) == 2, own.stderr[-3000:]
            assert WARM_LINE not in own.stderr and "Dask cluster up" in own.stderr, own.stderr[-3000:]
