"""The loop with the real model (`tiny_v1`): exact resume and a falling loss."""

import pytest
import torch
from shared_fixtures import require_parity_fixture

from panst3r_core.engine.config import TrainConfig
from panst3r_core.engine.loop import TrainData, seed_everything, train

from .toy import VOCABULARY, Recorder, ToyViewDataset, loop_config, loop_data

variants = pytest.importorskip("panst3r_core.model.variants")
hashed = pytest.importorskip("panst3r_core.model.hashed_text_embedding")
from panst3r_core.checkpoint.loading import load_any_checkpoint  # noqa: E402
from panst3r_core.checkpoint.official import read_official_checkpoint, rename_transformers4_keys  # noqa: E402

RESOLUTIONS = [(64, 48), (64, 32)]


def make_config(output_dir, **training) -> TrainConfig:
    settings = dict(
        seed=11,
        batch_size=1,
        accum_iter=2,
        epochs=2,
        lr=1e-3,
        min_lr=1e-5,
        warmup_epochs=0.5,
        print_freq=1,
        keep_freq=0,
        checkpoint_every_steps=1,
        num_workers=0,
    )
    settings.update(training)
    return loop_config(output_dir, "tiny_v1", 2, RESOLUTIONS, samples_per_epoch=4, num_points=256, **settings)


def make_data(size: int = 4) -> TrainData:
    dataset = ToyViewDataset(size=size, num_views=2, resolutions=RESOLUTIONS)
    return loop_data(dataset, hashed.hashed_class_embeddings(VOCABULARY))


def run(config, model_seed, stop_at=None):
    seed_everything(model_seed)
    model = variants.build_model(config.model.variant)
    recorder = Recorder(stop_at)
    train(config, model, make_data(), callbacks=[recorder], device="cpu")
    return recorder, model


def test_tiny_v1_killed_and_resumed_matches_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    # Fine-tune everything so that every module's optimizer state and RNG use is exercised.
    switches = dict(finetune_must3r_encoder=True, finetune_must3r_decoder=True, finetune_dino=True)
    expected, expected_model = run(make_config(tmp_path / "a", **switches), model_seed=0)
    with pytest.raises(KeyboardInterrupt):
        run(make_config(tmp_path / "b", **switches), model_seed=0, stop_at=(1, 2))
    resumed, resumed_model = run(make_config(tmp_path / "b", **switches), model_seed=1)
    assert resumed.starts[0][:2] == (1, 2)
    want = [it for it in expected.iterations if it[0] >= (1, 2)]
    assert [it[0] for it in resumed.iterations] == [it[0] for it in want]
    assert [it[3] for it in resumed.iterations] == [it[3] for it in want]
    for key, value in expected_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


@pytest.mark.slow
def test_tiny_v1_loss_falls_on_synthetic_views(tmp_path):
    torch.set_num_threads(2)
    config = make_config(
        tmp_path,
        batch_size=2,
        accum_iter=1,
        epochs=6,
        lr=2e-3,
        warmup_epochs=0.5,
        checkpoint_every_steps=0,
        finetune_must3r_encoder=True,
        finetune_must3r_decoder=True,
        finetune_dino=True,
    )
    config.data.samples_per_epoch = 16
    config.data.resolutions = [(64, 48)]
    recorder, _ = run(config, model_seed=0)
    totals = [it[3]["panoptic_loss"] for it in recorder.iterations]
    first, last = sum(totals[:8]) / 8, sum(totals[-8:]) / 8
    assert last < 0.7 * first, (first, last)


def test_final_checkpoint_loads_for_inference(tmp_path):
    torch.set_num_threads(1)
    config = make_config(tmp_path, epochs=1, checkpoint_every_steps=0)
    seed_everything(0)
    model = variants.build_model("tiny_v1")
    data = make_data()
    data.checkpoint_metadata = {"text_embeddings": "hashed"}
    result = train(config, model, data, device="cpu")
    loaded = load_any_checkpoint(result.final_checkpoint)
    assert loaded.metadata["class_names"] == VOCABULARY and loaded.metadata["text_embeddings"] == "hashed"
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    assert load_any_checkpoint(result.output_dir / "checkpoint-last").metadata["global_step"] == 2


def test_initialisation_from_official_checkpoints(tmp_path):
    official = require_parity_fixture() / "tiny_v1.pth"
    torch.set_num_threads(1)
    weights = rename_transformers4_keys(read_official_checkpoint(official).weights)
    # A MUSt3R-style file holding only the backbone.
    must3r = tmp_path / "must3r.pth"
    torch.save(
        {
            part: {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(f"must3r_{part}.")}
            for part in ("encoder", "decoder")
        },
        must3r,
    )
    for key, source in (("must3r_chkpt", must3r), ("chkpt", official)):
        config = make_config(tmp_path / key, epochs=1, checkpoint_every_steps=0, **{key: str(source)})
        seed_everything(0)
        model = variants.build_model("tiny_v1")
        train(config, model, make_data(), device="cpu")
        # Frozen backbone weights come from the file, untouched by training.
        state = model.state_dict()
        for name, value in weights.items():
            if name.startswith("must3r_encoder.") or name.startswith("must3r_decoder."):
                assert torch.equal(state[name], value), name
