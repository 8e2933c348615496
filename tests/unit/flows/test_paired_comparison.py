"""Paired, scene-by-scene comparison of checkpoints: the gain, its bootstrap interval, pooling of runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.paired_comparison import paired_gain, paired_table, pooled_scene_scores


def test_a_constant_gain_has_a_zero_width_interval_at_that_gain():
    gain = paired_gain(np.full(16, 0.02))
    assert gain.mean_gain == pytest.approx(0.02) and gain.low == pytest.approx(0.02)
    assert gain.high == pytest.approx(0.02) and gain.significant
    assert (gain.scenes, gain.scenes_up, gain.scenes_down) == (16, 16, 0)


def test_gains_of_both_signs_are_within_noise_and_counted():
    gain = paired_gain(np.array([0.1, -0.1, 0.05, -0.05, 0.0]))
    assert gain.mean_gain == pytest.approx(0.0) and gain.low < 0.0 < gain.high and not gain.significant
    assert (gain.scenes_up, gain.scenes_down) == (2, 2)


def test_the_interval_holds_the_mean_and_is_reproducible():
    gains = np.random.default_rng(3).normal(0.016, 0.07, size=128)
    first, again = paired_gain(gains), paired_gain(gains)
    assert first == again
    assert first.low < first.mean_gain < first.high
    # the normal approximation of the mean's 95% interval, for a sample this size
    half_width = 1.96 * gains.std(ddof=1) / np.sqrt(gains.size)
    assert first.high - first.low == pytest.approx(2 * half_width, rel=0.15)


def test_no_shared_scene_is_a_clear_error():
    with pytest.raises(ValueError, match="no scene was scored by both"):
        paired_gain(np.array([]))


def _runs(rows):
    return pd.DataFrame(rows, columns=["run_id", "checkpoint", "postprocess", "keyframes", "started"])


def test_runs_pool_over_stores_and_the_latest_run_of_a_scene_wins():
    runs = _runs([("r1", "a", "standard_v2", "all", 1), ("r2", "a", "standard_v2", "all", 2)])
    tables = {
        "r1": pd.DataFrame({"scene_id": ["s1", "s2"], "PQ": [0.1, 0.2]}),
        "r2": pd.DataFrame({"scene_id": ["s2", "s3"], "PQ": [0.5, 0.6]}),  # a re-run of s2, and a new store
    }
    pooled = pooled_scene_scores(runs, tables, "PQ")
    assert pooled.to_dict() == {"s1": 0.1, "s2": 0.5, "s3": 0.6}


def test_each_checkpoint_is_paired_with_the_baseline_per_configuration_on_shared_scenes():
    runs = _runs(
        [
            ("b1", "base", "standard_v2", "all", 1),
            ("c1", "new", "standard_v2", "all", 2),
            ("b2", "base", "qubo", "all", 3),
            ("c2", "new", "qubo", "4", 4),  # no baseline run in this configuration: no row
        ]
    )
    tables = {
        "b1": pd.DataFrame({"scene_id": ["s1", "s2", "s3"], "PQ": [0.5, 0.6, 0.7]}),
        "c1": pd.DataFrame({"scene_id": ["s1", "s2", "s4"], "PQ": [0.6, 0.8, 0.9]}),
        "b2": pd.DataFrame({"scene_id": ["s1"], "PQ": [0.4]}),
        "c2": pd.DataFrame({"scene_id": ["s1"], "PQ": [0.9]}),
    }
    table = paired_table(runs, tables, "base", resamples=200)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["checkpoint"], row["baseline"], row["postprocess"], row["keyframes"]) == (
        "new",
        "base",
        "standard_v2",
        "all",
    )
    assert (
        row["scenes"] == 2 and row["baseline PQ"] == pytest.approx(0.55) and row["PQ"] == pytest.approx(0.7)
    )
    assert row["gain"] == pytest.approx(0.15) and (row["up"], row["down"]) == (2, 0)


def test_an_unknown_baseline_names_the_known_checkpoints():
    runs = _runs([("r1", "a", "standard_v2", "all", 1)])
    with pytest.raises(ValueError, match="names no checkpoint of these runs; they have: a"):
        paired_table(runs, {}, "b")
