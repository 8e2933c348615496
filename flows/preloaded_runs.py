"""Flow runs of `panst3r serve` forked from a process that has already imported prefect and the served flows.

Why: Prefect starts every run of a served flow in a fresh interpreter (multiprocessing's "spawn"), which
imports prefect and the flow's modules again before the flow begins: 1.3-1.5 s of the 2.2-2.5 s from a
deployment run's request to its first scene on two cores. Serve starts a multiprocessing forkserver that
imports them once, and each run is forked from it. A run therefore executes the code as it was when serve
started: after a code update, restart serve.

The hook: a flow served in memory (`Runner.add_flow`) is started by `prefect.flow_engine.
run_flow_in_subprocess`, which takes its process from `multiprocessing.get_context("spawn")`; Prefect has no
setting for that start method, so `RunForkserver.serve_runs` gives that module a `multiprocessing` whose
"spawn" context is the preloaded forkserver. The rest of a run's start stays Prefect's: its environment and
settings, the control channel that delivers a cancellation, the signal handling, the exit code the runner
reports a crash from. Where Prefect no longer reads the context that way, runs keep spawning (slower, same
behaviour) and a warning says so.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)

# What every run imports before its flow's own modules (the engine and its pickled call).
ENGINE_MODULES = ("prefect.flow_engine",)


class RunForkserver:
    """The forkserver of serve's flow runs. Construction starts it, and it imports `modules` while the caller
    goes on (call it once the environment the runs inherit is set: the imports see that environment);
    `serve_runs` waits for those imports and routes the runs through it."""

    def __init__(self, modules: Iterable[str]):
        self.modules = [*ENGINE_MODULES, *modules]
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([*self.modules, __name__])
        self._error: BaseException | None = None
        self._warm_up = threading.Thread(target=self._fork_once, name="run forkserver warm-up", daemon=True)
        self._warm_up.start()

    def _fork_once(self) -> None:
        """The first fork starts the forkserver, which imports the preload list before it answers."""
        try:
            process = self._context.Process(target=_ready, name="run forkserver warm-up")
            process.start()
            process.join()
            if process.exitcode != 0:
                raise RuntimeError(f"the run forkserver's first process exited with {process.exitcode}")
        except BaseException as exc:  # re-raised by serve_runs, in the serving thread
            self._error = exc

    def serve_runs(self) -> None:
        """Wait until the forkserver has imported its modules, then start Prefect's runs from it."""
        self._warm_up.join()
        if self._error is not None:
            raise RuntimeError(f"the forkserver of served runs did not start: {self._error}") from self._error
        import prefect.flow_engine

        if getattr(prefect.flow_engine, "multiprocessing", None) is not multiprocessing:
            log.warning(
                "this Prefect version does not start runs through prefect.flow_engine.multiprocessing; "
                "served runs start in a fresh interpreter"
            )
            return
        prefect.flow_engine.multiprocessing = _ForkserverAsSpawn(self._context)
        log.info("served flow runs fork from a process started with %s preloaded", ", ".join(self.modules))


class _ForkserverAsSpawn:
    """`multiprocessing` as prefect.flow_engine sees it: its "spawn" context is the forkserver one."""

    def __init__(self, forkserver: multiprocessing.context.BaseContext):
        self._forkserver = forkserver

    def get_context(self, method: str | None = None) -> multiprocessing.context.BaseContext:
        return self._forkserver if method == "spawn" else multiprocessing.get_context(method)

    def __getattr__(self, name: str):
        return getattr(multiprocessing, name)


def _ready() -> None:
    """The warm-up process's work: none (it only proves the forkserver is up)."""
