"""The store at s3://BUCKET/PREFIX on a real S3-compatible server (SeaweedFS, started by the session fixture
`s3_server`), end to end through the CLI: preprocess with a Dask worker killed mid-run and a scene that
fails, re-runs that finish exactly what is missing or failed, `status` with the store's versions; then
train (a spawned loader worker) and evaluate reading the store from the object store, every MLflow run
tagged with the snapshot it read. The endpoint reaches the CLI through `--s3-endpoint`, the keys through
the standard AWS variables."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from _preprocess_support import (
    REPO,
    assert_store_consistent,
    cli_command,
    cli_env,
    kill_a_worker_after_a_commit,
    make_root,
    preprocess_in_process,
    run_preprocess,
    start_preprocess,
)
from mlflow.tracking import MlflowClient

from datasets.store.backend import backend_for
from datasets.store.queries import store_version

pytestmark = pytest.mark.slow

TRAIN_OVERRIDES = [
    "training.epochs=1",
    "data.samples_per_epoch=4",
    "data.resolutions=[[64,48]]",
    "data.split=null",
    "criterion.num_points=256",
    "training.num_workers=1",  # one loader worker: spawned, as object stores need
    "training.print_freq=1",
]


def _object_store_env(prefect_server, s3) -> tuple[dict[str, str], list[str]]:
    """The CLI's environment (keys, no endpoint) and the flag that names the endpoint."""
    env = cli_env(*prefect_server)
    env.update(s3.env())
    env.pop("AWS_ENDPOINT_URL")
    env["OMP_NUM_THREADS"] = "1"
    return env, ["--s3-endpoint", s3.endpoint]


def _cli(env, *args, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cli_command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_preprocess_into_an_object_store_keeps_the_store_guarantees(tmp_path, prefect_server, s3_env):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=8)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    broken = scene_ids[-1]
    cameras = root / "data" / broken / "dslr" / "colmap" / "cameras.txt"
    saved = cameras.read_bytes()
    cameras.unlink()
    url = s3_env.url(f"integration/{uuid.uuid4().hex[:8]}")
    env, endpoint = _object_store_env(prefect_server, s3_env)

    process = start_preprocess(env, root, pairs, url, "--workers", "2", *endpoint)
    kill_a_worker_after_a_commit(process, url)  # whatever that worker was writing was never committed
    first = assert_store_consistent(url)
    assert broken not in first

    _, summary = run_preprocess(env, root, pairs, url, tmp_path / "s2.json", "--workers", "2", *endpoint)
    assert summary["skipped"] == first
    assert list(summary["failed"]) == [broken] and "cameras.txt" in summary["failed"][broken]
    assert sorted(summary["done"] + summary["skipped"]) == [s for s in scene_ids if s != broken]

    cameras.write_bytes(saved)  # the failed scene is fixed: the next run redoes it and nothing else
    _, summary = run_preprocess(env, root, pairs, url, tmp_path / "s3.json", "--workers", "2", *endpoint)
    assert summary["done"] == [broken] and summary["skipped"] == [s for s in scene_ids if s != broken]
    assert assert_store_consistent(url) == scene_ids
    version = store_version(url)
    assert version.kind == "snapshot" and summary["version"] == version.id
    assert set(summary["commit_seconds"]) == {broken}

    status = _cli(env, "status", "--store", url, *endpoint, "--history", "20")
    assert f"version: snapshot {version.id}" in status.stdout
    assert f"commit scene {broken}" in status.stdout and "done 4 / stale 0 / failed 0" in status.stdout
    # One snapshot per committed scene (the killed worker's scene included once it was redone), plus the store's creation.
    commits = [v.message for v in backend_for(url).history(50)]
    assert sum(message.startswith("commit scene") for message in commits) >= len(scene_ids)


def test_train_and_evaluate_read_the_object_store_and_record_its_snapshot(
    tmp_path, prefect_server, s3_env, synthetic_root
):
    url = s3_env.url(f"integration/{uuid.uuid4().hex[:8]}")
    preprocess_in_process(synthetic_root, url, 160)
    snapshot = store_version(url).id
    env, endpoint = _object_store_env(prefect_server, s3_env)
    runs = tmp_path / "runs"

    train = _cli(
        env, "train", "--store", url, *endpoint, "--config", "synthetic_cpu", "--runs-dir", str(runs),
        "--run-name", "s3", "--experiment", "s3-train", *TRAIN_OVERRIDES,
    )  # fmt: skip
    assert "MLflow UI" in train.stdout
    run_dir = runs / "train" / "s3"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["stores"] == [f"{url}?snapshot={snapshot}"], (
        "training reads the snapshot it started on"
    )
    assert json.loads((run_dir / "result.json").read_text())["global_step"] >= 1

    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    (trained,) = client.search_runs([client.get_experiment_by_name("s3-train").experiment_id])
    assert trained.info.status == "FINISHED"
    assert (
        trained.data.tags["store.version"] == snapshot
        and trained.data.tags["store.version_kind"] == "snapshot"
    )
    assert trained.data.tags["stores"] == f"{url}?snapshot={snapshot}"

    _cli(
        env, "evaluate", "--store", url, *endpoint, "--checkpoints", str(run_dir / "model-final"),
        "--split", "all", "--keyframes", "2", "--max-views", "3", "--image-size", "64",
        "--experiment", "s3-eval", "--runs-dir", str(runs),
    )  # fmt: skip
    evaluated = client.search_runs([client.get_experiment_by_name("s3-eval").experiment_id])
    assert {r.data.tags["panst3r.sweep"] for r in evaluated} == {"parent", "child"}
    for run in evaluated:
        assert run.info.status == "FINISHED"
        assert (
            run.data.tags["store.version"] == snapshot and run.data.tags["store.version_kind"] == "snapshot"
        )
