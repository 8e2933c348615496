"""The start-up benchmark reads each phase from the CLI's own log lines."""

from __future__ import annotations

from datetime import datetime

from benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("preprocess_startup")


LOG = """\
2026-12-03 10:00:03,500 INFO flows.cli.preprocess: flow modules imported
2026-12-03 10:00:05,000 INFO flows.early_cluster: Dask cluster up: 1 workers in 4.0 s
2026-12-03 10:00:06,000 INFO flows.prefect_env: Prefect server up at http://127.0.0.1:1/api (log: x)
2026-12-03 10:00:07,000 INFO prefect.flow_runs: Beginning flow run 'a' for flow 'preprocess'
10:00:12.000 | INFO    | Task run 'scene-b' - Finished in state Completed()
2026-12-03 10:00:12,000 INFO prefect.flow_runs: scene b done: 24 frames, 4.5 s
2026-12-03 10:00:13,000 INFO prefect.flow_runs: scene c done: 24 frames, 6.0 s
"""


def test_phases_come_from_the_log_and_the_first_scene_start_is_the_earliest():
    started = datetime(2026, 12, 3, 10, 0, 0).timestamp()
    phases = _script().read_phases(LOG, started)
    assert phases == {
        "imports": 3.5,
        "api": 6.0,
        "flow_run": 7.0,
        "cluster": 5.0,
        "first_scene_start": 7.0,  # scene c: 13.0 - 6.0, before scene b's 12.0 - 4.5
        "first_scene_done": 12.0,
        "end": None,
    }


def test_an_older_log_leaves_the_missing_phases_empty():
    started = datetime(2026, 12, 3, 10, 0, 0).timestamp()
    phases = _script().read_phases("2026-12-03 10:00:02,000 INFO x: Beginning flow run 'a'\n", started)
    assert phases["flow_run"] == 2.0 and phases["imports"] is None and phases["first_scene_start"] is None


def test_a_deployment_run_is_timed_from_its_request_by_its_flow_run_logs():
    """The `deployment` mode has no CLI log: the flow run's own log entries (as the API returns them)."""
    started = datetime(2026, 12, 3, 10, 0, 0).timestamp()
    entries = [
        (started + 3.25, "Beginning flow run 'a' for flow 'preprocess'"),
        (started + 7.0, "scene b done: 24 frames, 3.5 s"),
    ]
    phases = _script().phases_of(entries, started)
    assert (
        phases["flow_run"] == 3.25
        and phases["first_scene_start"] == 3.5
        and phases["first_scene_done"] == 7.0
    )
    assert phases["imports"] is None and phases["cluster"] is None
