"""Focal agreement: the bias and correlation that tell a measured focal length from a learnt constant."""

import math

import numpy as np
import pytest

from datasets.evaluation.pointmap_run import focal_agreement


def test_a_measured_focal_correlates_and_a_scaled_one_shows_its_bias():
    truths = list(np.linspace(120.0, 160.0, 9))
    exact = focal_agreement(truths, truths)
    assert exact["focal_bias"] == pytest.approx(0.0) and exact["focal_correlation"] == pytest.approx(1.0)
    long = focal_agreement([1.05 * t for t in truths], truths)
    assert long["focal_bias"] == pytest.approx(0.05) and long["focal_correlation"] == pytest.approx(1.0)


def test_a_learnt_constant_does_not_correlate():
    rng = np.random.default_rng(0)
    truths = rng.uniform(125.0, 145.0, 256)
    guesses = 141.0 + rng.normal(0.0, 1.5, 256)  # the shipped model's behaviour on seed 9000
    result = focal_agreement(list(guesses), list(truths))
    assert abs(result["focal_correlation"]) < 0.2
    assert 0.02 < result["focal_bias"] < 0.06  # about 141 / 135 - 1
    constant = focal_agreement([141.0] * 4, [130.0, 135.0, 140.0, 145.0])
    assert math.isnan(constant["focal_correlation"])


def test_no_views_give_no_numbers():
    result = focal_agreement([], [])
    assert math.isnan(result["focal_bias"]) and math.isnan(result["focal_correlation"])
