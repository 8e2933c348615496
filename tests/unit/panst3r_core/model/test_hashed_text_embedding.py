import numpy as np
import pytest
import torch

from panst3r_core.model.hashed_text_embedding import (
    EMBED_DIM,
    HashedTextEmbedder,
    class_name_seed,
    hashed_class_embeddings,
    normalise_class_name,
)


def test_shape_dtype_and_unit_norm():
    emb = hashed_class_embeddings(["wall", "floor", "chair"])
    assert emb.shape == (3, EMBED_DIM) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-6, rtol=0)


def test_normalised_names_share_a_vector_and_others_differ():
    emb = hashed_class_embeddings(["window", "  Window ", "WINDOW\tframe", "window frame", "door"])
    assert torch.equal(emb[0], emb[1])
    assert torch.equal(emb[2], emb[3])
    assert not torch.equal(emb[0], emb[4])
    # random 768-d unit vectors are nearly orthogonal
    assert abs(float(emb[0] @ emb[4])) < 0.2
    assert normalise_class_name("  Ceiling   Lamp ") == "ceiling lamp"


def test_golden_values_do_not_drift():
    # pinned: a change here silently invalidates every checkpoint trained with `hashed`
    assert class_name_seed("wall") == class_name_seed(" WALL ")
    emb = hashed_class_embeddings(["wall", "floor"]).numpy()
    np.testing.assert_allclose(emb[0, :4], [0.04241349, 0.00365208, -0.00463302, -0.05091092], atol=1e-7)
    np.testing.assert_allclose(emb[1, :3], [0.00867641, -0.00379356, -0.0162809], atol=1e-7)


def test_embedder_callable_and_empty_errors():
    embedder = HashedTextEmbedder()
    assert embedder.name == "hashed"
    assert torch.equal(embedder(["lamp"]), hashed_class_embeddings(["lamp"]))
    with pytest.raises(ValueError, match="no class names"):
        hashed_class_embeddings([])
    with pytest.raises(ValueError, match="empty"):
        hashed_class_embeddings(["  "])
