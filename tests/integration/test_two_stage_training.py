"""The two-stage recipe on real preprocessed scenes, on the CPU: 3-D pretraining (objective `pointmap`)
lowers the pointmap error of the MUSt3R backbone, and the panoptic stage starts from that backbone and keeps
it frozen."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from datasets.evaluation.pointmap_run import PointmapEvalSettings, evaluate_pointmaps
from datasets.store.reader import StoreReader
from datasets.training.collate import collate_views
from datasets.training.dataset import StoreViewDataset
from panst3r_core.checkpoint.ours import save_checkpoint
from panst3r_core.engine.config_files import load_train_config
from panst3r_core.engine.loop import TrainData, seed_everything, train
from panst3r_core.model.hashed_text_embedding import hashed_class_embeddings
from panst3r_core.model.variants import build_model

RESOLUTION = (64, 48)


@pytest.fixture(scope="module")
def store(synthetic_root, tmp_path_factory):
    """The synthetic scenes preprocessed with the library functions the preprocess flow runs."""
    from _preprocess_support import preprocess_in_process

    return preprocess_in_process(synthetic_root, tmp_path_factory.mktemp("two_stage_store") / "store", 96)


def _config(preset: str, store, output_dir, **training):
    config = load_train_config(preset)
    config.model.variant = "tiny_v2"
    config.data.stores = [str(store)]
    config.data.split = None
    config.data.num_views = 3
    config.data.min_memory_num_views = 1
    config.data.max_memory_num_views = 3
    config.data.resolutions = [RESOLUTION]
    config.data.aug_crop = 4
    config.criterion.num_points = 256
    settings = dict(
        output_dir=str(output_dir), amp=False, num_workers=0, print_freq=10, checkpoint_every_steps=0
    )
    for key, value in {**settings, **training}.items():
        setattr(config.training, key, value)
    return config


def _data(config) -> TrainData:
    dataset = StoreViewDataset(
        config.data.stores,
        config.data.num_views,
        config.data.resolutions,
        config.data.aug_crop,
        seed=3,
        split=None,
        transform=None,
    )

    def make_loader(sampler):
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_views, num_workers=0)

    return TrainData(len(dataset), make_loader, dataset.classes, hashed_class_embeddings(dataset.classes))


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_pointmap_pretraining_lowers_the_error_and_the_panoptic_stage_starts_from_it(store, tmp_path):
    stage1 = _config(
        "synthetic_must3r",
        store,
        tmp_path / "stage1",
        batch_size=4,
        epochs=1,
        lr=2e-3,
        warmup_epochs=0.1,
        clip_grad=1.0,
    )
    stage1.data.samples_per_epoch = 4 * 150
    seed_everything(0)
    model = build_model("tiny_v2")
    reader = StoreReader(store)
    settings = PointmapEvalSettings(resolution=RESOLUTION, max_views=6)
    before = evaluate_pointmaps(model, reader, reader.scene_ids(), settings)
    untouched = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("panoptic_decoder.")}
    result = train(stage1, model, _data(stage1), device="cpu")
    after = evaluate_pointmaps(model, reader, reader.scene_ids(), settings)
    assert result.global_step == 150
    assert after["median_rel_error_global"] < 0.8 * before["median_rel_error_global"], (before, after)
    assert after["median_rel_error_local"] < 0.8 * before["median_rel_error_local"], (before, after)
    assert after["focal_median_rel_error"] < before["focal_median_rel_error"], (before, after)
    for key, value in untouched.items():  # the panoptic head is not part of this stage
        assert torch.equal(model.state_dict()[key], value), key
    backbone = save_checkpoint(model, tmp_path / "stage1" / "model-final")

    stage2 = _config(
        "synthetic_head",
        store,
        tmp_path / "stage2",
        batch_size=2,
        epochs=1,
        must3r_chkpt=str(backbone),
        lr_scales={},
    )
    stage2.data.samples_per_epoch = 2 * 3
    seed_everything(1)
    head_model = build_model("tiny_v2")
    train(stage2, head_model, _data(stage2), device="cpu")
    for key, value in model.state_dict().items():
        if key.startswith(("must3r_encoder.", "must3r_decoder.")):
            assert torch.equal(head_model.state_dict()[key], value), f"{key} is not stage 1's (or moved)"
