"""KeptLogits: chunks come back bit for bit and in order, from memory or from disk past the budget."""

from __future__ import annotations

import torch

from panst3r_core.postprocess.kept_logits import ALIGNMENT, KeptLogits, PinnedSlabs, available_host_bytes


def _chunk(seed: int, dtype=torch.float32) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 6, 8, generator=generator).to(dtype) for _ in range(2)]


def _round_trip(store: KeptLogits, chunks: list[list[torch.Tensor]]) -> None:
    for index, tensors in enumerate(chunks):
        store.put([2 * index, 2 * index + 1], [(12, 16)] * 2, tensors)
    read = list(store.read(torch.device("cpu")))
    assert [r[0] for r in read] == [[2 * i, 2 * i + 1] for i in range(len(chunks))]
    for (_, shapes, tensors), expected in zip(read, chunks, strict=True):
        assert shapes == [(12, 16)] * 2
        for got, want in zip(tensors, expected, strict=True):
            assert got.dtype == want.dtype and torch.equal(got, want)


def test_within_the_budget_nothing_touches_disk(tmp_path):
    store = KeptLogits(tmp_path, host_budget_bytes=10**9)
    _round_trip(store, [_chunk(0), _chunk(1, torch.bfloat16)])
    assert store.spilled_chunks == 0 and not list(tmp_path.iterdir())


def test_past_the_budget_chunks_spill_to_the_given_folder(tmp_path):
    per_chunk = 2 * 5 * 6 * 8 * 4
    store = KeptLogits(tmp_path, host_budget_bytes=per_chunk)  # room for the first chunk only
    _round_trip(store, [_chunk(0), _chunk(1), _chunk(2)])
    assert store.spilled_chunks == 2 and len(list(tmp_path.iterdir())) == 2
    store.close()
    assert len(list(tmp_path.iterdir())) == 2  # a folder the caller gave is the caller's to clean


def test_a_store_without_a_folder_spills_to_its_own_and_removes_it():
    store = KeptLogits(host_budget_bytes=0)
    _round_trip(store, [_chunk(3, torch.bfloat16)])
    folder = store.spill_dir
    assert folder is not None and folder.is_dir() and store.spilled_chunks == 1
    store.close()
    assert not folder.exists() and store.chunks == []


def test_the_default_budget_is_a_share_of_available_memory():
    assert 0 < KeptLogits().host_budget <= available_host_bytes()


def test_slab_tensors_are_aligned_and_disjoint():
    slabs = PinnedSlabs(slab_bytes=4096, pin=torch.cuda.is_available())
    tensors = [slabs.empty(torch.Size([3, 7]), torch.float32) for _ in range(5)]
    tensors.append(slabs.empty(torch.Size([3000]), torch.bfloat16))  # over a slab: a block of its own
    tensors.append(slabs.empty(torch.Size([400]), torch.float64))  # no room left in the first slab
    for i, tensor in enumerate(tensors):
        tensor.fill_(i)
    for i, tensor in enumerate(tensors):
        assert torch.all(tensor == i)
    base = slabs.slabs[0].data_ptr()
    assert [t.data_ptr() - base for t in tensors[:5]] == [k * ALIGNMENT for k in range(5)]
    assert len(slabs.slabs) == 2 and tensors[6].data_ptr() == slabs.slabs[1].data_ptr()


def test_an_abandoned_store_removes_its_own_spill_folder():
    store = KeptLogits(host_budget_bytes=0)
    store.put([0], [(12, 16)], _chunk(4)[:1])
    folder = store.spill_dir
    assert folder.is_dir()
    del store  # a run that failed before its last pass
    assert not folder.exists()
