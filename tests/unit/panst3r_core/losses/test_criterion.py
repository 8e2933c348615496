import pytest
import torch

from panst3r_core.losses.criterion import TOTAL_LOSS_NAME, CriterionConfig, PanopticCriterion
from panst3r_core.losses.targets import MultiViewTargets

BIG = 30.0
NUM_VIEWS = 4


def _targets(output_mask=(True, True, True, True)) -> MultiViewTargets:
    # Whole-view objects: sampling is exact everywhere, so a perfect prediction has ~0 loss.
    masks = torch.zeros(3, NUM_VIEWS, 8, 8, dtype=torch.bool)
    masks[0, :2] = True  # object 0 in views 0-1, absent in views 2-3
    masks[1, 2] = True
    masks[2, 3] = True
    return MultiViewTargets(masks, torch.tensor([2, 0, 1]), torch.tensor(output_mask))


def _perfect_outputs(targets_per_sample, query_of_target=(4, 1, 3), num_queries=6, num_classes=4):
    batch = len(targets_per_sample)
    logits = torch.full((batch, num_queries, num_classes), -BIG)
    masks = torch.full((batch, NUM_VIEWS, num_queries, 4, 4), -BIG)
    for b, targets in enumerate(targets_per_sample):
        for target_index in range(targets.num_objects):
            query = query_of_target[target_index]
            logits[b, query, targets.labels[target_index]] = BIG
            masks[b, :, query] = torch.where(targets.masks[target_index, :, ::2, ::2], BIG, -BIG)
    return {"pred_logits": logits.requires_grad_(), "pred_masks": masks.requires_grad_()}


def _criterion(**kwargs) -> PanopticCriterion:
    return PanopticCriterion(CriterionConfig(num_points=256, **kwargs))


def test_perfect_prediction_has_near_zero_loss():
    torch.manual_seed(0)
    losses = _criterion()(_perfect_outputs([_targets()]), [_targets()])
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", TOTAL_LOSS_NAME}
    for name, value in losses.items():
        assert value.item() < 1e-6, name


def test_object_absent_in_a_view_is_supervised_with_an_empty_target():
    torch.manual_seed(0)
    outputs = _perfect_outputs([_targets()])
    with torch.no_grad():
        outputs["pred_masks"][0, 2, 4] = BIG  # query 4 (object 0) wrongly claims view 2
    losses = _criterion()(outputs, [_targets()])
    # One (object, view) row with BCE 30 at every point; / num_masks (3) / V (4).
    torch.testing.assert_close(losses["loss_mask"], torch.tensor(30.0 / 3 / 4), rtol=1e-4, atol=1e-4)
    # Dice of that row: 1 - 1 / (P + 1) ~ 1, / 12.
    torch.testing.assert_close(losses["loss_dice"], torch.tensor(1.0 / 12), rtol=1e-2, atol=1e-3)
    expected_total = 20 * losses["loss_mask"] + losses["loss_dice"] + losses["loss_ce"]
    torch.testing.assert_close(losses[TOTAL_LOSS_NAME], expected_total)


def test_class_loss_value_and_output_mask_of_other_datasets():
    torch.manual_seed(0)
    # Sample 0 belongs to a dataset with classes {0, 1, 2}; class 3 is another dataset's.
    targets = [_targets((True, True, True, False)), _targets()]
    outputs = _perfect_outputs(targets)
    base = _criterion()(outputs, targets)["loss_ce"].item()
    with torch.no_grad():
        outputs["pred_logits"][0, 0, 3] = 0.0  # unmatched query, masked class: ignored
    assert _criterion()(outputs, targets)["loss_ce"].item() == pytest.approx(base, abs=1e-9)
    with torch.no_grad():
        outputs["pred_logits"][1, 0, 3] = 0.0  # same in the sample whose dataset has class 3
    loss_ce = _criterion()(outputs, targets)["loss_ce"].item()
    # Focal of logit 0 with target 0: 0.75 * 0.5^2 * log 2, / num_masks (6 objects in the batch).
    expected = 0.75 * 0.25 * torch.log(torch.tensor(2.0)).item() / 6
    assert loss_ce - base == pytest.approx(expected, rel=1e-5)


def test_deep_supervision_terms_and_weighted_total():
    torch.manual_seed(0)
    targets = [_targets()]
    final = _perfect_outputs(targets)
    aux = [
        {"pred_logits": torch.randn(1, 6, 4), "pred_masks": torch.randn(1, NUM_VIEWS, 6, 4, 4)}
        for _ in range(2)
    ]
    losses = _criterion()({**final, "aux_outputs": aux}, targets)
    expected_names = {f"{n}{s}" for n in ("loss_ce", "loss_mask", "loss_dice") for s in ("", "_0", "_1")}
    assert set(losses) == expected_names | {TOTAL_LOSS_NAME}
    weights = {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
    expected_total = sum(weights[name.rstrip("_0123456789")] * losses[name] for name in expected_names)
    torch.testing.assert_close(losses[TOTAL_LOSS_NAME], expected_total)
    assert losses["loss_mask_0"] > 0.1  # random aux predictions are far from perfect
    no_aux = _criterion(deep_supervision=False)({**final, "aux_outputs": aux}, targets)
    assert set(no_aux) == {"loss_ce", "loss_mask", "loss_dice", TOTAL_LOSS_NAME}


def test_batch_without_objects_clamps_num_masks_and_keeps_the_graph():
    empty = MultiViewTargets(
        torch.zeros(0, NUM_VIEWS, 8, 8, dtype=torch.bool),
        torch.zeros(0, dtype=torch.int64),
        torch.ones(4, dtype=torch.bool),
    )
    outputs = {
        "pred_logits": torch.zeros(1, 2, 4, requires_grad=True),
        "pred_masks": torch.zeros(1, NUM_VIEWS, 2, 4, 4, requires_grad=True),
    }
    losses = _criterion()(outputs, [empty])
    # num_masks clamped to 1: every (query, class) pair contributes focal(0, 0) = 0.75 * 0.25 * log 2.
    expected = 2 * 4 * 0.75 * 0.25 * torch.log(torch.tensor(2.0))
    torch.testing.assert_close(losses["loss_ce"], expected)
    assert losses["loss_mask"].item() == 0.0
    losses[TOTAL_LOSS_NAME].backward()
    assert outputs["pred_masks"].grad is not None


def test_gradient_flows_to_matched_masks_and_logits():
    torch.manual_seed(0)
    targets = [_targets()]
    outputs = {
        "pred_logits": torch.randn(1, 6, 4, requires_grad=True),
        "pred_masks": torch.randn(1, NUM_VIEWS, 6, 4, 4, requires_grad=True),
    }
    _criterion()(outputs, targets)[TOTAL_LOSS_NAME].backward()
    assert outputs["pred_logits"].grad.abs().sum() > 0
    # Exactly three queries are matched, so exactly three queries' masks receive gradient.
    per_query = outputs["pred_masks"].grad.abs().sum(dim=(0, 1, 3, 4))
    assert int((per_query > 0).sum()) == 3


def test_unsupported_label_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="label_mode"):
        CriterionConfig(label_mode="softmax")
