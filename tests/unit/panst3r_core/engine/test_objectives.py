"""Training objectives: each registered one builds, says what trains, and refuses what cannot work."""

from dataclasses import fields, replace

import pytest
import torch

from panst3r_core.engine import objectives
from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.config import TrainConfig, TrainingConfig
from panst3r_core.engine.frozen_casts import CastCachingLinear
from panst3r_core.engine.objectives import OBJECTIVES, apply_freezing, build_objective
from panst3r_core.losses.sample_objects import BatchObjects
from panst3r_core.losses.targets import find_class_set_objects
from panst3r_core.model.variants import build_model


def test_registered_objectives():
    assert OBJECTIVES.names() == ["panoptic", "panoptic_pointmap", "pointmap"]


def test_an_unknown_objective_lists_the_registered_ones():
    with pytest.raises(ValueError, match="registered: panoptic, panoptic_pointmap, pointmap"):
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
    assert any(isinstance(module, CastCachingLinear) for module in model.modules())
    assert not any(type(module) is torch.nn.Linear for module in model.modules())  # subclasses stay theirs


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


def _geometry_batch(views: int = 2, size: int = 32) -> TrainBatch:
    inst = torch.zeros(1, views, size, size, dtype=torch.int64)
    inst[..., : size // 2, :] = 1  # one object over the top half of every view
    intrinsics = torch.tensor([[20.0, 0, size / 2], [0, 20.0, size / 2], [0, 0, 1]])
    pose = torch.eye(4).repeat(1, views, 1, 1)
    pose[0, 1, 0, 3] = 0.1  # the second camera 10 cm to the side
    return TrainBatch(
        images=torch.rand(1, views, 3, size, size) * 2 - 1,
        true_shape=torch.full((1, views, 2), size),
        pan_inst_id=inst,
        pan_cls_id=torch.zeros_like(inst),
        class_set=["wall"],
        depth=torch.full((1, views, size, size), 2.0),
        camera_intrinsics=intrinsics.repeat(1, views, 1, 1),
        camera_pose=pose,
        memory_num_views=torch.tensor([views]),
    )


def test_panoptic_pointmap_needs_a_trainable_backbone():
    config = TrainConfig(training=TrainingConfig(objective="panoptic_pointmap"))
    with pytest.raises(ValueError, match="objective=panoptic"):
        build_objective(config, ["wall"]).trainable_modules(config.training)


def test_panoptic_pointmap_adds_the_weighted_geometry_loss_and_trains_backbone_and_head():
    torch.manual_seed(0)
    training = TrainingConfig(objective="panoptic_pointmap", finetune_must3r_encoder=True)
    config = TrainConfig(training=training)
    config.pointmap.weight = 0.5
    config.criterion.num_points = 64
    model = build_model("tiny_v2")
    objective = build_objective(config, ["wall"])
    apply_freezing(model, objective, training)
    batch = _geometry_batch()
    outputs = objective.forward(
        objective.runnable(model), batch, torch.nn.functional.normalize(torch.randn(1, 768), dim=-1)
    )
    losses = objective.loss(outputs, batch)
    expected = losses["panoptic_loss"] + 0.5 * losses["pointmap_loss"]
    assert torch.isfinite(losses[objective.total_name])
    assert losses[objective.total_name].item() == pytest.approx(expected.item())
    assert {"loss_ce", "loss_dice", "regr_global", "regr_local"} <= set(losses)
    losses[objective.total_name].backward()
    trained = {
        name.split(".")[0]
        for name, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert {"must3r_encoder", "panoptic_decoder"} <= trained
    assert "must3r_decoder" not in trained and "dino_encoder" not in trained


def test_panoptic_pointmap_needs_the_geometry_in_the_batch():
    config = TrainConfig(training=TrainingConfig(objective="panoptic_pointmap", finetune_must3r_encoder=True))
    objective = build_objective(config, ["wall"])
    batch = _geometry_batch()
    batch.depth = None
    with pytest.raises(ValueError, match="depth"):
        objective.forward(build_model("tiny_v2"), batch, torch.zeros(1, 768))


def _with_objects(batch: TrainBatch) -> TrainBatch:
    """The batch as the store loader's collate yields it: each sample's objects found on the host."""
    samples = [
        find_class_set_objects(batch.pan_inst_id[b], batch.pan_cls_id[b], class_set)
        for b, class_set in enumerate(batch.class_set)
    ]
    return replace(batch, objects=BatchObjects.pack(samples))


def test_panoptic_loss_from_the_loader_objects_equals_the_loss_from_the_id_maps(monkeypatch):
    config = TrainConfig()
    config.criterion.num_points = 64
    objective = build_objective(config, ["wall"])
    batch = _geometry_batch()
    generator = torch.Generator().manual_seed(0)
    outputs = {
        "pred_logits": torch.randn(1, 5, 1, generator=generator),
        "pred_masks": torch.randn(1, 2, 5, 16, 16, generator=generator),
    }
    torch.manual_seed(0)
    from_id_maps = objective.loss(outputs, batch)
    monkeypatch.setattr(objectives, "prepare_batch_targets", None)  # the objects path must not call it
    torch.manual_seed(0)
    from_objects = objective.loss(outputs, _with_objects(batch))
    assert from_objects.keys() == from_id_maps.keys()
    assert all(torch.equal(from_objects[name], from_id_maps[name]) for name in from_objects)


def test_batch_objects_come_through_from_any_and_stay_on_the_host():
    batch = _with_objects(_geometry_batch())
    mapping = {field.name: getattr(batch, field.name) for field in fields(batch)}
    moved = TrainBatch.from_any(mapping).to(torch.device("cpu"))
    assert moved.objects is batch.objects
