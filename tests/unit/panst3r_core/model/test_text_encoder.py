from __future__ import annotations

import numpy as np
import pytest
import torch

from panst3r_core.model.text_encoder import TextEncoder, normalize_class_embeddings


def test_precomputed_embeddings_are_l2_normalised():
    raw = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    assert torch.allclose(normalize_class_embeddings(raw), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(C, D\)"):
        normalize_class_embeddings(np.zeros(3))


def test_cached_embeddings_need_no_text_model(tmp_path):
    encoder = TextEncoder("siglip", model_path=str(tmp_path / "no_model_here"), cache_dir=tmp_path)
    for name, row in (("wall", [1.0, 1.0]), ("floor", [0.0, 5.0])):
        np.save(encoder._cache_file(name), np.array(row, dtype=np.float32))
    out = encoder(["floor", "wall", "floor"])
    assert torch.allclose(out, torch.tensor([[0.0, 1.0], [0.7071068, 0.7071068], [0.0, 1.0]]))


def test_missing_model_offline_is_a_clear_error(tmp_path):
    encoder = TextEncoder("siglip", model_path=str(tmp_path / "no_model_here"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not available offline.*class embeddings"):
        encoder(["chair"])
    with pytest.raises(ValueError, match="not supported"):
        TextEncoder("bert")
