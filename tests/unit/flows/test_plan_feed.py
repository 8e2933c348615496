"""The preprocess flow's planning thread: a scene to run is handed over (staged) as soon as it is planned, skips
only in the final plan, redo forces a run, and a planning failure reaches the flow's loop."""

from __future__ import annotations

import queue

import pytest

from datasets.preprocess.scene_job import ScenePlan, StorePlan
from flows.plan_feed import Planned, PlanningDone, PlanningFailed, redone, start_planning


class _Planner:
    def __init__(self, plans: list[ScenePlan], fail_after: int | None = None):
        self._plans, self.fail_after = plans, fail_after

    def plans(self, scene_ids):
        for number, plan in enumerate(self._plans):
            if number == self.fail_after:
                raise OSError("the store went away")
            yield plan

    def finish(self, plans):
        return StorePlan(plans, "config", "code", len(plans), 0)


def _events(planner, redo=frozenset(), stage=lambda plan: f"staged {plan.scene_id}") -> list:
    events: queue.SimpleQueue = queue.SimpleQueue()
    start_planning(planner, ["a", "b", "c"], set(redo), stage, events).join(timeout=10)
    return [events.get_nowait() for _ in range(events.qsize())]


def _plans() -> list[ScenePlan]:
    return [
        ScenePlan("a", True, "ha", "not in the store", record="record of a"),
        ScenePlan("b", False, "hb", "up to date"),
        ScenePlan("c", True, None, "unreadable input: bad pose"),
    ]


def test_scenes_to_run_are_handed_over_staged_then_the_whole_plan():
    events = _events(_Planner(_plans()))
    assert [type(e) for e in events] == [Planned, Planned, PlanningDone]
    assert events[0].plan.scene_id == "a" and events[0].staged == "staged a" and events[0].plan.record is None
    assert events[1].plan.scene_id == "c" and events[1].staged is None, (
        "unreadable inputs: one task that fails"
    )
    assert events[2].store_plan.skipped == ["b"] and [p.scene_id for p in events[2].store_plan.to_run] == [
        "a",
        "c",
    ]


def test_the_stager_sees_the_record_planning_read():
    seen = []
    _events(_Planner(_plans()), stage=lambda plan: seen.append(plan.record))
    assert seen == ["record of a"]


def test_a_scene_to_redo_runs_though_up_to_date():
    events = _events(_Planner(_plans()), redo={"b"})
    assert [e.plan.scene_id for e in events if isinstance(e, Planned)] == ["a", "b", "c"]
    assert redone(_plans()[1], {"b"}).why == "asked to redo (up to date)"


def test_a_planning_failure_is_handed_to_the_loop():
    events = _events(_Planner(_plans(), fail_after=1))
    assert isinstance(events[-1], PlanningFailed) and isinstance(events[-1].error, OSError)


@pytest.mark.parametrize("scene", ["a", "x"])
def test_redone_leaves_other_scenes_alone(scene):
    plan = _plans()[0]
    assert redone(plan, {"x"}) == plan and redone(plan, {scene}).run
