"""The deployments `panst3r serve` offers: `preprocess/local`, `train/local`, `evaluate/local`,
`pipeline/local` (preprocess -> train -> evaluate).

Each entry names a module and a flow object in it; modules are imported only when serving, and an
entry whose module does not exist yet is skipped with a log line, so flows can be added one at a time.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.preloaded_runs import RunForkserver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentEntry:
    module: str
    flow_attribute: str
    name: str
    description: str


DEPLOYMENTS: tuple[DeploymentEntry, ...] = (
    DeploymentEntry(
        "flows.preprocess", "preprocess", "local", "ScanNet++ scenes -> Zarr store + Parquet tables"
    ),
    DeploymentEntry("flows.train", "train", "local", "torchrun training on a store, logged to MLflow"),
    DeploymentEntry("flows.evaluate", "evaluate", "local", "checkpoint x post-processing x keyframes sweep"),
    DeploymentEntry(
        "flows.pipeline", "pipeline", "local", "preprocess -> train -> evaluate, skipping what is up to date"
    ),
)


def load_flows(entries: tuple[DeploymentEntry, ...] = DEPLOYMENTS) -> list[tuple[DeploymentEntry, object]]:
    """(entry, flow) for every entry whose module and flow exist. Call after PREFECT_API_URL is set."""
    found = []
    for entry in entries:
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as exc:
            if exc.name != entry.module:
                raise  # the module exists but one of its imports is missing: a real error
            log.info(
                "skipping deployment %s/%s: module %s does not exist yet",
                entry.flow_attribute,
                entry.name,
                entry.module,
            )
            continue
        flow = getattr(module, entry.flow_attribute, None)
        if flow is None or not hasattr(flow, "to_deployment"):
            log.warning(
                "skipping %s: %s has no Prefect flow named %r", entry.name, entry.module, entry.flow_attribute
            )
            continue
        found.append((entry, flow))
    return found


def served_flows(
    entries: tuple[DeploymentEntry, ...] = DEPLOYMENTS, triggers: dict[str, list] | None = None
) -> list[tuple[object, dict]]:
    """(flow, deployment options) for every loadable entry, the options of both `flow.to_deployment` and
    `Runner.add_flow`; `triggers` maps a flow attribute (e.g. "train") to the deployment triggers that start
    its runs."""
    from prefect.types.entrypoint import EntrypointType

    triggers = triggers or {}
    # A run imports its flow by module name (flows.preprocess), as this process did, not as a script
    # file (a module named `preprocess`, found relative to the serving directory): its tasks then pickle
    # by a name that any worker of the installed package resolves, the warm workers of this process too.
    return [
        (
            flow,
            {
                "name": entry.name,
                "description": entry.description,
                "tags": ["panst3r"],
                "triggers": triggers.get(entry.flow_attribute),
                "entrypoint_type": EntrypointType.MODULE_PATH,
            },
        )
        for entry, flow in load_flows(entries)
    ]


def serve_deployments(
    served: list[tuple[object, dict]],
    on_registered: Callable[[], None] = lambda: None,
    poll_seconds: float | None = None,
    forkserver: RunForkserver | None = None,
) -> None:
    """Serve the `served_flows` until Ctrl-C or SIGTERM, as `prefect.serve` does but stopping cleanly on
    SIGTERM. `on_registered` runs once the server knows every deployment (a `deployment run` may follow at
    once); `poll_seconds`: how often to ask the server for runs to start (None: Prefect's setting);
    `forkserver`: where runs start from (None: a fresh interpreter each, Prefect's way)."""
    import asyncio

    from prefect.runner import Runner

    class GracefulRunner(Runner):
        """Prefect's own SIGTERM handler calls the runner's `stop()` inside the running event loop, where it
        only creates the `astop()` coroutine and never awaits it (a RuntimeWarning at every shutdown), then
        exits. Here the handler schedules `astop()` on the loop and `start()` returns normally."""

        def handle_sigterm(self, *args) -> None:
            self._logger.info("SIGTERM received, stopping")
            loop = asyncio.get_running_loop()
            self._stopping_task = loop.create_task(self.astop())

    runner = GracefulRunner(pause_on_shutdown=True, query_seconds=poll_seconds)
    for flow, options in served:
        # registers the deployment with the server, and the flow object with the runner: its runs start
        # from that object in a child process rather than from `python -m prefect.engine`
        runner.add_flow(flow, **options)
    if forkserver is not None:
        forkserver.serve_runs()
    on_registered()
    asyncio.run(runner.start())
