import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import prefect.flow_engine
from prefect import flow

from flows.preloaded_runs import _ForkserverAsSpawn

REPO = Path(__file__).resolve().parents[3]


@flow
def tiny_flow() -> int:
    return 1


class _RecordingContext:
    """A start method that records the process Prefect asks it for and starts nothing."""

    def __init__(self):
        self.started = []

    def Process(self, target, args):  # noqa: N802 - the multiprocessing context's name
        context = self

        class _Process:
            def start(self):
                context.started.append((target, args))

        return _Process()


def test_prefect_takes_a_runs_process_from_the_spawn_context_that_serve_replaces(monkeypatch):
    """The hook of flows.preloaded_runs, against the installed Prefect: the in-memory flow's run process comes
    from prefect.flow_engine's `multiprocessing.get_context("spawn")`."""
    recording = _RecordingContext()
    monkeypatch.setattr(prefect.flow_engine, "multiprocessing", _ForkserverAsSpawn(recording))
    prefect.flow_engine.run_flow_in_subprocess(tiny_flow, env={"PREFECT__DEPLOYMENT_NAME": "local"})
    (target, args), *_ = recording.started
    assert len(recording.started) == 1 and callable(target) and isinstance(args[0], bytes)


def test_other_start_methods_and_names_are_those_of_multiprocessing():
    shim = _ForkserverAsSpawn(_RecordingContext())
    assert shim.get_context("fork") is multiprocessing.get_context("fork")
    assert shim.context is multiprocessing.context


SCRIPT = """
import json, sys
import prefect.flow_engine
from flows.preloaded_runs import RunForkserver

if __name__ == "__main__":
    RunForkserver(["preload_marker"]).serve_runs()
    context = prefect.flow_engine.multiprocessing.get_context("spawn")
    import preload_marker
    queue = context.SimpleQueue()
    process = context.Process(target=preload_marker.report, args=(queue,))
    process.start()
    process.join()
    print(json.dumps({**queue.get(), "main": preload_marker.IMPORTED_IN}))
"""

MARKER = """
import os, sys
IMPORTED_IN = os.getpid()

def report(queue):
    queue.put({"imported_in": IMPORTED_IN, "pid": os.getpid(), "parent": os.getppid(),
               "engine_loaded": "prefect.flow_engine" in sys.modules})
"""


def test_a_run_forks_from_a_process_that_imported_its_modules(tmp_path):
    """In a process of its own: the forkserver is one per process and outlives its first use."""
    (tmp_path / "preload_marker.py").write_text(textwrap.dedent(MARKER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # imported by the forkserver, the run's parent, before the run's process existed
    assert seen["imported_in"] == seen["parent"] != seen["pid"]
    assert seen["parent"] != seen["main"] and seen["engine_loaded"]
