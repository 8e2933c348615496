"""Runs of `panst3r serve`'s deployments fork from its preloaded forkserver (flows.preloaded_runs), with a real
Prefect server: a run created through the REST API, as `prefect deployment run` does, completes with its
scenes and its logs on the server; a run cancelled through the API ends Cancelled and its process ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _preprocess_support import TARGET_RESOLUTION, make_root
from _process_tree import alive, cmdline, descendants, wait_gone
from _serve_support import Serve, rest_call

from datasets.store.reader import StoreReader
from flows.prefect_env import free_port

pytestmark = pytest.mark.slow

FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
FORKSERVER = "from multiprocessing.forkserver import main"


_api = rest_call


def _create_run(api_url: str, root: Path, pairs: Path, store: Path) -> str:
    deployment = _api(api_url, "deployments/name/preprocess/local")
    parameters = {
        "root": str(root),
        "pairs": str(pairs),
        "store": str(store),
        "target_resolution": TARGET_RESOLUTION,
    }
    return _api(api_url, f"deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})["id"]


def _wait_for_state(api_url: str, run_id: str, states: tuple[str, ...], timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = _api(api_url, f"flow_runs/{run_id}")["state_type"]
        if state in states:
            return state
        time.sleep(0.1)
    pytest.fail(f"flow run {run_id} is {state}, not one of {states}, after {timeout} s")


def _run_process(serve: Serve) -> tuple[int, int]:
    """(forkserver pid, pid of the one flow run process, its child) while a run is in progress."""
    tree = descendants(serve.process.pid)
    (forkserver,) = [
        pid for pid, command in tree.items() if FORKSERVER in command and _parent_of(pid) == serve.process.pid
    ]
    runs = [pid for pid in tree if _parent_of(pid) == forkserver]
    assert len(runs) == 1, {pid: tree[pid][:120] for pid in tree}
    return forkserver, runs[0]


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve")
    serve = Serve(home, free_port(), "--workers", "1")
    try:
        serve.wait_for_line("serving: preprocess/local")
        yield serve
    finally:
        serve.stop()
    serve.assert_stopped_cleanly()
    assert not descendants(serve.process.pid), "serve left processes behind"


def test_a_served_run_forks_from_the_preloaded_process_and_completes(serve, tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=31)
    store = tmp_path / "store"
    run_id = _create_run(serve.api_url, root, pairs, store)
    assert _wait_for_state(serve.api_url, run_id, ("RUNNING", *FINAL_STATES)) == "RUNNING"

    forkserver, run = _run_process(serve)
    # Forked, not started as a new interpreter: the run's process has the forkserver's command line, whose
    # preload list it imported before forking.
    assert cmdline(run) == cmdline(forkserver)
    assert (
        "'prefect.flow_engine', 'flows.preprocess', 'flows.train', 'flows.evaluate', 'flows.pipeline'"
        in cmdline(forkserver)
    )

    assert _wait_for_state(serve.api_url, run_id, FINAL_STATES) == "COMPLETED"
    assert len(StoreReader(store).scene_ids()) == 2
    wait_gone([run], timeout=30)
    assert alive(forkserver), "the forkserver serves the next run"
    # The run's last log lines reached the server (sent by the forked process before it exits).
    messages = [
        entry["message"]
        for entry in _api(serve.api_url, "logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    ]
    assert any("preprocess finished" in message for message in messages), messages


def test_a_served_run_cancelled_through_the_api_ends_cancelled(serve, tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=4, seed=32, frames=8)
    run_id = _create_run(serve.api_url, root, pairs, tmp_path / "store")
    assert _wait_for_state(serve.api_url, run_id, ("RUNNING", *FINAL_STATES)) == "RUNNING"
    _, run = _run_process(serve)

    # what `prefect flow-run cancel` does
    _api(
        serve.api_url,
        f"flow_runs/{run_id}/set_state",
        {"state": {"type": "CANCELLING", "name": "Cancelling"}},
    )
    assert _wait_for_state(serve.api_url, run_id, FINAL_STATES, timeout=120) == "CANCELLED"
    wait_gone([run], timeout=30)
