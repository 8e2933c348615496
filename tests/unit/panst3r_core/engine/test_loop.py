import json

import pytest
import torch

from panst3r_core.engine.callbacks import JsonlMetricsWriter
from panst3r_core.engine.checkpointing import (
    find_resume_checkpoint,
    load_weights,
    read_progress,
    read_training_state,
)
from panst3r_core.engine.config import TrainConfig
from panst3r_core.engine.loop import TrainData, seed_everything, train
from panst3r_core.training_timings import DATA_WAIT_SECONDS, ITERATION_SECONDS

from .toy import Recorder, ToyPanSt3R, ToyViewDataset, class_embeddings, loop_config, loop_data

RESOLUTIONS = [(32, 32), (48, 32)]


def make_config(output_dir, **training) -> TrainConfig:
    defaults = dict(
        seed=3,
        batch_size=2,
        accum_iter=2,
        epochs=3,
        lr=5e-3,
        min_lr=1e-5,
        warmup_epochs=1,
        print_freq=1,
        keep_freq=2,
        checkpoint_every_steps=1,
        num_workers=0,
    )
    defaults.update(training)
    return loop_config(output_dir, "toy", 3, RESOLUTIONS, samples_per_epoch=8, num_points=64, **defaults)


def make_data(num_workers: int = 0) -> TrainData:
    dataset = ToyViewDataset(size=6, num_views=3, resolutions=RESOLUTIONS)
    return loop_data(dataset, class_embeddings(), num_workers)


def make_model(seed: int) -> ToyPanSt3R:
    seed_everything(seed)
    return ToyPanSt3R()


def state_of(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _run(tmp_path, name, stop_at=None, model_seed=0, num_workers=0, **training):
    recorder = Recorder(stop_at)
    model = make_model(model_seed)
    config = make_config(tmp_path / name, **training)
    result = train(config, model, make_data(num_workers), callbacks=[recorder], device="cpu")
    return recorder, model, result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.set_num_threads(1)
    return _run(tmp_path_factory.mktemp("reference"), "run")


def test_uninterrupted_run_steps_logs_and_checkpoints(reference, tmp_path):
    recorder, model, result = reference
    # 8 samples / batch 2 = 4 batches per epoch, accum 2 -> 2 optimizer steps per epoch, 3 epochs.
    assert result.global_step == 6
    assert [it[0] for it in recorder.iterations] == [(e, b) for e in range(3) for b in range(4)]
    assert recorder.epochs == [0, 1, 2]
    assert [step for step, _ in recorder.logs] == [1, 2, 3, 4, 5, 6]
    assert {
        "loss_ce",
        "loss_mask",
        "loss_dice",
        "loss_ce_0",
        "loss_mask_1",
        "panoptic_loss",
        "lr",
        "epoch",
    } <= set(recorder.logs[0][1])
    out = result.output_dir
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint-0",
        "checkpoint-2",
        "checkpoint-final",
        "checkpoint-last",
    ]
    assert read_progress(out / "checkpoint-last").global_step == 6
    assert read_progress(out / "checkpoint-0").epoch == 1
    # Learning rate: warm-up over epoch 0 (0 at its first batch), then cosine.
    lrs = [it[2] for it in recorder.iterations]
    assert lrs[0] == 0.0 and lrs[2] == pytest.approx(5e-3 * 0.5)
    final = ToyPanSt3R()
    load_weights(final, result.final_checkpoint)
    for key, value in final.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_frozen_backbones_stay_fixed_and_decoder_learns(reference):
    _, model, _ = reference
    initial = make_model(0)
    for name in ("must3r_encoder", "must3r_decoder", "dino_encoder"):
        for key, value in getattr(initial, name).state_dict().items():
            assert torch.equal(value, getattr(model, name).state_dict()[key]), f"{name}.{key} changed"
    changed = [
        key
        for key, value in initial.panoptic_decoder.state_dict().items()
        if not torch.equal(value, model.panoptic_decoder.state_dict()[key])
    ]
    assert "query_embed" in changed and "lang_embed.weight" in changed


def test_finetune_switches_train_the_backbones(tmp_path):
    torch.set_num_threads(1)
    _, model, _ = _run(
        tmp_path,
        "ft",
        epochs=1,
        finetune_must3r_encoder=True,
        finetune_must3r_decoder=True,
        finetune_dino=True,
    )
    initial = make_model(0)
    for name in ("must3r_encoder", "must3r_decoder", "dino_encoder"):
        assert not torch.equal(getattr(initial, name).weight, getattr(model, name).weight), name


@pytest.mark.parametrize("stop_at", [(1, 2), (2, 0)], ids=["mid-epoch", "epoch-start"])
def test_killed_and_resumed_run_matches_the_uninterrupted_one_bit_for_bit(reference, tmp_path, stop_at):
    torch.set_num_threads(1)
    expected, expected_model, _ = reference
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "run", stop_at=stop_at)
    checkpoint = find_resume_checkpoint(tmp_path / "run")
    assert checkpoint is not None
    # A fresh process would build the model from another state; the checkpoint must override all of it.
    resumed, resumed_model, result = _run(tmp_path, "run", model_seed=99)
    assert result.resumed_from == checkpoint
    assert resumed.starts[0][:2] == stop_at
    expected_after = [it for it in expected.iterations if it[0] >= stop_at]
    assert [it[0] for it in resumed.iterations] == [it[0] for it in expected_after]
    for got, want in zip(resumed.iterations, expected_after):
        assert got[1:3] == want[1:3], got[0]
        assert got[3] == want[3], f"losses differ at {got[0]}"  # exact float equality
    for key, value in expected_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


def test_resume_with_loader_workers_is_exact(tmp_path):
    torch.set_num_threads(1)
    plain, plain_model, _ = _run(tmp_path, "plain", epochs=2, num_workers=0)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "workers", stop_at=(1, 2), epochs=2, num_workers=2)
    resumed, resumed_model, _ = _run(tmp_path, "workers", model_seed=5, epochs=2, num_workers=2)
    # Samples are built from their key's seed, so workers change nothing: same losses as in-process loading.
    assert [it[3] for it in resumed.iterations] == [it[3] for it in plain.iterations if it[0] >= (1, 2)]
    for key, value in plain_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


class CountingLoader:
    """Wraps a loader and counts the iterators taken from it."""

    def __init__(self, loader):
        self.loader, self.iterators = loader, 0

    def __iter__(self):
        self.iterators += 1
        return iter(self.loader)


def test_one_pass_over_the_loader_feeds_every_epoch_and_windows_are_timed(reference, tmp_path):
    loaders = []
    data = make_data()
    make_loader = data.make_loader
    data.make_loader = lambda sampler: loaders.append(CountingLoader(make_loader(sampler))) or loaders[-1]
    recorder = Recorder()
    train(make_config(tmp_path / "run"), make_model(0), data, callbacks=[recorder], device="cpu")
    # Three epochs from one iterator: loader workers never restart (and refill) at an epoch boundary.
    assert [loader.iterators for loader in loaders] == [1]
    reference_recorder = reference[0]
    assert [it[3] for it in recorder.iterations] == [it[3] for it in reference_recorder.iterations]
    for _, metrics in recorder.logs:
        assert 0.0 <= metrics[DATA_WAIT_SECONDS] <= metrics[ITERATION_SECONDS]
    assert all(ITERATION_SECONDS not in it[3] for it in recorder.iterations)  # losses stay losses


def test_a_finished_run_resumed_starts_no_loader_pass(reference, tmp_path):
    _run(tmp_path, "run", epochs=1)
    loaders = []
    data = make_data()
    make_loader = data.make_loader
    data.make_loader = lambda sampler: loaders.append(CountingLoader(make_loader(sampler))) or loaders[-1]
    result = train(make_config(tmp_path / "run", epochs=1), make_model(0), data, device="cpu")
    assert result.global_step == 2
    assert [loader.iterators for loader in loaders] == [0]


def test_training_state_loads_with_weights_only_and_holds_everything(reference):
    _, _, result = reference
    state = read_training_state(result.output_dir / "checkpoint-last")
    assert set(state) == {"optimizer", "scaler", "sampler", "rng"}
    assert state["sampler"]["epoch"] == 3 and state["sampler"]["start_batch"] == 0
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    # AdamW param groups: no-decay group first, then decay 0.05.
    assert [g["weight_decay"] for g in state["optimizer"]["param_groups"]] == [0.0, 0.05]


def test_jsonl_writer_and_resume_switch(tmp_path):
    torch.set_num_threads(1)
    log = tmp_path / "metrics.jsonl"
    config = make_config(tmp_path / "run", epochs=1)
    train(config, make_model(0), make_data(), callbacks=[JsonlMetricsWriter(log)], device="cpu")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("log") == 2 and kinds.count("epoch") == 1 and kinds[-1] == "end"
    assert all(r["panoptic_loss"] > 0 for r in records if r["kind"] == "log")
    # Same output_dir with resume=false starts over (step 0) instead of continuing.
    recorder = Recorder()
    config.training.resume = False
    config.training.epochs = 1
    train(config, make_model(0), make_data(), callbacks=[recorder], device="cpu")
    assert recorder.starts == [(0, 0, 0)]


def test_fp16_on_cpu_is_refused_and_bf16_runs(tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        _run(tmp_path, "fp16", amp="fp16")
    recorder, _, result = _run(tmp_path, "bf16", amp="bf16", epochs=1)
    assert result.global_step == 2
    assert all(torch.isfinite(torch.tensor(it[3]["panoptic_loss"])) for it in recorder.iterations)


class _NonFiniteAtCall(ToyPanSt3R):
    """The toy model whose masks become NaN from its `bad_call`-th forward (0-based) on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.bad_call, self.calls = bad_call, 0

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        if self.calls >= self.bad_call:
            out["pred_masks"] = out["pred_masks"] * float("nan")
        self.calls += 1
        return out


def test_a_non_finite_loss_stops_the_run_before_any_later_checkpoint(tmp_path):
    torch.set_num_threads(1)
    seed_everything(0)
    model = _NonFiniteAtCall(bad_call=2)  # iteration 2 is the first of optimizer step 1 (accum 2)
    config = make_config(tmp_path / "run")
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 1; stopping"):
        train(config, model, make_data(), callbacks=[recorder], device="cpu")
    assert [step for step, _ in recorder.logs] == [1]
    assert read_progress(tmp_path / "run" / "checkpoint-last").global_step == 1
