"""The training loop on CUDA with the tiny real model: fp32 resume, bf16 and fp16 (GradScaler) steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from panst3r_core.engine.checkpointing import read_training_state
from panst3r_core.engine.loop import seed_everything, train
from panst3r_core.model.hashed_text_embedding import hashed_class_embeddings
from panst3r_core.model.variants import build_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

_TOY = Path(__file__).resolve().parents[1] / "unit" / "panst3r_core" / "engine" / "toy.py"
_spec = importlib.util.spec_from_file_location("engine_toy_data", _TOY)
toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy)

RESOLUTIONS = [(128, 96), (128, 64)]


def run(output_dir, stop_at=None, model_seed=0, **training) -> dict[tuple[int, int], float]:
    """Train tiny_v1 on CUDA; (epoch, batch) -> panoptic loss."""
    settings = dict(
        seed=5,
        batch_size=2,
        accum_iter=2,
        epochs=2,
        lr=1e-3,
        warmup_epochs=0.5,
        print_freq=1,
        keep_freq=0,
        checkpoint_every_steps=1,
        num_workers=0,
        finetune_must3r_encoder=True,
        finetune_must3r_decoder=True,
        finetune_dino=True,
    )
    settings.update(training)
    config = toy.loop_config(
        output_dir, "tiny_v1", 3, RESOLUTIONS, samples_per_epoch=16, num_points=1024, **settings
    )
    dataset = toy.ToyViewDataset(size=12, num_views=3, resolutions=RESOLUTIONS)
    data = toy.loop_data(dataset, hashed_class_embeddings(toy.VOCABULARY))
    seed_everything(model_seed)
    recorder = toy.Recorder(stop_at)
    train(config, build_model("tiny_v1"), data, callbacks=[recorder], device="cuda")
    return recorder.panoptic_losses()


def test_fp32_resume_on_cuda_continues_with_the_same_losses(tmp_path):
    # TF32 and atomics in grid_sample's backward make CUDA runs not bit-exact; close is what can be asked.
    expected = run(tmp_path / "a", disable_tf32=True)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_at=(1, 4), disable_tf32=True)
    resumed = run(tmp_path / "b", model_seed=1, disable_tf32=True)
    assert sorted(resumed) == [k for k in sorted(expected) if k >= (1, 4)]
    for key, value in resumed.items():
        assert value == pytest.approx(expected[key], rel=1e-3), key


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda(tmp_path, amp):
    losses = list(run(tmp_path, amp=amp, epochs=3, checkpoint_every_steps=0).values())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < sum(losses[:4])
    scaler = read_training_state(tmp_path / "checkpoint-last")["scaler"]
    # The GradScaler is on for fp16 only.
    assert bool(scaler) == (amp == "fp16")
