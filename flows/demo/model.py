"""The model side of the demo: UI choices -> predictor arguments, one shared predictor, one run at a time.

The predictor is loaded once per server and shared by all sessions; a lock serialises runs because the
model's activations for one scene already fill the device (and torch CPU kernels use every core).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flows.demo.limits import DemoInputError
from panst3r_core.classes import load_class_set
from panst3r_core.reconstruction import PanopticReconstruction

log = logging.getLogger(__name__)

# UI label -> registered post-processor name (panst3r_core.postprocess).
POSTPROCESS_CHOICES: dict[str, str] = {
    "QUBO": "qubo",
    "Standard (v1)": "standard_v1",
    "Standard (v2)": "standard_v2",
}
# UI label -> built-in class set name (panst3r_core.classes).
CLASS_SET_CHOICES: dict[str, str] = {
    "ScanNet++ (100)": "scannetpp",
    "COCO (133)": "coco",
    "ADE20k (150)": "ade20k",
}
DEFAULT_CLASS_SETS = ["ScanNet++ (100)"]
MAX_DEFAULT_KEYFRAMES = 50

ProgressFn = Callable[[float, str], None]


def default_keyframes(num_images: int) -> int:
    """The official slider rule: as many keyframes as images, at most 50."""
    return max(1, min(num_images, MAX_DEFAULT_KEYFRAMES))


def parse_class_names(text: str | None) -> list[str]:
    """Free-text class names: separated by commas, semicolons or new lines; blanks dropped."""
    return [name.strip() for name in re.split(r"[,;\n]", text or "") if name.strip()]


def class_vocabulary(selected_sets: Sequence[str] | None, free_text: str | None) -> list[str]:
    """The selected built-in sets in UI order, then the typed names; duplicates keep their first place."""
    names: list[str] = []
    for label in selected_sets or []:
        if label not in CLASS_SET_CHOICES:
            raise DemoInputError(f"unknown class set {label!r}; choose from {', '.join(CLASS_SET_CHOICES)}")
        names.extend(load_class_set(CLASS_SET_CHOICES[label]))
    names.extend(parse_class_names(free_text))
    vocabulary = list(dict.fromkeys(names))
    if not vocabulary:
        raise DemoInputError("no classes: tick at least one class set or type class names, then press Run")
    return vocabulary


def postprocess_name(label: str) -> str:
    if label not in POSTPROCESS_CHOICES:
        raise DemoInputError(
            f"unknown post-processing {label!r}; choose from {', '.join(POSTPROCESS_CHOICES)}"
        )
    return POSTPROCESS_CHOICES[label]


def postprocess_label(name: str | None) -> str:
    """UI label of a post-processor name; unknown or missing names fall back to Standard (v2)."""
    for label, registered in POSTPROCESS_CHOICES.items():
        if registered == name:
            return label
    return "Standard (v2)"


# The predictor's stages in order, with the share of the progress bar each one takes (by typical cost).
STAGE_SHARES: dict[str, float] = {
    "text_embeddings": 0.05,
    "preprocess": 0.05,
    "inference": 0.6,
    "postprocess": 0.25,
    "to_cpu": 0.05,
}


class DemoModel:
    """A loaded predictor, the input size it runs at, and the lock that makes sessions take turns."""

    def __init__(self, predictor: Any, image_size: int = 512) -> None:
        self.predictor = predictor
        self.image_size = image_size
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        weights: Any,
        device: str,
        amp: str,
        dino_config: Any,
        image_size: int,
        text_embeddings: str = "auto",
    ) -> DemoModel:
        from panst3r_core.predictor import Predictor

        predictor = Predictor(
            weights, device=device, amp=amp, dino_config=dino_config, text_embeddings=text_embeddings
        )
        return cls(predictor, image_size)

    @property
    def default_postprocess(self) -> str:
        """UI label of the checkpoint's own default post-processing (standard v2 when it names none)."""
        metadata = getattr(self.predictor, "metadata", {}) or {}
        return postprocess_label(metadata.get("postprocess_default"))

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def run(
        self,
        images: list[np.ndarray],
        view_names: list[str],
        class_names: list[str],
        num_keyframes: int,
        postprocess: str,
        progress: ProgressFn,
        keyframe_mode: str = "linspace",
    ) -> PanopticReconstruction:
        """Reconstruct `images` ((H, W, 3) uint8 each) with one segmentation over `class_names`.

        keyframe_mode: "linspace" (evenly spaced, the official default) or "retrieval" (diverse views).
        """
        if not 1 <= num_keyframes <= len(images):
            raise DemoInputError(
                f"number of keyframes must be between 1 and the number of images ({len(images)}), "
                f"got {num_keyframes}"
            )
        if self.busy:
            progress(0.02, "waiting for another session's run to finish")
        with self._lock:
            return self.predictor.predict(
                images,
                class_names=class_names,
                num_keyframes=int(num_keyframes),
                keyframe_mode=keyframe_mode,
                postprocess=postprocess,
                progress=stage_progress(progress),
                image_size=self.image_size,
                view_names=view_names,
            )


def stage_progress(
    progress: ProgressFn, start: float = 0.05, span: float = 0.85
) -> Callable[[str, int, int], None]:
    """Adapt the predictor's `progress(stage, done, total)` to one bar from `start` to `start + span`."""
    offsets: dict[str, float] = {}
    acc = 0.0
    for stage, share in STAGE_SHARES.items():
        offsets[stage] = acc
        acc += share

    def report(stage: str, done: int, total: int) -> None:
        share = STAGE_SHARES.get(stage, 0.0)
        fraction = offsets.get(stage, acc) + share * (done / total if total else 1.0)
        progress(start + span * min(fraction / acc, 1.0), stage.replace("_", " "))

    return report
