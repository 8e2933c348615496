import math

import pytest
import torch

from panst3r_core.engine.schedule import learning_rate_at, set_learning_rate

LR, MIN_LR, WARMUP, EPOCHS = 1e-4, 1e-6, 5, 200


def test_warmup_is_linear_from_zero():
    assert learning_rate_at(0.0, LR, MIN_LR, WARMUP, EPOCHS) == 0.0
    assert learning_rate_at(2.5, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx(LR / 2)
    assert learning_rate_at(4.999, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx(LR * 4.999 / 5)


def test_cosine_after_warmup_end_middle_and_end():
    assert learning_rate_at(5.0, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx(LR)
    middle = WARMUP + (EPOCHS - WARMUP) / 2
    assert learning_rate_at(middle, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx((LR + MIN_LR) / 2)
    quarter = WARMUP + (EPOCHS - WARMUP) / 4
    expected = MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi / 4))
    assert learning_rate_at(quarter, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx(expected)
    assert learning_rate_at(EPOCHS, LR, MIN_LR, WARMUP, EPOCHS) == pytest.approx(MIN_LR)


def test_set_learning_rate_respects_lr_scale():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:], "lr_scale": 0.1}])
    set_learning_rate(optimizer, 2e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-4, pytest.approx(2e-5)]
