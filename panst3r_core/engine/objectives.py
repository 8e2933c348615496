"""What a training run optimises, by name (`training.objective`):

- `panoptic` (official PanSt3R training): the panoptic head, with the backbones frozen unless their
  `finetune_*` switch is on; Hungarian-matched mask and class losses.
- `pointmap` (MUSt3R's own training, the 3-D pretraining stage): the MUSt3R encoder and decoder on the
  views' depth and poses; the memory is built over the batch's `memory_num_views` first views, every view is
  rendered, and both passes are supervised (`panst3r_core.losses.pointmap`). DINOv2 and the panoptic head
  stay frozen and unused.
- `panoptic_pointmap`: the panoptic objective with the MUSt3R backbone fine-tuned under both losses: the
  panoptic head's, plus `pointmap.weight` x MUSt3R's pointmap loss on the same forward's render-pass
  pointmaps, so that adapting the backbone's features to segmentation does not cost its geometry.

An objective says which submodules train, runs the forward and computes the losses; the loop does the rest
(accumulation, AMP, DDP, checkpoints) the same way for both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.config import TrainConfig, TrainingConfig
from panst3r_core.engine.frozen_casts import cache_frozen_linear_casts
from panst3r_core.losses.criterion import TOTAL_LOSS_NAME, PanopticCriterion
from panst3r_core.losses.pointmap import TOTAL_POINTMAP_LOSS, PointmapCriterion, pointmap_targets
from panst3r_core.losses.targets import MultiViewTargets, batch_targets_from_objects, prepare_batch_targets
from panst3r_core.registry import Registry

logger = logging.getLogger(__name__)

TOTAL_JOINT_LOSS = "total_loss"

ForwardFn = Callable[[nn.Module, TrainBatch, torch.Tensor, TrainingConfig], dict]

# Submodule name -> TrainingConfig switch that un-freezes it (frozen by default, as officially).
FREEZABLE_MODULES = {
    "must3r_encoder": "finetune_must3r_encoder",
    "must3r_decoder": "finetune_must3r_decoder",
    "dino_encoder": "finetune_dino",
}
PANOPTIC_HEAD = "panoptic_decoder"


class Objective(Protocol):
    total_name: str
    """The loss term that is back-propagated (and logged as the headline)."""

    def trainable_modules(self, training: TrainingConfig) -> dict[str, bool]:
        """Submodule name -> whether it trains."""

    def runnable(self, model: nn.Module) -> nn.Module:
        """The module whose forward the loop calls (and DDP wraps)."""

    def forward(self, module: nn.Module, batch: TrainBatch, class_embeddings: torch.Tensor) -> dict:
        """The outputs of one batch (called under autocast)."""

    def loss(self, outputs: dict, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Every loss term, `total_name` included (computed in fp32, outside autocast)."""


def default_forward(
    model: nn.Module, batch: TrainBatch, class_embeddings: torch.Tensor, config: TrainingConfig
):
    """The PanSt3R training-style forward; backbones without gradients unless fine-tuned."""
    return model(
        batch.images,
        class_embeddings,
        train_must3r=config.finetune_must3r_encoder or config.finetune_must3r_decoder,
        train_dino=config.finetune_dino,
    )


def panoptic_targets(batch: TrainBatch, vocabulary: Sequence[str]) -> list[MultiViewTargets]:
    """From the objects the loader found when the batch carries them (no device synchronisation), else from
    the id maps where they are (a batch built by hand)."""
    if batch.objects is not None:
        return batch_targets_from_objects(batch.pan_inst_id, batch.objects, batch.class_set, vocabulary)
    return prepare_batch_targets(batch.pan_inst_id, batch.pan_cls_id, batch.class_set, vocabulary)


@dataclass
class PanopticObjective:
    criterion: PanopticCriterion
    forward_fn: ForwardFn
    vocabulary: Sequence[str]
    training: TrainingConfig
    total_name: str = TOTAL_LOSS_NAME

    def trainable_modules(self, training: TrainingConfig) -> dict[str, bool]:
        switches = {name: bool(getattr(training, switch)) for name, switch in FREEZABLE_MODULES.items()}
        return {**switches, PANOPTIC_HEAD: True}

    def runnable(self, model: nn.Module) -> nn.Module:
        return model

    def forward(self, module: nn.Module, batch: TrainBatch, class_embeddings: torch.Tensor) -> dict:
        return self.forward_fn(module, batch, class_embeddings, self.training)

    def loss(self, outputs: dict, batch: TrainBatch) -> dict[str, torch.Tensor]:
        return self.criterion(outputs, panoptic_targets(batch, self.vocabulary))


@dataclass
class PointmapObjective:
    criterion: PointmapCriterion
    total_name: str = TOTAL_POINTMAP_LOSS

    def trainable_modules(self, training: TrainingConfig) -> dict[str, bool]:
        encoder, decoder = training.finetune_must3r_encoder, training.finetune_must3r_decoder
        if not (encoder or decoder):
            raise ValueError(
                "training.objective=pointmap trains the MUSt3R encoder and/or decoder: set "
                "training.finetune_must3r_encoder and/or training.finetune_must3r_decoder to true"
            )
        return {
            "must3r_encoder": encoder,
            "must3r_decoder": decoder,
            "dino_encoder": False,
            PANOPTIC_HEAD: False,
        }

    def runnable(self, model: nn.Module) -> nn.Module:
        from panst3r_core.model.must3r_geometry import Must3rGeometry

        return Must3rGeometry(model)

    def forward(self, module: nn.Module, batch: TrainBatch, class_embeddings: torch.Tensor) -> dict:
        batch.require_geometry()
        views = batch.images.shape[1]
        memory_views = min(int(batch.memory_num_views.reshape(-1)[0]), views)
        return module(batch.images, memory_views, self.criterion.config.memory_pass)

    def loss(self, outputs: dict, batch: TrainBatch) -> dict[str, torch.Tensor]:
        targets = pointmap_targets(batch.depth, batch.camera_intrinsics, batch.camera_pose)
        raw = outputs["pointmaps"]
        view_index = list(range(raw.shape[1]))
        memory = outputs.get("memory_pointmaps")
        if memory is not None:
            raw = torch.cat((memory, raw), dim=1)
            view_index = list(range(memory.shape[1])) + view_index
        return self.criterion(raw, targets, view_index)


@dataclass
class PanopticPointmapObjective:
    panoptic: PanopticObjective
    pointmap: PointmapCriterion
    weight: float
    total_name: str = TOTAL_JOINT_LOSS

    def trainable_modules(self, training: TrainingConfig) -> dict[str, bool]:
        modules = self.panoptic.trainable_modules(training)
        if not (modules["must3r_encoder"] or modules["must3r_decoder"]):
            raise ValueError(
                "training.objective=panoptic_pointmap fine-tunes the MUSt3R backbone: set "
                "training.finetune_must3r_encoder and/or training.finetune_must3r_decoder to true (with both "
                "off, use objective=panoptic)"
            )
        return modules

    def runnable(self, model: nn.Module) -> nn.Module:
        return model

    def forward(self, module: nn.Module, batch: TrainBatch, class_embeddings: torch.Tensor) -> dict:
        batch.require_geometry()
        return self.panoptic.forward(module, batch, class_embeddings)

    def loss(self, outputs: dict, batch: TrainBatch) -> dict[str, torch.Tensor]:
        losses = self.panoptic.loss(outputs, batch)
        targets = pointmap_targets(batch.depth, batch.camera_intrinsics, batch.camera_pose)
        raw = outputs["pointmaps"]
        # In fp32, like every loss: the loop calls loss() outside autocast.
        geometry = self.pointmap(raw.float(), targets, range(raw.shape[1]))
        losses.update(geometry)
        losses[self.total_name] = losses[TOTAL_LOSS_NAME] + self.weight * geometry[TOTAL_POINTMAP_LOSS]
        return losses


OBJECTIVES: Registry[Callable[..., Objective]] = Registry("training objective")


@OBJECTIVES.register("panoptic")
def _panoptic(config: TrainConfig, vocabulary: Sequence[str], criterion: Any, forward: Any) -> Objective:
    return PanopticObjective(
        criterion or PanopticCriterion(config.criterion),
        forward or default_forward,
        vocabulary,
        config.training,
    )


@OBJECTIVES.register("pointmap")
def _pointmap(config: TrainConfig, vocabulary: Sequence[str], criterion: Any, forward: Any) -> Objective:
    if criterion is not None or forward is not None:
        raise ValueError("training.objective=pointmap has its own loss and forward; pass neither")
    return PointmapObjective(PointmapCriterion(config.pointmap))


@OBJECTIVES.register("panoptic_pointmap")
def _panoptic_pointmap(
    config: TrainConfig, vocabulary: Sequence[str], criterion: Any, forward: Any
) -> Objective:
    return PanopticPointmapObjective(
        _panoptic(config, vocabulary, criterion, forward),
        PointmapCriterion(config.pointmap),
        config.pointmap.weight,
    )


def build_objective(
    config: TrainConfig,
    vocabulary: Sequence[str],
    criterion: PanopticCriterion | None = None,
    forward: ForwardFn | None = None,
) -> Objective:
    """The objective `config.training.objective` names (an unknown name lists the registered ones)."""
    return OBJECTIVES.get(config.training.objective)(config, vocabulary, criterion, forward)


def apply_freezing(model: nn.Module, objective: Objective, training: TrainingConfig) -> None:
    """requires_grad per submodule as the objective says (a submodule the model lacks is only warned about
    when it would have trained); the model's Linear layers then cache their autocast casts while frozen."""
    for module_name, trains in objective.trainable_modules(training).items():
        module = getattr(model, module_name, None)
        if module is None:
            if trains:
                logger.warning("model has no submodule %r to train", module_name)
            continue
        module.requires_grad_(trains)
    cache_frozen_linear_casts(model)
