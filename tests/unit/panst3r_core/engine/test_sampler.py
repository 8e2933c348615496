import pytest

from panst3r_core.engine.sampler import BatchedViewSampler


def make(**kwargs):
    defaults = dict(
        dataset_size=10,
        batch_size=3,
        num_resolutions=5,
        min_memory_num_views=2,
        max_memory_num_views=5,
        samples_per_epoch=24,
        seed=777,
    )
    defaults.update(kwargs)
    return BatchedViewSampler(**defaults)


def test_plan_is_deterministic_per_epoch_and_differs_between_epochs():
    a, b = make(), make()
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    b.set_epoch(5)
    assert list(a) != list(b)
    assert len(a) == 8


def test_batch_shares_resolution_and_memory_views_within_range():
    sampler = make(samples_per_epoch=300, dataset_size=50)
    sampler.set_epoch(0)
    resolutions, memory = set(), set()
    for batch in sampler:
        assert len(batch) == 3
        assert len({k.resolution_index for k in batch}) == 1
        assert len({k.memory_num_views for k in batch}) == 1
        resolutions.add(batch[0].resolution_index)
        memory.add(batch[0].memory_num_views)
    assert resolutions == {0, 1, 2, 3, 4}
    assert memory == {2, 3, 4, 5}


def test_every_sample_once_before_repeats_and_unique_seeds():
    sampler = make(dataset_size=10, batch_size=2, samples_per_epoch=20)
    sampler.set_epoch(1)
    keys = [k for batch in sampler for k in batch]
    assert sorted(k.index for k in keys[:10]) == list(range(10))
    assert len({k.seed for k in keys}) == 20


def test_start_mid_epoch_and_state_round_trip():
    sampler = make()
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=5)
    assert list(sampler) == full[5:]
    assert len(sampler) == 3
    restored = make()
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == full[5:]
    with pytest.raises(ValueError, match="batch_size was 3"):
        make(batch_size=2).load_state_dict(sampler.state_dict())


def test_ranks_get_disjoint_slices_of_one_plan():
    single = make(samples_per_epoch=24, batch_size=3)
    single.set_epoch(0)
    ranks = [make(samples_per_epoch=24, batch_size=3, world_size=2, rank=r) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(0)
    batches = [list(s) for s in ranks]
    assert len(batches[0]) == len(batches[1]) == 4
    seeds = [k.seed for rank_batches in batches for batch in rank_batches for k in batch]
    assert len(set(seeds)) == 24


def test_cap_and_errors():
    assert len(make(max_batches_per_epoch=2)) == 2
    with pytest.raises(ValueError, match="cannot fill one batch"):
        make(samples_per_epoch=2)
    with pytest.raises(ValueError, match="empty"):
        make(dataset_size=0)


def test_one_iteration_runs_through_several_epochs_from_a_resume_point():
    sampler = make()
    plans = {epoch: sampler.epoch_plan(epoch) for epoch in (2, 3, 4)}
    sampler.set_epoch(2, start_batch=5, end_epoch=5)
    assert list(sampler) == plans[2][5:] + plans[3] + plans[4]
    assert len(sampler) == 3 + 8 + 8
    sampler.set_epoch(2)  # the default: this epoch only
    assert list(sampler) == plans[2]
    with pytest.raises(ValueError, match="end epoch 2 must come after"):
        sampler.set_epoch(2, end_epoch=2)
