"""The prediction settings of a batch run and the identity of a scene's prediction.

A scene's outputs are up to date when its manifest records the same prediction key: the checkpoint's
content hash, every setting that changes the written files, and the digest of the scene's input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.store.hashing import DigestCache
from panst3r_core.classes.vocabulary import SETS_WITH_STUFF
from panst3r_core.pretrained import resolve_weights


@dataclass(frozen=True)
class PredictionSettings:
    """Everything besides the checkpoint that decides a scene's predicted files."""

    postprocess: str | None = None
    """Post-processor name; None: the checkpoint's default, else standard_v2."""
    postprocess_options: dict[str, Any] = field(default_factory=dict)
    """Overrides of the post-processor's options."""
    num_keyframes: int | None = None
    """Keyframes of the memory and the query decoding; None: all views, at most 50."""
    keyframe_mode: str = "linspace"
    """linspace (evenly spaced) or retrieval (diverse keyframes from encoder features)."""
    image_size: int = 512
    """Long side of the network input."""
    amp: str = "none"
    """Mixed precision on CUDA: none, bf16 or fp16."""
    encoder_autocast: bool = False
    """With `amp`, the MUSt3R encoder in that precision too (the official encoder runs in float32)."""
    encoder_attention: str = "exact"
    """Attention of the float32 encoder on CUDA: exact (official) or tf32 (`panst3r_core.model.tf32_attention`)."""
    compile: bool = False
    """`torch.compile` the MUSt3R encoder and DINOv2 (float rounding may differ from eager in the last bits)."""
    attention: str = "auto"
    """Attention kernel on CUDA (`panst3r_core.model.attention_kernels.KERNELS`)."""
    tf32: bool = True
    """TF32 float32 matmuls on CUDA, as the official demo (False: IEEE float32)."""
    class_names: tuple[str, ...] | None = None
    """The vocabulary the model is queried with; None: the checkpoint's names, else ScanNet++ top-100."""
    class_embeddings: str | None = None
    """A (C, 768) .npy of embeddings for `class_names` (its content hash is part of the key)."""
    text_embeddings: str = "auto"
    """How class names become embeddings: auto, siglip or hashed."""
    siglip: str | None = None
    """SigLIP model folder or hub id (offline cache)."""
    dino_config: str | None = None
    """DINOv2 config JSON for official checkpoints whose sizes cannot be inferred."""
    chunk_views: int | None = None
    """Stream the views in chunks of this many; results are identical, so it is not part of the key."""
    class_sets: tuple[str, ...] = SETS_WITH_STUFF
    """Built-in class sets that decide thing/stuff in panoptic.json."""
    raw: bool = False
    """Also write raw.npz with every raw model output."""
    min_confidence: float = 3.0
    """Points below this confidence are left out of scene.ply / scene.glb."""
    max_points: int | None = 2_000_000
    """Evenly thin the exported point cloud to at most this many points."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PredictionSettings:
        """Back from `dataclasses.asdict` (or JSON): lists become tuples again; unknown keys are an error."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(
                f"unknown prediction settings {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        converted = dict(values)
        for name in ("class_names", "class_sets"):
            if converted.get(name) is not None:
                converted[name] = tuple(converted[name])
        return cls(**converted)

    def recorded(self) -> dict[str, Any]:
        """The settings as the manifest records them (JSON types), without those that leave results alone."""
        values = dataclasses.asdict(self)
        values.pop("chunk_views")
        values.pop("siglip")  # where SigLIP is read from does not change its embeddings
        # at their defaults, settings added later stay out: manifests recorded before them still match
        later = (
            ("encoder_autocast", False),
            ("encoder_attention", "exact"),
            ("compile", False),
            ("attention", "auto"),
            ("tf32", True),
        )
        for name, default in later:
            if values[name] == default:
                values.pop(name)
        for name in ("class_names", "class_sets"):
            if values[name] is not None:
                values[name] = list(values[name])
        return json.loads(json.dumps(values, sort_keys=True, default=str))

    def predictor_options(self) -> dict[str, Any]:
        """The `Predictor` arguments (besides weights and device) these settings ask for."""
        return {
            "amp": self.amp,
            "encoder_autocast": self.encoder_autocast,
            "encoder_attention": self.encoder_attention,
            "compile": self.compile,
            "attention": self.attention,
            "tf32": self.tf32,
            "dino_config": self.dino_config,
            "text_embeddings": self.text_embeddings,
            "siglip": self.siglip,
            "chunk_views": self.chunk_views,
        }


@dataclass(frozen=True)
class PredictionIdentity:
    """What a scene's outputs were (or are to be) predicted from: it decides skip or re-predict."""

    checkpoint_hash: str
    settings: dict[str, Any]
    """`PredictionSettings.recorded()`, with the content hash of the class embeddings file if any."""

    def key(self, input_digest: str) -> str:
        """One hash of the checkpoint, the settings and the scene's input."""
        digest = hashlib.sha256(self.checkpoint_hash.encode())
        digest.update(json.dumps(self.settings, sort_keys=True).encode())
        digest.update(input_digest.encode())
        return digest.hexdigest()


def prediction_identity(
    checkpoint: str | Path, settings: PredictionSettings, cache: DigestCache
) -> PredictionIdentity:
    """The identity of a run's predictions; file contents are hashed once and remembered in `cache`."""
    recorded = settings.recorded()
    if settings.class_embeddings is not None:
        recorded["class_embeddings_hash"] = cache.digest(Path(settings.class_embeddings))
    return PredictionIdentity(checkpoint_content_hash(checkpoint, cache), recorded)


def checkpoint_content_hash(checkpoint: str | Path, cache: DigestCache) -> str:
    """sha256 over (relative name, content digest) of a checkpoint file or of every file of a model folder.
    Content, not names or times: a copied or touched checkpoint still skips, a retrained one does not."""
    path = resolve_weights(checkpoint).resolve()
    if not path.exists():
        raise FileNotFoundError(f"--weights {checkpoint} does not exist; pass a .pth file or a model folder")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else ""
        digest.update(f"{name}\0{cache.digest(file)}\n".encode())
    return digest.hexdigest()
