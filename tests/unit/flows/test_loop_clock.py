"""The preprocess flow loop's clock: seconds and the longest step per activity, its summary and log line."""

from __future__ import annotations

import time

import pytest

from flows.loop_clock import ACTIVITIES, LoopClock


def test_each_activity_adds_up_its_steps_and_keeps_the_longest():
    clock = LoopClock()
    clock.add("placing", 0.25)
    clock.add("placing", 1.5)
    clock.add("tables", 0.125)
    with clock.timing("handling"):
        time.sleep(0.02)
    summary = clock.summary()
    assert list(summary) == list(ACTIVITIES)
    assert summary["placing"] == {"seconds": 1.75, "longest": 1.5}
    assert summary["tables"] == {"seconds": 0.125, "longest": 0.125}
    assert 0.02 <= summary["handling"]["seconds"] == summary["handling"]["longest"] < 1.0
    assert summary["waiting_for_planning"] == {"seconds": 0.0, "longest": 0.0}
    line = clock.describe()
    assert line.startswith("flow loop: waiting for planning 0.0 s")
    assert "placing 1.8 s (longest 1.50)" in line


def test_a_step_that_raises_is_still_counted_and_an_unknown_activity_is_refused():
    clock = LoopClock()
    with pytest.raises(RuntimeError), clock.timing("tables"):
        raise RuntimeError("disk full")
    assert clock.total["tables"] > 0.0 and clock.longest["tables"] == clock.total["tables"]
    with pytest.raises(ValueError, match="unknown loop activity 'sleeping'"):
        clock.add("sleeping", 1.0)
