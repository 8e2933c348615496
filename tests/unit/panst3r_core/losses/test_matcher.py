import torch

from panst3r_core.losses.matcher import HungarianMatcher, pairwise_dice_cost, pairwise_sigmoid_bce_cost
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
