"""Keyframe inference on CUDA: parity with the official float32 outputs, and bf16 at full size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# GPU machines may get the fixture copied elsewhere: PANST3R_PARITY_DIR overrides the sibling shared/ folder.
PARITY_DIR = Path(
    os.environ.get("PANST3R_PARITY_DIR")
    or (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "parity").resolve()
)


def _rel(ours: torch.Tensor, ref: np.ndarray) -> float:
    ours = ours.detach().double().cpu().numpy()
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def test_tiny_checkpoint_parity_on_cuda_float32():
    if not (PARITY_DIR / "tiny_v1.pth").is_file():
        pytest.skip(f"parity fixture not found at {PARITY_DIR}")
    from panst3r_core.checkpoint.official import load_official_checkpoint
    from panst3r_core.inference.engine import InferenceOptions, run_inference

    # TF32 convolutions/matmuls would cost ~1e-3 relative; parity is a float32 statement (the inference
    # default is TF32 matmuls, as the official demo: `tf32=False` below keeps IEEE float32).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model = load_official_checkpoint(
        PARITY_DIR / "tiny_v1.pth", PARITY_DIR / "tiny_dino_config.json"
    ).model.cuda()
    ref = {**np.load(PARITY_DIR / "shared_must3r_dino.npz"), **np.load(PARITY_DIR / "tiny_v1_outputs.npz")}
    images = list(torch.from_numpy(np.load(PARITY_DIR / "inputs.npz")["images"]))
    result = run_inference(
        model,
        images,
        torch.from_numpy(ref["class_emb_raw"]),
        InferenceOptions(num_keyframes=2, tf32=False, attention="sdpa"),
    )
    assert _rel(result.stacked("pointmaps"), ref["b2_pointmaps"]) < 1e-4
    assert _rel(result.class_logits[None], ref["b2_pred_logits"]) < 1e-4
    assert _rel(result.stacked("mask_logits")[:, None], ref["b2_pred_masks"]) < 1e-4


@pytest.mark.parametrize("encoder_attention", ["exact", "tf32"])
def test_tiny_checkpoint_stays_close_to_the_official_outputs(encoder_attention, capsys):
    if not (PARITY_DIR / "tiny_v1.pth").is_file():
        pytest.skip(f"parity fixture not found at {PARITY_DIR}")
    from panst3r_core.checkpoint.official import load_official_checkpoint
    from panst3r_core.inference.engine import InferenceOptions, run_inference

    model = load_official_checkpoint(
        PARITY_DIR / "tiny_v1.pth", PARITY_DIR / "tiny_dino_config.json"
    ).model.cuda()
    ref = {**np.load(PARITY_DIR / "shared_must3r_dino.npz"), **np.load(PARITY_DIR / "tiny_v1_outputs.npz")}
    images = list(torch.from_numpy(np.load(PARITY_DIR / "inputs.npz")["images"]))
    options = InferenceOptions(num_keyframes=2, attention="sdpa", encoder_attention=encoder_attention)
    result = run_inference(model, images, torch.from_numpy(ref["class_emb_raw"]), options)
    errors = {
        "pointmaps": _rel(result.stacked("pointmaps"), ref["b2_pointmaps"]),
        "class_logits": _rel(result.class_logits[None], ref["b2_pred_logits"]),
        "mask_logits": _rel(result.stacked("mask_logits")[:, None], ref["b2_pred_masks"]),
    }
    with capsys.disabled():  # the numbers the README reports (TF32 matmuls in both rows)
        print(f"\nparity fixture, TF32 matmuls, encoder attention {encoder_attention}: {errors}")
    assert max(errors.values()) < 5e-2


@pytest.mark.parametrize("variant", ["panst3r_v1_512", "panst3r_v2_512"])
def test_full_size_bf16_inference_with_non_keyframes(variant):
    from panst3r_core.inference.engine import InferenceOptions, run_inference
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    model = build_model(variant, device="cuda").eval()
    views = list(torch.rand(6, 3, 384, 512, device="cuda") * 2 - 1)
    emb = torch.randn(10, 768, device="cuda")
    result = run_inference(model, views, emb, InferenceOptions(num_keyframes=3, amp="bf16", max_batch=4))
    assert result.keyframes == [0, 2, 5]
    assert result.mask_logits[1].shape == (200, 192, 256)
    assert all(torch.isfinite(m).all() for m in result.mask_logits)
    assert torch.isfinite(result.class_logits).all()
