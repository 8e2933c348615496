import torch

from panst3r_core.losses.matcher import (
    HungarianMatcher,
    padded_targets,
    pairwise_dice_cost,
    pairwise_sigmoid_bce_cost,
)
from panst3r_core.losses.targets import MultiViewTargets

BIG = 30.0


def _whole_view_targets() -> MultiViewTargets:
    # 4 views of 8x8; object 0 fills views 0-1, object 1 fills view 2, object 2 fills view 3.
    masks = torch.zeros(3, 4, 8, 8, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 2] = True
    masks[2, 3] = True
    return MultiViewTargets(
        masks=masks, labels=torch.tensor([2, 0, 1]), output_mask=torch.ones(4, dtype=torch.bool)
    )


def _perfect_prediction(targets: MultiViewTargets, query_of_target: list[int], num_queries: int):
    num_classes = targets.output_mask.numel()
    logits = torch.full((num_queries, num_classes), -BIG)
    masks = torch.full((4, num_queries, 4, 4), -BIG)  # (V, Q, h, w) at half resolution
    for target_index, query in enumerate(query_of_target):
        logits[query, targets.labels[target_index]] = BIG
        present = targets.masks[target_index, :, ::2, ::2]  # (V, 4, 4)
        masks[:, query] = torch.where(present, BIG, -BIG)
    return logits, masks


def test_pairwise_costs_against_direct_computation():
    torch.manual_seed(0)
    pred = torch.randn(3, 10)
    target = (torch.rand(2, 10) > 0.5).float()
    bce = pairwise_sigmoid_bce_cost(pred, target)
    dice = pairwise_dice_cost(pred, target)
    for q in range(3):
        for m in range(2):
            direct_bce = torch.nn.functional.binary_cross_entropy_with_logits(pred[q], target[m])
            p = pred[q].sigmoid()
            direct_dice = 1 - (2 * (p * target[m]).sum() + 1) / (p.sum() + target[m].sum() + 1)
            torch.testing.assert_close(bce[q, m], direct_bce)
            torch.testing.assert_close(dice[q, m], direct_dice)


def test_matching_recovers_the_permutation_of_a_perfect_prediction():
    torch.manual_seed(0)
    targets = _whole_view_targets()
    query_of_target = [4, 1, 3]
    logits, masks = _perfect_prediction(targets, query_of_target, num_queries=6)
    (match,) = HungarianMatcher(num_points=64)(logits[None], masks[None], [targets])
    pairs = dict(zip(match.target_indices.tolist(), match.query_indices.tolist()))
    assert pairs == {0: 4, 1: 1, 2: 3}


def test_class_cost_decides_between_identical_masks():
    torch.manual_seed(0)
    targets = _whole_view_targets()
    logits, masks = _perfect_prediction(targets, [0, 1, 2], num_queries=3)
    # Queries 1 and 2 swap classes only; masks would pull to the right object, classes to the wrong one.
    masks[:, 1] = masks[:, 2] = -BIG
    masks[2, 1] = masks[2, 2] = BIG  # both queries predict "fills view 2"
    logits[1], logits[2] = logits[2].clone(), logits[1].clone()
    cost = HungarianMatcher(num_points=64).cost_matrix(logits, masks, targets)
    # Same masks -> the query carrying object 1's class (query 2) is cheaper for object 1.
    assert cost[2, 1] < cost[1, 1]
    (match,) = HungarianMatcher(num_points=64)(logits[None], masks[None], [targets])
    assert dict(zip(match.target_indices.tolist(), match.query_indices.tolist()))[1] == 2


def test_empty_sample_gives_empty_match():
    targets = MultiViewTargets(
        masks=torch.zeros(0, 2, 4, 4, dtype=torch.bool),
        labels=torch.zeros(0, dtype=torch.int64),
        output_mask=torch.ones(3, dtype=torch.bool),
    )
    (match,) = HungarianMatcher(num_points=8)(torch.randn(1, 5, 3), torch.randn(1, 2, 5, 2, 2), [targets])
    assert match.query_indices.numel() == 0 and match.target_indices.numel() == 0


def _random_batch(counts, views=3, queries=12, classes=6, size=(16, 12)):
    height, width = size
    logits = torch.randn(len(counts), queries, classes)
    masks = torch.randn(len(counts), views, queries, height // 2, width // 2) * 3
    targets = [
        MultiViewTargets(
            masks=torch.rand(count, views, height, width) > 0.6,
            labels=torch.randint(0, classes, (count,)),
            output_mask=torch.ones(classes, dtype=torch.bool),
        )
        for count in counts
    ]
    return logits, masks, targets


def test_a_batch_matches_as_its_samples_do_one_by_one():
    # One point draw for the batch equals one draw per sample in order (CPU generator), so the batched
    # costs, their padding and the sample of each object must reproduce the per-sample results exactly.
    torch.manual_seed(0)
    counts = [3, 0, 5, 1]
    logits, masks, targets = _random_batch(counts)
    matcher = HungarianMatcher(num_points=40)
    torch.manual_seed(1)
    batched = matcher(logits, masks, targets)
    torch.manual_seed(1)
    one_by_one = [matcher(logits[b : b + 1], masks[b : b + 1], [targets[b]])[0] for b in range(len(counts))]
    for got, expected in zip(batched, one_by_one):
        assert torch.equal(got.query_indices, expected.query_indices)
        assert torch.equal(got.target_indices, expected.target_indices)
    assert [m.target_indices.numel() for m in batched] == counts


def test_batch_costs_equal_each_samples_cost_matrix():
    torch.manual_seed(2)
    counts = [2, 4]
    logits, masks, targets = _random_batch(counts)
    matcher = HungarianMatcher(num_points=32)
    padded = padded_targets(targets)
    assert padded.labels.shape == (2, 4) and padded.masks.shape == (2, 3, 4, 16, 12)
    assert padded.counts == counts
    assert not padded.masks[0, :, 2:].any() and torch.equal(padded.masks[1, :, 3], targets[1].masks[3])
    torch.manual_seed(3)
    costs = matcher.batch_costs(logits, masks, padded)
    assert costs.shape == (2, 12, 4)  # sample 0's last two columns are padding
    torch.manual_seed(3)
    first = matcher.cost_matrix(logits[0], masks[0], targets[0])
    second = matcher.cost_matrix(logits[1], masks[1], targets[1])
    # equal up to float32 rounding: the batched product's blocking depends on the padded width
    torch.testing.assert_close(costs[0, :, :2], first)
    torch.testing.assert_close(costs[1], second)
