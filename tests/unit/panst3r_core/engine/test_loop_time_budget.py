"""The time-budget stop (training.time_budget_s) and gradient clipping (training.clip_grad) of the loop."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from panst3r_core.engine import loop as loop_module
from panst3r_core.engine.checkpointing import read_progress, read_training_state
from panst3r_core.engine.config import TrainingConfig
from panst3r_core.engine.loop import train

from .test_loop import Recorder, _run, make_config, make_data, make_model


def _launch(tmp_path, name, model_seed, **training):
    recorder = Recorder()
    model = make_model(model_seed)
    config = make_config(tmp_path / name, **training)
    result = train(config, model, make_data(), callbacks=[recorder], device="cpu")
    return recorder, model, result


def test_zero_budget_launches_one_step_each_and_together_match_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    expected, expected_model, expected_result = _run(tmp_path, "reference")
    assert expected_result.global_step == 6 and not expected_result.stopped_early

    results, iterations = [], []
    for launch in range(10):
        # The fresh launch starts from the reference's weights; every later one builds its model from another
        # seed, which the checkpoint must override entirely.
        seed = 0 if launch == 0 else 100 + launch
        recorder, model, result = _launch(tmp_path, "budget", model_seed=seed, time_budget_s=0)
        results.append(result)
        iterations += recorder.iterations
        if not result.stopped_early:
            break
    # A spent budget stops at the first optimizer step of every launch, mid-epoch or at an epoch end.
    assert [(r.start_step, r.global_step) for r in results] == [(k, k + 1) for k in range(6)]
    assert [r.stopped_early for r in results] == [True] * 5 + [False]
    assert all(r.final_checkpoint is None for r in results[:-1])
    assert results[-1].final_checkpoint is not None and results[-1].final_checkpoint.is_dir()
    assert all(r.seconds >= 0 for r in results)
    # Stops mid-epoch (after batch 2 of 4) and at epoch ends leave checkpoint-last where the next launch starts.
    assert read_progress(tmp_path / "budget" / "checkpoint-last").global_step == 6

    assert [it[:3] for it in iterations] == [it[:3] for it in expected.iterations]
    for got, want in zip(iterations, expected.iterations):
        assert got[3] == want[3], f"losses differ at {got[0]}"  # exact float equality
    for key, value in expected_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_no_budget_and_a_large_budget_run_to_the_end(tmp_path):
    torch.set_num_threads(1)
    _, _, result = _launch(tmp_path, "large", model_seed=0, epochs=1, time_budget_s=3600)
    assert not result.stopped_early and result.global_step == 2 and result.start_step == 0


def test_steady_rate_is_timed_after_the_first_steps_of_each_launch(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(loop_module, "STEADY_AFTER_STEPS", 2)
    _, _, result = _launch(tmp_path, "whole", model_seed=0)
    assert result.global_step == 6 and result.steady_steps == 4
    assert 0 < result.steady_seconds <= result.seconds
    # A launch shorter than the warm-up steps times no steady state.
    _, _, short = _launch(tmp_path, "short", model_seed=0, time_budget_s=0)
    assert (short.global_step, short.steady_steps, short.steady_seconds) == (1, 0, 0.0)


def _first_moment_norm(checkpoint) -> float:
    state = read_training_state(checkpoint)["optimizer"]["state"]
    return float(torch.sqrt(sum(entry["exp_avg"].double().square().sum() for entry in state.values())))


def test_clip_grad_bounds_the_total_gradient_norm_of_the_step(tmp_path):
    torch.set_num_threads(1)
    # After one AdamW step exp_avg = (1 - beta1) * gradient, so its norm is 0.1 x the (clipped) gradient norm.
    _launch(tmp_path, "free", model_seed=0, time_budget_s=0)
    _launch(tmp_path, "clipped", model_seed=0, time_budget_s=0, clip_grad=1e-3)
    free = _first_moment_norm(tmp_path / "free" / "checkpoint-last")
    clipped = _first_moment_norm(tmp_path / "clipped" / "checkpoint-last")
    assert free > 1e-3  # the unclipped gradient norm is well above the limit ...
    assert clipped == pytest.approx(0.1 * 1e-3, rel=1e-4)  # ... and the clipped one sits on it


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("clip_grad", 0.0, "clip_grad"), ("time_budget_s", -1.0, "time_budget_s")],
)
def test_invalid_clip_and_budget_values_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**{field: value})


def _budget_worker(rank, world_size, init_file, root, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        # Only rank 0 runs out of time: the stop decision is shared, so rank 1 stops at the same step.
        config = make_config(
            f"{root}/run", epochs=2, batch_size=1, time_budget_s=0.0 if rank == 0 else 3600.0
        )
        result = train(config, make_model(rank), make_data(), callbacks=[Recorder()], device="cpu")
        results[rank] = (result.stopped_early, result.global_step)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # gloo threads can abort at interpreter exit (environment notes)


def test_ranks_agree_on_the_time_budget_stop(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(
            _budget_worker, args=(2, str(tmp_path / "init"), str(tmp_path), results), nprocs=2, join=True
        )
        results = dict(results)
    assert results == {0: (True, 1), 1: (True, 1)}
    assert read_progress(tmp_path / "run" / "checkpoint-last").global_step == 1
