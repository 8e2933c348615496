import math

import torch

from panst3r_core.losses.focal import sigmoid_focal_loss


def test_focal_matches_the_formula_for_positive_and_negative_targets():
    logits = torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=torch.float64)
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    expected = []
    for x, t in zip(logits.tolist(), targets.tolist()):
        p = 1 / (1 + math.exp(-x))
        if t == 1:
            expected.append(0.25 * (1 - p) ** 2 * -math.log(p))
        else:
            expected.append(0.75 * p**2 * -math.log(1 - p))
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets), torch.tensor(expected, dtype=torch.float64)
    )


def test_gamma_zero_and_no_alpha_is_plain_bce():
    logits = torch.randn(5, 3)
    targets = (torch.rand(5, 3) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0), bce)
