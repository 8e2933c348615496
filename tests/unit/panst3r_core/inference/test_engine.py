"""Behaviour of the batched keyframe inference beyond the recorded parity runs."""

from __future__ import annotations

import pytest
import torch

from panst3r_core.inference.engine import InferenceOptions, run_inference
from panst3r_core.model.text_encoder import normalize_class_embeddings
from panst3r_core.model.variants import build_model

from .conftest import relative_error


def test_all_views_as_keyframes_equals_the_training_forward_for_v1(parity):
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    result = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=None))
    with torch.no_grad():
        out = model(images[None], normalize_class_embeddings(emb))
    assert result.keyframes == [0, 1, 2, 3]
    assert relative_error(result.class_logits, out["pred_logits"][0].numpy()) < 1e-5
    assert relative_error(result.stacked("mask_logits"), out["pred_masks"][0].numpy()) < 1e-5
    assert relative_error(result.stacked("pointmaps"), out["pointmaps"][0].numpy()) < 1e-5


def test_portrait_views_are_processed_transposed_and_returned_portrait(parity):
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    landscape = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=2))
    portrait = run_inference(
        model, [im.transpose(1, 2) for im in images], emb, InferenceOptions(num_keyframes=2)
    )
    assert portrait.mask_logits[1].shape == (12, 64, 48)
    assert portrait.true_shape[0].tolist() == [128, 96]
    assert torch.allclose(portrait.mask_logits[1], landscape.mask_logits[1].transpose(-1, -2), atol=1e-5)
    swapped = landscape.pts3d_local[2].transpose(0, 1)[..., [1, 0, 2]]
    assert torch.allclose(portrait.pts3d_local[2], swapped, atol=1e-5)
    assert torch.allclose(portrait.focal, landscape.focal, rtol=1e-4)


def test_bf16_autocast_runs_the_non_keyframe_path(parity):
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    fp32 = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=2))
    bf16 = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=2, amp="bf16"))
    assert bf16.mask_logits[1].dtype == torch.float32
    # bf16 has ~3 significant digits; the result must still be close to float32.
    assert relative_error(bf16.stacked("mask_logits"), fp32.stacked("mask_logits").numpy()) < 0.1
    assert relative_error(bf16.stacked("pointmaps"), fp32.stacked("pointmaps").numpy()) < 0.1


def test_bf16_outputs_agree_with_float32_within_bf16_tolerance(parity):
    """Every output of the bf16 path (memory keys/values in bf16, bf16 concatenated pixel features) stays
    within a few bf16 roundings of float32 (measured: 0.2 % to 2.6 % relative)."""
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    fp32 = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=2))
    bf16 = run_inference(model, list(images), emb, InferenceOptions(num_keyframes=2, amp="bf16"))
    for name, tolerance in [("pointmaps", 2e-2), ("pts3d", 2e-2), ("conf", 2e-2), ("mask_logits", 4e-2)]:
        assert relative_error(bf16.stacked(name), fp32.stacked(name).numpy()) < tolerance, name
    assert relative_error(bf16.class_logits, fp32.class_logits.numpy()) < 6e-2
    assert relative_error(bf16.focal, fp32.focal.numpy()) < 3e-2
    assert relative_error(bf16.cam_to_world, fp32.cam_to_world.numpy()) < 2e-2


def test_retrieval_keyframes_and_mixed_shapes(parity):
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    views = list(images) + [torch.nn.functional.interpolate(images[:1], size=(64, 128))[0]]
    result = run_inference(model, views, emb, InferenceOptions(num_keyframes=3, keyframe_mode="retrieval"))
    assert len(set(result.keyframes)) == 3
    assert result.mask_logits[4].shape == (12, 32, 64) and result.pointmaps[4].shape == (64, 128, 7)
    assert all(torch.isfinite(m).all() for m in result.mask_logits)


def test_v2_results_do_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    model = build_model("tiny_v2").eval()
    generator = torch.Generator().manual_seed(3)
    views = list(torch.rand(5, 3, 64, 96, generator=generator) * 2 - 1)
    emb = torch.randn(4, 768, generator=generator)
    one = run_inference(model, views, emb, InferenceOptions(num_keyframes=3, max_batch=1))
    many = run_inference(model, views, emb, InferenceOptions(num_keyframes=3, max_batch=8))
    assert relative_error(many.stacked("mask_logits"), one.stacked("mask_logits").numpy()) < 1e-5
    assert relative_error(many.class_logits, one.class_logits.numpy()) < 1e-5


def test_bad_options_are_errors(parity):
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    with pytest.raises(ValueError, match="amp"):
        run_inference(model, list(images), emb, InferenceOptions(amp="fp8"))
    with pytest.raises(ValueError, match="multiples of 16"):
        run_inference(model, [torch.zeros(3, 50, 64)], emb)


def test_encoder_autocast_changes_only_the_encoder_precision(parity):
    """`encoder_autocast` runs the MUSt3R encoder in bf16 too: its tokens stay float32 (the final norm), the
    default bf16 run is untouched by the option's existence, and the outputs move by about a bf16 rounding
    more than the float32-encoder bf16 run (the deviation the README reports)."""
    model, images, emb = parity["model"], parity["images"], parity["class_emb_raw"]
    views = list(images)
    official = run_inference(model, views, emb, InferenceOptions(num_keyframes=2, amp="bf16"))
    again = run_inference(model, views, emb, InferenceOptions(num_keyframes=2, amp="bf16", encoder_autocast=False))
    fast = run_inference(model, views, emb, InferenceOptions(num_keyframes=2, amp="bf16", encoder_autocast=True))
    assert torch.equal(official.stacked("pointmaps"), again.stacked("pointmaps"))
    assert not torch.equal(fast.stacked("pointmaps"), official.stacked("pointmaps"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens, _ = model.must3r_encoder(images[:1].float(), autocast=True)
    assert tokens.dtype == torch.float32
    for name, tolerance in [("pointmaps", 3e-2), ("mask_logits", 5e-2)]:
        assert relative_error(fast.stacked(name), official.stacked(name).numpy()) < tolerance, name
