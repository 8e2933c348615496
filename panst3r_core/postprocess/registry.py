"""Post-processors by name: `standard_v1`, `standard_v2` (default) and `qubo`.

Each entry pairs a function `(pred_logits, pred_masks, true_shapes, options) -> PanopticResult` with its
typed options dataclass and default values, so callers can pass plain `key: value` overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from panst3r_core.config import from_dict
from panst3r_core.postprocess.qubo import QuboOptions, qubo_postprocess
from panst3r_core.postprocess.result import PanopticResult
from panst3r_core.postprocess.standard import STANDARD_V1, STANDARD_V2, StandardOptions, standard_postprocess
from panst3r_core.registry import Registry

DEFAULT_POSTPROCESSOR = "standard_v2"


@dataclass(frozen=True)
class PostProcessor:
    function: Callable[..., PanopticResult]
    defaults: Any
    """An instance of the options dataclass holding this post-processor's defaults."""

    def options(self, overrides: dict[str, Any] | None = None) -> Any:
        """The defaults with `overrides` applied; unknown keys raise ValueError naming the valid ones."""
        merged = {**dataclasses.asdict(self.defaults), **(overrides or {})}
        return from_dict(
            type(self.defaults), merged, where=f"postprocess options ({type(self.defaults).__name__})"
        )

    def __call__(
        self,
        pred_logits: torch.Tensor,
        pred_masks: Sequence[torch.Tensor] | torch.Tensor,
        true_shapes: Sequence[Sequence[int]] | torch.Tensor,
        options: Any = None,
    ) -> PanopticResult:
        return self.function(pred_logits, pred_masks, true_shapes, options or self.defaults)


POSTPROCESSORS: Registry[PostProcessor] = Registry("post-processor")
POSTPROCESSORS.register("standard_v1")(PostProcessor(standard_postprocess, STANDARD_V1))
POSTPROCESSORS.register("standard_v2")(PostProcessor(standard_postprocess, STANDARD_V2))
POSTPROCESSORS.register("qubo")(PostProcessor(qubo_postprocess, QuboOptions()))

__all__ = ["POSTPROCESSORS", "DEFAULT_POSTPROCESSOR", "PostProcessor", "StandardOptions", "QuboOptions"]


def run_postprocessor(
    name: str,
    pred_logits: torch.Tensor,
    pred_masks: Sequence[torch.Tensor] | torch.Tensor,
    true_shapes: Sequence[Sequence[int]] | torch.Tensor,
    overrides: dict[str, Any] | None = None,
) -> PanopticResult:
    """Run the post-processor registered as `name` with its defaults updated by `overrides`."""
    processor = POSTPROCESSORS.get(name)
    return processor(pred_logits, pred_masks, true_shapes, processor.options(overrides))
