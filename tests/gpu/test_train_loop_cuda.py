"""The training loop on CUDA with the tiny real model: fp32 resume, bf16 and fp16 (GradScaler) steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from panst3r_core.engine.callbacks import TrainCallback
from panst3r_core.engine.checkpointing import read_training_state
from panst3r_core.engine.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
from panst3r_core.engine.loop import TrainData, seed_everything, train
from panst3r_core.losses.criterion import CriterionConfig
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


class Recorder(TrainCallback):
    def __init__(self, stop_at=None):
        self.losses, self.stop_at = {}, stop_at

    def on_iteration(self, record):
        if self.stop_at == (record.epoch, record.batch):
            raise KeyboardInterrupt("simulated kill")
        self.losses[(record.epoch, record.batch)] = record.losses["panoptic_loss"]


def run(output_dir, stop_at=None, model_seed=0, **training):
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
        output_dir=str(output_dir),
        finetune_must3r_encoder=True,
        finetune_must3r_decoder=True,
        finetune_dino=True,
    )
    settings.update(training)
    config = TrainConfig(
        model=ModelConfig(variant="tiny_v1"),
        data=DataConfig(
            num_views=3,
            min_memory_num_views=1,
            max_memory_num_views=3,
            resolutions=RESOLUTIONS,
            samples_per_epoch=16,
        ),
        criterion=CriterionConfig(num_points=1024),
        training=TrainingConfig(**settings),
    )
    dataset = toy.ToyViewDataset(size=12, num_views=3, resolutions=RESOLUTIONS)
    data = TrainData(
        len(dataset),
        lambda sampler: DataLoader(dataset, batch_sampler=sampler, collate_fn=toy.collate),
        toy.VOCABULARY,
        hashed_class_embeddings(toy.VOCABULARY),
    )
    seed_everything(model_seed)
    recorder = Recorder(stop_at)
    train(config, build_model("tiny_v1"), data, callbacks=[recorder], device="cuda")
    return recorder


def test_fp32_resume_on_cuda_continues_with_the_same_losses(tmp_path):
    # TF32 and atomics in grid_sample's backward make CUDA runs not bit-exact; close is what can be asked.
    expected = run(tmp_path / "a", disable_tf32=True)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_at=(1, 4), disable_tf32=True)
    resumed = run(tmp_path / "b", model_seed=1, disable_tf32=True)
    assert sorted(resumed.losses) == [k for k in sorted(expected.losses) if k >= (1, 4)]
    for key, value in resumed.losses.items():
        assert value == pytest.approx(expected.losses[key], rel=1e-3), key


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda(tmp_path, amp):
    recorder = run(tmp_path, amp=amp, epochs=3, checkpoint_every_steps=0)
    losses = list(recorder.losses.values())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < sum(losses[:4])
    scaler = read_training_state(tmp_path / "checkpoint-last")["scaler"]
    # The GradScaler is on for fp16 only.
    assert bool(scaler) == (amp == "fp16")
