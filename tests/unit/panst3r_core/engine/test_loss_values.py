import math

import pytest
import torch

from panst3r_core.engine.loss_values import LossValues, NonFiniteLossGuard, RunningMeans


def _losses(generator: torch.Generator) -> dict[str, torch.Tensor]:
    values = torch.rand(3, generator=generator, dtype=torch.float32) * 10
    return {"loss_ce": values[0], "loss_mask": values[1], "panoptic_loss": values[2]}


def test_loss_values_read_as_the_floats_of_each_term():
    losses = _losses(torch.Generator().manual_seed(0))
    values = LossValues(losses)
    assert list(values) == ["loss_ce", "loss_mask", "panoptic_loss"] and len(values) == 3
    assert dict(values) == {name: float(tensor.item()) for name, tensor in losses.items()}
    assert values == {name: float(tensor.item()) for name, tensor in losses.items()}


def test_loss_values_detach_from_the_graph():
    weight = torch.ones((), requires_grad=True)
    values = LossValues({"total": weight * 2})
    assert not values.stacked.requires_grad and values["total"] == 2.0


def test_running_means_equal_the_means_of_python_floats_bit_for_bit():
    generator = torch.Generator().manual_seed(1)
    means, sums, count = RunningMeans(), {}, 0
    for index in range(37):
        losses = _losses(generator)
        timings = {"iteration_s": 0.1 * index + 1 / 3}
        means.add(LossValues(losses), timings)
        for name, value in [*((n, float(t.item())) for n, t in losses.items()), *timings.items()]:
            sums[name] = sums.get(name, 0.0) + value
        count += 1
    assert means.means() == {name: value / count for name, value in sums.items()}


def test_running_means_merge_iterations_with_different_terms():
    means = RunningMeans()
    means.add(LossValues({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}))
    means.add(LossValues({"a": torch.tensor(3.0)}))
    assert means.means() == {"a": 2.0, "b": 1.0}
    assert RunningMeans().means() == {}


def test_guard_passes_finite_totals_and_forgets_them():
    guard = NonFiniteLossGuard()
    for step in range(5):
        guard.note(step, torch.tensor(float(step)))
    guard.check()
    assert guard.pending == []
    guard.check()  # nothing pending: no read


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_guard_names_the_first_step_whose_loss_was_not_finite(bad):
    guard = NonFiniteLossGuard()
    for step, value in enumerate([1.0, 2.0, bad, bad, 3.0]):
        guard.note(step, torch.tensor(value))
    with pytest.raises(FloatingPointError, match=rf"loss is {bad} at step 2; stopping \(lower training.lr"):
        guard.check()
