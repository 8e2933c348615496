"""Deterministic offline class embeddings: a class name -> an L2-normalised 768-d vector.

SigLIP weights cannot be downloaded everywhere (CI, air-gapped machines). Synthetic training and the tiny
test checkpoints therefore use this `hashed` embedder instead of the SigLIP text tower: every name maps to
a fixed pseudo-random unit vector drawn from a generator seeded by a stable hash (SHA-256) of the
normalised name. It carries no language knowledge (synonyms get unrelated vectors), so a model trained with
SigLIP embeddings must be run with SigLIP embeddings; `hashed` is only for models trained with `hashed`.

Normalisation (lower case, surrounding whitespace stripped, inner whitespace collapsed) makes
`"Window "` and `"window"` the same class. The vectors do not depend on the torch version, the device or
the process (unlike Python's `hash`), and are pinned by a golden-value test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch

BACKEND_NAME = "hashed"
EMBED_DIM = 768
# Changing the salt changes every vector: bump it only together with the golden test and the checkpoints.
_SALT = "panst3r-hashed-class-embedding-v1:"


def normalise_class_name(name: str) -> str:
    """Lower case, strip, collapse inner whitespace: the key that is hashed."""
    return " ".join(name.strip().lower().split())


def class_name_seed(name: str) -> int:
    """A stable 63-bit seed for a class name (SHA-256 of the salted normalised name)."""
    digest = hashlib.sha256((_SALT + normalise_class_name(name)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def hashed_class_embedding(name: str, dim: int = EMBED_DIM) -> np.ndarray:
    """One name -> (dim,) float32 unit vector."""
    if not normalise_class_name(name):
        raise ValueError(f"class name {name!r} is empty after normalisation; give a non-empty name")
    vector = np.random.default_rng(class_name_seed(name)).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def hashed_class_embeddings(names: Iterable[str], dim: int = EMBED_DIM) -> torch.Tensor:
    """Names -> (C, dim) float32 tensor of L2-normalised rows, in the order given."""
    rows = [hashed_class_embedding(name, dim) for name in names]
    if not rows:
        raise ValueError("no class names given; pass at least one class name")
    return torch.from_numpy(np.stack(rows))


class HashedTextEmbedder:
    """Callable text-embedding backend: `embedder(names) -> (C, 768)` tensor, no weights, no network."""

    name = BACKEND_NAME

    def __init__(self, dim: int = EMBED_DIM) -> None:
        self.dim = dim

    def __call__(self, names: Iterable[str]) -> torch.Tensor:
        return hashed_class_embeddings(names, self.dim)
