"""torchrun itself, as the training launcher's child: `python -m flows.torchrun_agent TORCHRUN-ARGS`.

The agent first ties its life to the launcher (`flows.parent_death`: SIGHUP when the launcher ends, even by
SIGKILL), then runs torchrun's own main in this process; torchrun answers SIGTERM (a live launcher stopping
it) and that SIGHUP alike by stopping its workers, and each worker ties its life to this process in turn
(SIGKILL when torchrun is gone). When the launcher died without cleaning up, nobody else is left to close the
MLflow run it opened: the agent marks it KILLED.

Imports no Prefect (an import-linter contract) and MLflow only on that path, only when the launcher handed it
a run: it also runs on machines without either.
"""

from __future__ import annotations

import os
import signal
import sys

from flows.parent_death import die_with_parent
from flows.run_folder import AGENT_PID_ENV, LAUNCHER_PID_ENV


def close_orphaned_mlflow_run() -> None:
    """Mark the launcher's MLflow run KILLED when the launcher could not (best effort: MLflow may be absent)."""
    from flows import mlflow_names

    if not (os.environ.get(mlflow_names.RUN_ID_ENV) and os.environ.get(mlflow_names.TRACKING_URI_ENV)):
        return
    try:
        from flows.mlflow_tracking import run_from_environment

        client, run_id = run_from_environment()
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
            print(f"torchrun agent: the launcher is gone; MLflow run {run_id} marked KILLED", flush=True)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome is already decided
        print(f"torchrun agent: could not mark the MLflow run KILLED: {exc}", flush=True)


LAUNCHER_GONE = signal.SIGHUP
"""The agent's parent-death signal: distinct from the SIGTERM/SIGINT a live launcher stops it with. The kernel
may send it once per exiting thread of the launcher, so it is handled once and then ignored."""
_launcher_gone = False


def _on_launcher_gone(signum, frame) -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException

    global _launcher_gone
    signal.signal(LAUNCHER_GONE, signal.SIG_IGN)
    _launcher_gone = True
    # torchrun's own answer to a death signal: stop the workers with SIGTERM, then leave.
    raise SignalException(f"Process {os.getpid()}: the launcher is gone", sigval=signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    launcher = os.environ.get(LAUNCHER_PID_ENV)
    launcher_pid = int(launcher) if launcher and launcher.isdigit() else None
    os.environ[AGENT_PID_ENV] = str(os.getpid())
    # torchrun handles the stop signals of a live launcher; the parent-death signal is this module's.
    torchrun_args = [
        "--signals-to-handle",
        "SIGTERM,SIGINT,SIGQUIT",
        *(sys.argv[1:] if argv is None else argv),
    ]
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun_main

    try:
        signal.signal(LAUNCHER_GONE, _on_launcher_gone)
        die_with_parent(launcher_pid, LAUNCHER_GONE)
        torchrun_main(torchrun_args)
    except SignalException as exc:
        if _launcher_gone:
            close_orphaned_mlflow_run()
        why = "its launcher is gone" if _launcher_gone else f"stopped by {exc.sigval.name}"
        print(f"torchrun agent: {why}; its workers were stopped", flush=True)
        sys.exit(128 + int(exc.sigval))


if __name__ == "__main__":
    main()
