"""A fresh run's starting weights: a MUSt3R backbone (`training.must3r_chkpt`), then a whole PanSt3R model on
top (`training.chkpt`), in the official order. The trainer starts from them, and a report of what a run
changed scores them as its "before"."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from panst3r_core.checkpoint.official import (
    load_must3r_backbone,
    match_dino_key_names,
    read_official_checkpoint,
)
from panst3r_core.engine.checkpointing import load_weights
from panst3r_core.pretrained import existing_weights

logger = logging.getLogger(__name__)

# The submodules a MUSt3R checkpoint (`training.must3r_chkpt`) initialises.
MUST3R_MODULES = ("must3r_encoder", "must3r_decoder")


def _is_our_format(path: Path) -> bool:
    return path.is_dir() or path.suffix == ".safetensors"


def load_initial_weights(model: nn.Module, must3r_chkpt: str | None, chkpt: str | None) -> None:
    """Load the two weights settings into `model`, both non-strict for the whole model as officially. Either
    may be a folder or file of ours, an official `.pth`, or `shipped:NAME`."""
    if must3r_chkpt is not None:
        source = existing_weights(must3r_chkpt, "training.must3r_chkpt")
        if _is_our_format(source):
            # e.g. the model-final of a pointmap (3-D pretraining) run: only its MUSt3R weights count
            load_weights(model, source, only=MUST3R_MODULES)
        else:
            load_must3r_backbone(model, source)  # official MUSt3R .pth: 'encoder' + 'decoder'
        logger.info("initialised the MUSt3R backbone from %s", source)
    if chkpt is not None:
        source = existing_weights(chkpt, "training.chkpt")
        if _is_our_format(source):
            load_weights(model, source, strict=False)
        else:
            weights = match_dino_key_names(
                read_official_checkpoint(source).weights, model.state_dict().keys()
            )
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if missing or unexpected:
                logger.warning("%s: %d missing and %d unexpected keys", source, len(missing), len(unexpected))
        logger.info("initialised the model from %s", source)
