"""View tuples: overlap-connected growth, the memory-view rule, duplicates only when candidates run out."""

import numpy as np
import pytest

from datasets.training.view_tuples import NeighbourGraph, select_view_tuple


def chain(n: int) -> np.ndarray:
    return np.array([(i, i + 1) for i in range(n - 1)])


def test_graph_is_symmetric_sorted_and_ignores_self_and_repeated_pairs():
    graph = NeighbourGraph.from_pairs(np.array([(0, 2), (2, 0), (1, 1), (2, 3), (0, 2)]), num_images=5)
    assert graph.of(0).tolist() == [2]
    assert graph.of(2).tolist() == [0, 3]
    assert graph.of(3).tolist() == [2]
    assert graph.of(1).tolist() == [] and graph.of(4).tolist() == []


def test_graph_rejects_ids_outside_the_image_range():
    with pytest.raises(ValueError, match="outside"):
        NeighbourGraph.from_pairs(np.array([(0, 7)]), num_images=3)


def random_graph(rng, num_images=30, num_pairs=45):
    pairs = rng.integers(0, num_images, size=(num_pairs, 2))
    return NeighbourGraph.from_pairs(pairs, num_images), pairs[pairs[:, 0] != pairs[:, 1]]


def test_every_view_after_the_pair_overlaps_an_earlier_view():
    rng = np.random.default_rng(0)
    for trial in range(200):
        graph, pairs = random_graph(rng)
        a, b = (int(x) for x in pairs[trial % len(pairs)])
        views, distinct = select_view_tuple(graph, a, b, 5, int(rng.integers(1, 6)), rng)
        assert len(views) == 5 and views[:2] == [a, b]
        assert len(set(views[:distinct])) == distinct
        for position in range(2, distinct):
            assert set(graph.of(views[position]).tolist()) & set(views[:position]), (views, position)
        assert set(views[distinct:]) <= set(views[:distinct])


def test_duplicates_only_when_the_component_is_exhausted():
    graph = NeighbourGraph.from_pairs(np.concatenate([chain(3), chain(6)[:, ::-1] + 3]), num_images=9)
    rng = np.random.default_rng(1)
    for _ in range(50):
        small, distinct = select_view_tuple(graph, 0, 1, 5, 5, rng)
        assert distinct == 3 and sorted(set(small)) == [0, 1, 2] and len(small) == 5
        large, distinct = select_view_tuple(graph, 3, 4, 5, 5, rng)
        assert distinct == 5 and len(set(large)) == 5  # 6 images reachable: never a duplicate


def test_only_memory_views_add_their_neighbours():
    graph = NeighbourGraph.from_pairs(chain(6), num_images=6)
    rng = np.random.default_rng(2)
    # Start (0, 1): candidates {2}. With 2 memory views, view 2 (the third) adds no neighbours -> 3 distinct.
    views, distinct = select_view_tuple(graph, 0, 1, 5, 2, rng)
    assert views[:3] == [0, 1, 2] and distinct == 3
    # With 5 memory views every new view extends the frontier along the chain.
    views, distinct = select_view_tuple(graph, 0, 1, 5, 5, rng)
    assert views == [0, 1, 2, 3, 4] and distinct == 5


def test_same_generator_state_gives_the_same_tuple():
    graph, _ = random_graph(np.random.default_rng(3))
    first = select_view_tuple(graph, 0, 1, 5, 3, np.random.default_rng(9))
    again = select_view_tuple(graph, 0, 1, 5, 3, np.random.default_rng(9))
    assert first == again
