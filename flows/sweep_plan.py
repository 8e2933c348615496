"""What an evaluation sweep evaluates, checked and resolved before anything runs: the store and its scenes,
the checkpoints and their input sizes, the configurations, the device, and the sweep's key (equal keys,
equal results: `evaluate --reuse` returns the finished sweep with the same key)."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.evaluation.scene_run import EvalSettings
from datasets.store.location import StoreLocation
from datasets.store.queries import content_hash, pinned_store, select_scenes, store_version
from flows import mlflow_names as names
from flows.run_folder import checkpoint_digest, training_image_size
from panst3r_core.device import resolve_device

DEFAULT_IMAGE_SIZE = 512
"""Network long side for checkpoints without a training config next to them (the released models')."""

log = logging.getLogger(__name__)


def keyframes_label(keyframes: int | None) -> str:
    return "all" if keyframes is None else str(keyframes)


@dataclass(frozen=True)
class SweepPlan:
    store: StoreLocation
    """An absolute directory, or an object store pinned to the snapshot the sweep reads."""
    split: str
    scenes: list[str]
    checkpoints: list[str]
    postprocess: list[str]
    """Post-processing configurations in canonical form (`panst3r_core.postprocess.spec`)."""
    keyframes: list[int | None]
    """None = all views."""
    max_views: int | None
    image_sizes: dict[str, int]
    """Network long side per checkpoint."""
    query_vocabulary: str
    device: str

    def configurations(self) -> list[tuple[str, str, int | None]]:
        """(checkpoint, post-processing, keyframes), checkpoint by checkpoint (one model in memory)."""
        return list(itertools.product(self.checkpoints, self.postprocess, self.keyframes))

    def inference_groups(self) -> list[tuple[str, int | None]]:
        """(checkpoint, keyframes): the configurations of one pair share each scene's inference."""
        return list(itertools.product(self.checkpoints, self.keyframes))

    def describe(self) -> str:
        return (
            f"{len(self.checkpoints)} checkpoint(s) x {len(self.postprocess)} post-processing(s) x "
            f"{len(self.keyframes)} keyframe setting(s) on {len(self.scenes)} {self.split} scene(s), {self.device}"
        )

    def settings(self) -> dict[str, Any]:
        return {
            "postprocess": self.postprocess,
            "keyframes": [keyframes_label(k) for k in self.keyframes],
            "split": self.split,
            "max_views": self.max_views,
            "image_size": self.image_sizes,
            "query_vocabulary": self.query_vocabulary,
        }

    def key(self) -> str:
        """Identity of what the sweep evaluates: store content and scenes, checkpoint files, settings."""
        digest = hashlib.sha256(content_hash(self.store).encode())
        digest.update("\n".join(self.scenes).encode())
        for checkpoint in self.checkpoints:
            digest.update(checkpoint_digest(checkpoint).encode())
        digest.update(json.dumps(self.settings(), sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    def version_tags(self) -> dict[str, str]:
        """The exact data the sweep reads (a snapshot id or a directory's content hash), as MLflow tags."""
        version = store_version(self.store)
        return {names.STORE_VERSION_TAG: version.id, names.STORE_VERSION_KIND_TAG: version.kind}

    def params(self) -> dict[str, str]:
        """The parent run's params."""
        return {
            names.STORE: str(self.store),
            names.SPLIT: self.split,
            names.CHECKPOINTS: ",".join(str(Path(c).resolve()) for c in self.checkpoints),
            names.POSTPROCESS: " ".join(self.postprocess),  # a configuration may contain commas
            names.KEYFRAMES: ",".join(keyframes_label(k) for k in self.keyframes),
            names.MAX_VIEWS: "all" if self.max_views is None else str(self.max_views),
            names.DEVICE: self.device,
            names.NUM_SCENES: str(len(self.scenes)),
            names.NUM_CONFIGURATIONS: str(len(self.configurations())),
        }


def input_size(checkpoint: str) -> int:
    """The network long side a checkpoint is evaluated at without --image-size: its training resolution, else
    the released models' 512, with a warning for a model folder (ours, so it should have recorded one)."""
    trained = training_image_size(checkpoint)
    if trained is not None:
        return trained
    if Path(checkpoint).is_dir():
        log.warning(
            "%s records no training resolution (metadata training_resolutions, or a run config beside it): "
            "evaluating it at %d px; pass --image-size to choose",
            checkpoint,
            DEFAULT_IMAGE_SIZE,
        )
    return DEFAULT_IMAGE_SIZE


def plan_sweep(
    store: str | Path,
    checkpoints: Sequence[str],
    postprocess: Sequence[str] | None = None,
    keyframes: Sequence[int | None] | None = None,
    split: str = "val",
    max_views: int | None = None,
    device: str = "auto",
    image_size: int | None = None,
    query_vocabulary: str = "store",
) -> SweepPlan:
    """Check every input (one clear error naming it) and resolve the scenes, device and input sizes."""
    from panst3r_core.postprocess.spec import canonical_spec

    store_path = pinned_store(store)  # an object store: its newest snapshot, read by every configuration
    if not checkpoints:
        raise ValueError("--checkpoints: give at least one checkpoint (a model folder or an official .pth)")
    for checkpoint in checkpoints:
        if not Path(checkpoint).exists():
            raise FileNotFoundError(
                f"checkpoint {checkpoint} does not exist; pass a model folder (e.g. RUNS/train/<run>/model-final)"
                " or an official .pth"
            )
    postprocess = [canonical_spec(text) for text in postprocess or ["standard_v2"]]
    keyframes = list(keyframes) if keyframes else [None]
    for count in keyframes:
        EvalSettings(keyframes=count, max_views=max_views, query_vocabulary=query_vocabulary).validate()
    checkpoints = [str(Path(c)) for c in checkpoints]
    sizes = {c: image_size or input_size(c) for c in checkpoints}
    scenes = select_scenes(store_path, split)
    return SweepPlan(
        store_path, split, scenes, checkpoints, postprocess, keyframes, max_views, sizes, query_vocabulary,
        resolve_device(device),
    )  # fmt: skip
