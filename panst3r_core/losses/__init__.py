"""Training losses: multi-view targets, Hungarian matching, focal class loss, per-view mask losses."""

from panst3r_core.losses.criterion import TOTAL_LOSS_NAME, CriterionConfig, PanopticCriterion
from panst3r_core.losses.targets import MultiViewTargets, prepare_batch_targets, prepare_targets

__all__ = [
    "TOTAL_LOSS_NAME",
    "CriterionConfig",
    "MultiViewTargets",
    "PanopticCriterion",
    "prepare_batch_targets",
    "prepare_targets",
]
