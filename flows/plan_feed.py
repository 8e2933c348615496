"""The preprocess flow's planning, in a thread beside the loop that places and collects its tasks.

A first run over many scenes reads every input file once to decide what to run (about 0.3 s per
ScanNet++-sized scene on two cores): minutes for a thousand scenes. The flow places a few tasks per worker at
a time (flows.chunk_dispatch), so its loop must go on collecting finished tasks and placing new ones while
planning continues; planning therefore runs here and hands each scene to the loop as soon as it is decided
(and, for a scene split into frame chunks, staged). The loop does every submission itself: Prefect's task
submission needs the flow run's context, which this thread does not have.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from datasets.preprocess.scene_job import ScenePlan, ScenePlanner, StorePlan


@dataclass(frozen=True)
class Planned:
    """A scene to run, as planning decided it; `staged`: its staging (frame chunks) or None (one task)."""

    plan: ScenePlan
    staged: Any


@dataclass(frozen=True)
class PlanningDone:
    """Every scene is planned: the run's StorePlan (skips included)."""

    store_plan: StorePlan


@dataclass(frozen=True)
class PlanningFailed:
    """Planning itself failed (not one scene's inputs: those fail their scene): the run cannot go on."""

    error: BaseException


def start_planning(
    planner: ScenePlanner,
    scene_ids: Sequence[str],
    redo: set[str],
    stage: Callable[[ScenePlan], Any],
    events: queue.SimpleQueue,
) -> threading.Thread:
    """Plan `scene_ids` in a daemon thread, putting a `Planned` for each scene to run into `events`, then one
    `PlanningDone` (or `PlanningFailed`). `stage(plan)` runs in that thread for each scene with readable
    inputs (its plan still holds the record it was read from)."""
    thread = threading.Thread(
        target=_feed, args=(planner, scene_ids, redo, stage, events), name="preprocess-planning", daemon=True
    )
    thread.start()
    return thread


def _feed(planner, scene_ids, redo, stage, events) -> None:
    plans = []
    try:
        for planned in planner.plans(scene_ids):
            plan = redone(planned, redo)
            plans.append(replace(plan, record=None))  # a run's thousands of records would add up
            if plan.run:
                staged = stage(plan) if plan.source_hash is not None else None
                events.put(Planned(replace(plan, record=None), staged))
        events.put(PlanningDone(planner.finish(plans)))
    except BaseException as exc:  # noqa: BLE001 - handed to the flow's loop, which raises it there
        events.put(PlanningFailed(exc))


def redone(plan: ScenePlan, redo: set[str]) -> ScenePlan:
    """`redo` scenes are redone whatever their plan says (e.g. after `status --verify` found damage)."""
    return replace(plan, run=True, why=f"asked to redo ({plan.why})") if plan.scene_id in redo else plan
