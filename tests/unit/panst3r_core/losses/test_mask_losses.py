import math

import torch

from panst3r_core.losses.mask_losses import dice_loss, sigmoid_bce_loss


def test_bce_is_mean_over_points_summed_over_rows_and_normalised():
    logits = torch.tensor([[0.0, 0.0], [100.0, -100.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Row 0: log 2 at both points; row 1: ~0.
    torch.testing.assert_close(
        sigmoid_bce_loss(logits, labels, normaliser=2.0), torch.tensor(math.log(2) / 2)
    )


def test_dice_with_plus_one_smoothing():
    logits = torch.tensor(
        [[100.0, 100.0, -100.0, -100.0], [-100.0, -100.0, -100.0, -100.0], [0.0, 0.0, 0.0, 0.0]]
    )
    labels = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # Perfect row: 0. Empty predicted empty: 1 - 1/1 = 0. Half-probabilities: 1 - (2*0.5 + 1)/(2 + 1 + 1).
    expected = 1 - 2.0 / 4.0
    torch.testing.assert_close(dice_loss(logits, labels, normaliser=1.0), torch.tensor(expected))
