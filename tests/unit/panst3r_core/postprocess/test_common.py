import pytest
import torch
import torch.nn.functional as F

from panst3r_core.postprocess.common import (
    class_probabilities,
    flat_scene_masks,
    normalise_logits,
    normalise_masks,
    normalise_shapes,
    split_views,
    upsample_view_masks,
)


def test_upsample_is_sigmoid_then_bilinear_to_the_true_shape():
    logits = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)) * 4
    out = upsample_view_masks(logits, (8, 10))
    expected = F.interpolate(logits.sigmoid()[None], size=(8, 10), mode="bilinear", align_corners=False)[0]
    assert out.shape == (3, 8, 10)
    assert torch.equal(out, expected)
    # the other order gives different values: the test would catch a swap
    swapped = F.interpolate(logits[None], size=(8, 10), mode="bilinear", align_corners=False)[0].sigmoid()
    assert not torch.allclose(out, swapped, atol=1e-4)


def test_upsampling_a_subset_of_queries_equals_the_subset_of_the_full_upsampling():
    logits = torch.randn(6, 5, 7, generator=torch.Generator().manual_seed(1))
    full = upsample_view_masks(logits, (10, 14))
    subset = torch.tensor([4, 1])
    assert torch.equal(upsample_view_masks(logits[subset], (10, 14)), full[subset])


def test_flat_scene_masks_and_split_views_round_trip_mixed_shapes():
    views = [torch.randn(2, 3, 4), torch.randn(2, 4, 3)]
    shapes = [(6, 8), (8, 6)]
    flat = flat_scene_masks(views, shapes)
    assert flat.shape == (2, 96)
    parts = split_views(flat[1], shapes)
    assert [tuple(p.shape) for p in parts] == shapes
    assert torch.equal(parts[1], upsample_view_masks(views[1], (8, 6))[1])


def test_input_normalisation_accepts_official_layouts_and_rejects_bad_ones():
    assert normalise_logits(torch.zeros(1, 5, 3)).shape == (5, 3)
    with pytest.raises(ValueError, match="one scene"):
        normalise_logits(torch.zeros(2, 5, 3))
    views = normalise_masks([torch.zeros(1, 5, 4, 4), torch.zeros(5, 4, 4)])
    assert [tuple(v.shape) for v in views] == [(5, 4, 4), (5, 4, 4)]
    assert len(normalise_masks(torch.zeros(3, 5, 4, 4))) == 3
    with pytest.raises(ValueError, match="same number of queries"):
        normalise_masks([torch.zeros(5, 4, 4), torch.zeros(4, 4, 4)])
    assert normalise_shapes(torch.tensor([[8, 6], [6, 8]], dtype=torch.int32), 2) == [(8, 6), (6, 8)]
    with pytest.raises(ValueError, match="2 shapes for 3 views"):
        normalise_shapes([(1, 1), (1, 1)], 3)


def test_class_probabilities_sigmoid_and_unknown_mode():
    logits = torch.tensor([[0.0, 2.0]])
    assert torch.allclose(class_probabilities(logits), torch.tensor([[0.5, 0.8807970779778823]]))
    with pytest.raises(ValueError, match="softmax"):
        class_probabilities(logits, "softmax")
