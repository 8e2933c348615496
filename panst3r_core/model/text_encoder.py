"""Class-name embeddings for the open-vocabulary class head.

The released models use SigLIP (`google/siglip-base-patch16-224`): prompt "This is a photo of {}.", tokens
padded to max_length 64, `pooler_output` (768-d), L2-normalised. The text model is loaded lazily from a local
folder or from the local Hugging Face cache (never downloaded unless `allow_download=True`), and embeddings
are cached on disk keyed by (model id, prompt template, class name). Precomputed (C, 768) embeddings can be
used directly through `normalize_class_embeddings`, so tests and tiny models need no SigLIP.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextModelSpec:
    model_id: str
    template: str
    max_length: int
    embed_dim: int


TEXT_MODELS: dict[str, TextModelSpec] = {
    "siglip": TextModelSpec("google/siglip-base-patch16-224", "This is a photo of {}.", 64, 768),
    "siglip2": TextModelSpec("google/siglip2-base-patch16-224", "this is a photo of {}", 64, 768),
}


def normalize_class_embeddings(embeddings: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(C, D) raw embeddings -> float32 rows divided by their L2 norm (as the official TextEncoder.forward)."""
    emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
    if emb.ndim != 2:
        raise ValueError(f"class embeddings must have shape (C, D), got {tuple(emb.shape)}")
    emb = emb.float()
    return emb / emb.norm(dim=-1, keepdim=True)


def default_cache_dir() -> Path:
    root = os.environ.get("PANST3R_CACHE", str(Path.home() / ".cache" / "panst3r"))
    return Path(root) / "text_embeddings"


class TextEncoder:
    """names -> (C, D) L2-normalised embeddings, with an on-disk cache and a lazily loaded text model."""

    def __init__(
        self,
        kind: str = "siglip",
        model_path: str | None = None,
        cache_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        allow_download: bool = False,
    ) -> None:
        if kind not in TEXT_MODELS:
            raise ValueError(f"text encoder {kind!r} is not supported; choose from {', '.join(TEXT_MODELS)}")
        self.spec = TEXT_MODELS[kind]
        self.model_path = model_path or self.spec.model_id
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.device = torch.device(device)
        self.allow_download = allow_download
        self._model = None
        self._tokenizer = None

    def _cache_file(self, name: str) -> Path:
        key = f"{self.spec.model_id}\n{self.spec.template}\n{name}".encode()
        return self.cache_dir / f"{hashlib.sha256(key).hexdigest()}.npy"

    def _load_model(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoTokenizer, SiglipTextModel  # noqa: PLC0415 - heavy, only when needed

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model_path, local_files_only=not self.allow_download
            )
            self._model = SiglipTextModel.from_pretrained(
                self.model_path, local_files_only=not self.allow_download
            )
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"text model {self.model_path!r} is not available offline ({exc.__class__.__name__}). "
                "Fix: put the model in a local folder and pass its path, or pass precomputed class "
                "embeddings (a (C, 768) .npy file, e.g. --class-embeddings)."
            ) from exc
        self._model.eval().to(self.device)

    @torch.no_grad()
    def _embed_uncached(self, names: list[str]) -> np.ndarray:
        self._load_model()
        rows = []
        for start in range(0, len(names), 32):
            prompts = [self.spec.template.format(n) for n in names[start : start + 32]]
            tokens = self._tokenizer(
                prompts,
                padding="max_length",
                max_length=self.spec.max_length,
                truncation=True,
                return_tensors="pt",
            ).to(self.device)
            rows.append(self._model(**tokens).pooler_output.float().cpu().numpy())
        return np.concatenate(rows)

    def __call__(self, names: list[str]) -> torch.Tensor:
        if not names:
            raise ValueError("no class names given; pass at least one class name")
        raw: dict[str, np.ndarray] = {}
        for name in names:
            path = self._cache_file(name)
            if path.is_file():
                raw[name] = np.load(path)
        missing = [n for n in dict.fromkeys(names) if n not in raw]
        if missing:
            for name, row in zip(missing, self._embed_uncached(missing)):
                raw[name] = row
                try:
                    self.cache_dir.mkdir(parents=True, exist_ok=True)
                    np.save(self._cache_file(name), row)
                except OSError as exc:  # a read-only cache only costs speed
                    log.warning("could not write the text-embedding cache %s: %s", self.cache_dir, exc)
        return normalize_class_embeddings(np.stack([raw[n] for n in names]))
