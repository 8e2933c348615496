import itertools

import numpy as np
import pytest

from panst3r_core.postprocess.annealing import (
    AnnealingOptions,
    anneal_qubo,
    qubo_energy,
    temperatures,
)


def _brute_force_minimum(matrix, lambda_reg):
    n = matrix.shape[0]
    states = np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)
    energies = qubo_energy(matrix, states, lambda_reg)
    return float(energies.min())


def test_energy_is_the_quadratic_form_plus_the_mean_penalty():
    matrix = np.array([[1.0, 2.0], [0.5, -3.0]])
    assert qubo_energy(matrix, np.array([1, 1]), 0.1) == pytest.approx(1 + 2 + 0.5 - 3 + 0.1)
    assert qubo_energy(matrix, np.array([0, 1]), 0.1) == pytest.approx(-3 + 0.05)
    batch = qubo_energy(matrix, np.array([[0, 0], [1, 0]]), 0.0)
    np.testing.assert_allclose(batch, [0.0, 1.0])


def test_schedule_is_geometric_from_T0_towards_T_end():
    temps = temperatures(AnnealingOptions(num_iters=4, T0=0.5, T_end=0.5 / 16))
    np.testing.assert_allclose(temps, [0.5, 0.25, 0.125, 0.0625])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reaches_the_global_minimum_of_small_random_problems_including_asymmetric_ones(seed):
    rng = np.random.default_rng(100 + seed)
    n = 10
    matrix = rng.normal(size=(n, n))  # not symmetric: the local field must use Q + Q^T
    result = anneal_qubo(matrix, AnnealingOptions(num_restarts=8, num_iters=3000, seed=seed))
    assert result.energy == pytest.approx(_brute_force_minimum(matrix, 1e-3), abs=1e-12)
    assert result.energy == pytest.approx(float(qubo_energy(matrix, result.solution, 1e-3)), abs=1e-12)
    assert result.solution.dtype == np.int64 and set(np.unique(result.solution)) <= {0, 1}
    assert result.restart_energies.shape == (8,)
    assert result.energy == pytest.approx(result.restart_energies.min())


def test_same_seed_gives_the_same_result_and_another_seed_another_trajectory():
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(60, 60))
    options = AnnealingOptions(num_restarts=5, num_iters=500, seed=11)
    first, second = anneal_qubo(matrix, options), anneal_qubo(matrix, options)
    assert np.array_equal(first.solution, second.solution)
    assert np.array_equal(first.restart_energies, second.restart_energies)
    other = anneal_qubo(matrix, AnnealingOptions(num_restarts=5, num_iters=500, seed=12))
    assert not np.array_equal(first.restart_energies, other.restart_energies)


def test_zero_start_and_empty_problem_and_bad_options():
    matrix = -np.eye(3)  # every bit wants to be on
    result = anneal_qubo(matrix, AnnealingOptions(num_restarts=2, num_iters=200, random_init=False))
    assert result.solution.tolist() == [1, 1, 1]
    empty = anneal_qubo(np.zeros((0, 0)))
    assert empty.solution.shape == (0,) and empty.energy == 0.0
    with pytest.raises(ValueError, match="square"):
        anneal_qubo(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="num_restarts"):
        anneal_qubo(np.eye(2), AnnealingOptions(num_restarts=0))
