import numpy as np
import pytest
import torch

from panst3r_core.postprocess.annealing import AnnealingOptions, anneal_qubo, qubo_energy
from panst3r_core.postprocess.common import class_probabilities, normalise_masks
from panst3r_core.postprocess.qubo import (
    QuboOptions,
    decode_selection,
    qubo_matrix,
    qubo_postprocess,
    qubo_solve,
)


def _views_and_probs(parity):
    views = normalise_masks(parity["masks"])
    shapes = [tuple(s) for s in parity["true_shape"].tolist()]
    probs = class_probabilities(parity["logits"][0])
    return views, shapes, probs


def test_weight_matrix_equals_the_official_one(parity):
    views, shapes, probs = _views_and_probs(parity)
    matrix = qubo_matrix(views, shapes, probs).numpy()
    expected = parity["c_qubo_W"].astype(np.float64)
    assert matrix.shape == (12, 12)
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(matrix, matrix.T)


def test_solver_energy_on_the_official_matrix_is_at_most_the_official_best(parity):
    matrix = parity["c_qubo_W"].astype(np.float64)
    official_best = parity["manifest"]["qubo_best_energy"]["v1"]
    result = anneal_qubo(matrix, AnnealingOptions(seed=0))
    assert result.energy <= official_best + 1e-12
    assert result.energy == pytest.approx(float(qubo_energy(matrix, result.solution, 1e-3)), abs=1e-15)


def test_decoding_the_official_solution_reproduces_the_official_maps(parity):
    views, shapes, probs = _views_and_probs(parity)
    solution = parity["c_qubo_solution"]
    result = decode_selection(views, shapes, probs, solution, prob_threshold=0.01)
    assert np.array_equal(torch.stack(result.pan).numpy(), parity["c_qubo_pan"])
    np.testing.assert_allclose(torch.stack(result.conf).numpy(), parity["c_qubo_conf"], rtol=1e-6, atol=0)
    selected = np.nonzero(solution)[0]
    expected = parity["manifest"]["segments_info"]["v1"]["qubo"]
    assert len(result.segments_info) == len(expected)
    for ours, theirs in zip(result.segments_info, expected):
        assert ours.id == theirs["id"]
        # the official query_id indexes the selected subset; ours is the original query index
        assert ours.query_id == int(selected[theirs["query_id"]])
        assert ours.category_id == theirs["category_id"]
        assert ours.area == theirs["area"]
        assert ours.score == pytest.approx(theirs["class_prob"], rel=1e-6)
        assert ours.mask_conf == pytest.approx(theirs["mask_conf"], rel=1e-5)


def test_full_qubo_on_the_fixture_is_seeded_and_as_good_as_official(parity):
    first = qubo_solve(parity["logits"], parity["masks"], parity["shapes"], QuboOptions(seed=5))
    second = qubo_solve(parity["logits"], parity["masks"], parity["shapes"], QuboOptions(seed=5))
    assert np.array_equal(first.annealing.solution, second.annealing.solution)
    # our matrix is summed in float64 (the official one in float32): same optimum, energy within 1e-7
    assert np.array_equal(first.annealing.solution, parity["c_qubo_solution"])
    assert first.annealing.energy == pytest.approx(parity["manifest"]["qubo_best_energy"]["v1"], rel=1e-7)
    for a, b in zip(first.result.pan, second.result.pan):
        assert torch.equal(a, b)
    assert first.result.pan[0].dtype == torch.int32


def _two_blob_scene():
    # two disjoint half-image masks and a third that duplicates the first: the best selection is {0, 1}
    masks = torch.full((3, 4, 8), -12.0)
    masks[0, :, :4] = 12.0
    masks[1, :, 4:] = 12.0
    masks[2, :, :4] = 12.0
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]])
    return logits, [masks], [(4, 8)]


def test_duplicate_masks_are_not_both_selected_and_ids_follow_query_order():
    logits, views, shapes = _two_blob_scene()
    solve = qubo_solve(logits, views, shapes, QuboOptions(num_iters=2000))
    selected = set(np.nonzero(solve.annealing.solution)[0].tolist())
    assert selected in ({0, 1}, {1, 2})
    segments = solve.result.segments_info
    assert [s.query_id for s in segments] == sorted(selected)  # ids 1, 2 follow the query order
    assert [s.id for s in segments] == [1, 2]
    id_of_category = {s.category_id: s.id for s in segments}
    pan = solve.result.pan[0]
    assert torch.all(pan[:, :4] == id_of_category[0]) and torch.all(pan[:, 4:] == id_of_category[1])
    assert [s.area for s in segments] == [16, 16]


def test_weak_segments_are_dropped_by_prob_threshold_and_empty_selection_is_empty():
    logits, views, shapes = _two_blob_scene()
    probs = class_probabilities(logits)
    weak = probs.clone()
    weak[1] = 0.005  # class_prob * mean conf ~ 0.005 < 0.01 -> dropped, its pixels stay void
    result = decode_selection(normalise_masks(views), shapes, weak, np.array([1, 1, 0]), 0.01)
    assert [s.query_id for s in result.segments_info] == [0]
    assert torch.all(result.pan[0][:, 4:] == 0) and torch.all(result.pan[0][:, :4] == 1)
    assert float(result.conf[0][:, 4:].min()) > 0.99  # conf stays the strongest selected mask
    empty = decode_selection(normalise_masks(views), shapes, probs, np.zeros(3), 0.01)
    assert empty.segments_info == [] and int(empty.pan[0].abs().sum()) == 0


def test_penalty_cutoff_and_min_cls_prob_shape_the_matrix():
    logits, views, shapes = _two_blob_scene()
    views = normalise_masks(views)
    probs = class_probabilities(logits)
    base = qubo_matrix(views, shapes, probs, QuboOptions())
    # query 0 and 2 overlap on half the image (soft masks ~1): Q_02 = (1 + penalty) / 2 * 0.5
    assert float(base[0, 2]) == pytest.approx(0.5, rel=1e-4)
    assert float(base[0, 0]) == pytest.approx(-0.5, rel=1e-4)
    doubled = qubo_matrix(views, shapes, probs, QuboOptions(penalty=3.0))
    assert float(doubled[0, 2]) == pytest.approx(1.0, rel=1e-4)
    cut = qubo_matrix(views, shapes, probs, QuboOptions(cutoff=0.01))
    assert float(cut[0, 1]) == 0.0 and float(cut[0, 2]) == pytest.approx(0.5, rel=1e-4)
    gated = qubo_matrix(views, shapes, probs.clamp(max=0.3), QuboOptions(min_cls_prob=0.5))
    assert float(gated.abs().max()) == 0.0


def test_qubo_postprocess_returns_the_result(parity):
    result = qubo_postprocess(parity["logits"], parity["masks"], parity["shapes"])
    assert len(result.pan) == 4 and len(result.segments_info) >= 1
