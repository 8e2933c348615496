"""Panoptic post-processing: per-query class scores and mask logits -> multi-view panoptic maps.

`standard_v1`, `standard_v2` (default) and `qubo`, selected by name through `POSTPROCESSORS`.
"""

from panst3r_core.postprocess.registry import (
    DEFAULT_POSTPROCESSOR,
    POSTPROCESSORS,
    PostProcessor,
    run_postprocessor,
)
from panst3r_core.postprocess.result import PanopticResult, SegmentInfo

__all__ = [
    "DEFAULT_POSTPROCESSOR",
    "POSTPROCESSORS",
    "PanopticResult",
    "PostProcessor",
    "SegmentInfo",
    "run_postprocessor",
]
