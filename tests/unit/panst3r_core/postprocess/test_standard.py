import numpy as np
import torch
import torch.nn.functional as F

from panst3r_core.postprocess.standard import (
    STANDARD_V1,
    STANDARD_V2,
    StandardOptions,
    standard_postprocess,
)


def _near_tie_budget(parity) -> int:
    diagnostics = parity["manifest"]["postprocess_fragility_diagnostics_b2"]["v1"]
    return (
        diagnostics["pixels_top2_prob_margin_lt_1e-4"] + diagnostics["mask_values_within_1e-5_of_0.25_or_0.5"]
    )


def _check_parity(parity, name, options):
    result = standard_postprocess(parity["logits"], parity["masks"], parity["shapes"], options)
    pan = torch.stack(result.pan).numpy()
    conf = torch.stack(result.conf).numpy()
    expected_pan = parity[f"c_{name}_pan"]
    assert pan.dtype == np.int32 and pan.shape == expected_pan.shape
    assert int((pan != expected_pan).sum()) <= _near_tie_budget(parity)
    same = pan == expected_pan
    np.testing.assert_allclose(conf[same], parity[f"c_{name}_conf"][same], rtol=1e-5, atol=1e-6)
    rows = [[s.id, s.query_id, s.category_id] for s in result.segments_info]
    assert rows == parity[f"c_{name}_segments"].tolist()
    assert [
        {"id": s.id, "query_id": s.query_id, "category_id": s.category_id} for s in result.segments_info
    ] == (parity["manifest"]["segments_info"]["v1"][name])
    # the reported areas are the segments' pixel counts over all views
    for segment in result.segments_info:
        assert segment.area == int((pan == segment.id).sum())
    return result


def test_standard_v1_matches_the_official_output(parity):
    _check_parity(parity, "standard_v1", STANDARD_V1)


def test_standard_v2_matches_the_official_output(parity):
    result = _check_parity(parity, "standard_v2", STANDARD_V2)
    # ids are shared across views: at least one segment appears in several views of the fixture
    views_per_id = {s.id: sum(int((p == s.id).any()) for p in result.pan) for s in result.segments_info}
    assert max(views_per_id.values()) >= 2


def _dense_reference(logits, views, shapes, options):
    """Direct statement of the official loop: padded (Q, V, H, W) masks, one candidate at a time."""
    probs = logits.sigmoid()
    scores, labels = probs.max(-1)
    height, width = max(h for h, _ in shapes), max(w for _, w in shapes)
    masks = torch.zeros(len(views), logits.shape[0], height, width)
    for v, (view, (h, w)) in enumerate(zip(views, shapes)):
        masks[v, :, :h, :w] = F.interpolate(view.sigmoid()[None], size=(h, w), mode="bilinear")[0]
    masks = masks.transpose(0, 1)
    keep = scores > options.cls_threshold
    cur_scores, cur_masks, cur_queries = scores[keep], masks[keep], torch.nonzero(keep).flatten()
    pan = torch.zeros(len(views), height, width, dtype=torch.int32)
    segments = []
    for _ in range(options.niters):
        pan = torch.zeros(len(views), height, width, dtype=torch.int32)
        segments = []
        if len(cur_queries) == 0:
            break
        owner = (cur_scores[:, None, None, None] * cur_masks).argmax(0)
        accepted = []
        for k in range(len(cur_queries)):
            original_area = int((cur_masks[k] >= 0.5).sum())
            region = (owner == k) & (cur_masks[k] >= options.mask_threshold)
            area = int(region.sum())
            if area > 0 and original_area > 0 and area / original_area >= options.overlap_threshold:
                accepted.append(k)
                pan[region] = len(accepted)
                segments.append((len(accepted), int(cur_queries[k]), int(labels[cur_queries[k]])))
        cur_scores, cur_masks, cur_queries = cur_scores[accepted], cur_masks[accepted], cur_queries[accepted]
    return [pan[v, :h, :w] for v, (h, w) in enumerate(shapes)], segments


def test_streaming_vectorised_routine_equals_the_dense_loop_on_mixed_shapes():
    generator = torch.Generator().manual_seed(3)
    for trial in range(4):
        num_queries = 9
        logits = torch.randn(num_queries, 5, generator=generator) * 2
        shapes = [(12, 16), (16, 12), (12, 16)]
        # smooth blobs so that masks overlap partially and both thresholds matter
        views = [torch.randn(num_queries, 6, 8, generator=generator) * 3 - 1 for _ in shapes]
        for options in (STANDARD_V1, STANDARD_V2, StandardOptions(niters=3, overlap_threshold=0.7)):
            ours = standard_postprocess(logits, views, shapes, options)
            expected_pan, expected_segments = _dense_reference(logits, views, shapes, options)
            assert [(s.id, s.query_id, s.category_id) for s in ours.segments_info] == expected_segments, trial
            for got, want in zip(ours.pan, expected_pan):
                assert torch.equal(got, want)


def test_second_round_redistributes_pixels_of_rejected_candidates():
    # query 0: strong and large; query 1: covers its own area but mostly hidden by query 0 -> rejected in
    # round 1; query 2: weak owner of a region that query 1 wins in round 1 but not after query 1 goes.
    h, w = 4, 8
    masks = torch.full((3, h, w), -20.0)
    masks[0, :, :4] = 20.0
    masks[1, :, :6] = 20.0  # 6 columns, 4 of them owned by query 0 -> ratio 2/6 < 0.5
    masks[2, :, 4:] = 20.0
    logits = torch.tensor([[4.0], [3.0], [1.0]])  # scores 0.982, 0.953, 0.731
    one_round = standard_postprocess(logits, [masks], [(h, w)], StandardOptions(niters=1))
    two_rounds = standard_postprocess(logits, [masks], [(h, w)], STANDARD_V2)
    # one round: query 2 loses columns 4-5 to query 1 (2/4 = 0.5 kept) -> both 0 and 2 accepted anyway
    assert [s.query_id for s in one_round.segments_info] == [0, 2]
    assert int((one_round.pan[0] == 2).sum()) == 2 * h  # columns 6-7 only
    # second round without query 1: query 2 gets columns 4-7
    assert [s.query_id for s in two_rounds.segments_info] == [0, 2]
    assert int((two_rounds.pan[0] == 2).sum()) == 4 * h
    assert two_rounds.segments_info[1].area == 4 * h


def test_ids_are_shared_across_views_of_different_shapes():
    masks_a = torch.full((2, 4, 4), -20.0)
    masks_a[0, :, :2] = 20.0
    masks_a[1, :, 2:] = 20.0
    masks_b = torch.full((2, 4, 6), -20.0)
    masks_b[1] = 20.0  # only query 1 in the second view
    logits = torch.tensor([[3.0, -3.0], [-3.0, 3.0]])
    result = standard_postprocess(logits, [masks_a, masks_b], [(4, 4), (4, 6)])
    assert [tuple(p.shape) for p in result.pan] == [(4, 4), (4, 6)]
    id_of_query = {s.query_id: s.id for s in result.segments_info}
    assert torch.all(result.pan[0][:, :2] == id_of_query[0])
    assert torch.all(result.pan[0][:, 2:] == id_of_query[1])
    assert torch.all(result.pan[1] == id_of_query[1])
    assert [s.category_id for s in result.segments_info] == [0, 1]
    assert result.segments_info[1].area == 8 + 24


def test_no_candidate_gives_an_empty_segmentation_with_void_confidence():
    logits = torch.full((3, 2), -10.0)  # every score ~4.5e-5 < 0.1
    result = standard_postprocess(logits, [torch.randn(3, 2, 2)], [(4, 4)])
    assert result.segments_info == []
    assert torch.equal(result.pan[0], torch.zeros(4, 4, dtype=torch.int32))
    assert torch.allclose(result.conf[0], torch.full((4, 4), 0.1))


def test_all_candidates_rejected_in_the_first_round_gives_an_empty_second_round():
    masks = torch.full((1, 2, 2), -20.0)  # no pixel reaches 0.5 -> original area 0 -> rejected
    result = standard_postprocess(torch.tensor([[5.0]]), [masks], [(2, 2)], STANDARD_V2)
    assert result.segments_info == [] and int(result.pan[0].sum()) == 0


def test_results_do_not_depend_on_how_views_are_batched(monkeypatch):
    import panst3r_core.postprocess.standard as standard

    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(7, 4, generator=generator) * 2
    shapes = [(12, 16)] * 4 + [(16, 12)] * 2
    views = [torch.randn(7, 6, 8, generator=generator) * 3 - 1 for _ in shapes]
    batched = standard_postprocess(logits, views, shapes, STANDARD_V2)
    assert max(len(b) for b in standard.view_batches(views, shapes, 7)) == 4
    monkeypatch.setattr(standard, "MAX_BATCH_ELEMENTS", 1)  # one view per batch
    assert all(len(b) == 1 for b in standard.view_batches(views, shapes, 7))
    single = standard_postprocess(logits, views, shapes, STANDARD_V2)
    assert batched.segments_info == single.segments_info
    # the CPU bilinear kernel may round the last bit differently for another number of planes
    for a, b, c, d in zip(batched.pan, single.pan, batched.conf, single.conf):
        assert torch.equal(a, b) and torch.allclose(c, d, rtol=1e-6, atol=0)
