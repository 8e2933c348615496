"""`panst3r serve` + `prefect deployment run 'preprocess/local'` from another process, as the README says; the run
uses the warm workers that serve keeps."""

from __future__ import annotations

import time

import pytest
from _preprocess_support import TARGET_RESOLUTION, make_root
from _serve_support import Serve

from datasets.store.reader import StoreReader
from flows.prefect_env import api_healthy, free_port

pytestmark = pytest.mark.slow


def test_serve_then_trigger_the_preprocess_deployment(tmp_path):
    root, pairs = make_root(tmp_path / "data", num_scenes=1, seed=21)
    store = tmp_path / "store"
    serve = Serve(tmp_path, free_port(), "--workers", "1")
    try:
        serve.wait_for_line("serving: preprocess/local")
        serve.run_deployment(
            "preprocess/local",
            f"root={root}",
            f"pairs={pairs}",
            f"store={store}",
            f"target_resolution={TARGET_RESOLUTION}",
            cwd=tmp_path,
            timeout=420,
        )
        assert len(StoreReader(store).scene_ids()) == 1
        # The run's tasks went to the warm workers that serve started (they pickle as flows.preprocess).
        assert "1 warm preprocessing workers up" in serve.log()
        assert "the 1 warm workers of panst3r serve" in serve.log(), serve.log()[-3000:]

        # A run that fails shows why in the watching terminal, not only in the serve terminal.
        missing = tmp_path / "no_such_root"
        failing = serve.watch_deployment(
            "preprocess/local", f"root={missing}", f"store={store}", cwd=tmp_path, timeout=420
        )
        assert failing.returncode == 1 and "Failed" in failing.stdout
        assert f"--root {missing} is not a directory" in failing.stdout, failing.stdout[-3000:]
    finally:
        serve.stop()
    serve.assert_stopped_cleanly()
    # The server that `serve` started is stopped with it.
    deadline = time.monotonic() + 30
    while api_healthy(serve.api_url, timeout=1.0) and time.monotonic() < deadline:
        time.sleep(1)
    assert not api_healthy(serve.api_url, timeout=1.0), "serve left its Prefect server running"
