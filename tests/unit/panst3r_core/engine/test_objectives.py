"""Training objectives: each registered one builds, says what trains, and refuses what cannot work."""

import pytest
import torch

from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.config import TrainConfig, TrainingConfig
from panst3r_core.engine.objectives import OBJECTIVES, apply_freezing, build_objective
from panst3r_core.model.variants import build_model


def test_registered_objectives():
    assert OBJECTIVES.names() == ["panoptic", "pointmap"]


def test_an_unknown_objective_lists_the_registered_ones():
    with pytest.raises(ValueError, match="registered: panoptic, pointmap"):
        TrainingConfig(objective="depth")


def test_panoptic_trains_the_head_and_the_switched_backbones():
    config = TrainConfig(training=TrainingConfig(finetune_dino=True))
    modules = build_objective(config, ["wall"]).trainable_modules(config.training)
    assert modules == {
        "must3r_encoder": False,
        "must3r_decoder": False,
        "dino_encoder": True,
        "panoptic_decoder": True,
    }


def test_pointmap_trains_only_the_must3r_backbone():
    training = TrainingConfig(
        objective="pointmap", finetune_must3r_encoder=True, finetune_must3r_decoder=True
    )
    config = TrainConfig(training=training)
    model = build_model("tiny_v2")
    objective = build_objective(config, [])
    apply_freezing(model, objective, training)
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"must3r_encoder", "must3r_decoder"}


def test_pointmap_with_a_frozen_backbone_has_nothing_to_train():
    config = TrainConfig(training=TrainingConfig(objective="pointmap"))
    with pytest.raises(ValueError, match="finetune_must3r_encoder"):
        build_objective(config, []).trainable_modules(config.training)


def test_pointmap_refuses_a_custom_criterion():
    config = TrainConfig(training=TrainingConfig(objective="pointmap"))
    with pytest.raises(ValueError, match="its own loss"):
        build_objective(config, [], criterion=object())


def test_pointmap_needs_the_geometry_in_the_batch():
    config = TrainConfig(training=TrainingConfig(objective="pointmap", finetune_must3r_encoder=True))
    objective = build_objective(config, [])
    batch = TrainBatch(
        images=torch.zeros(1, 2, 3, 32, 32),
        true_shape=torch.full((1, 2, 2), 32),
        pan_inst_id=torch.zeros(1, 2, 32, 32, dtype=torch.int64),
        pan_cls_id=torch.zeros(1, 2, 32, 32, dtype=torch.int64),
        class_set=["wall"],
    )
    module = objective.runnable(build_model("tiny_v2"))
    with pytest.raises(ValueError, match="depth, camera_intrinsics, camera_pose, memory_num_views"):
        objective.forward(module, batch, torch.zeros(1, 768))
