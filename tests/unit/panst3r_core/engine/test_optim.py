import pytest
import torch
from torch import nn

from panst3r_core.engine.config import TrainingConfig
from panst3r_core.engine.optim import base_learning_rate, build_optimizer, parameter_groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.decoder_norm = nn.LayerNorm(4)
        self.first_conv = nn.Sequential(nn.Conv2d(4, 8, 1), nn.GroupNorm(2, 8))  # GroupNorm not named norm
        self.query_embed = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_no_decay_for_bias_and_norm_names_only_over_trainable_parameters():
    net = Net()
    groups = parameter_groups(net, weight_decay=0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    no_decay = sorted(names[id(p)] for p in groups[0]["params"])
    decay = sorted(names[id(p)] for p in groups[1]["params"])
    assert groups[0]["weight_decay"] == 0.0 and groups[1]["weight_decay"] == 0.05
    assert no_decay == [
        "decoder_norm.bias",
        "decoder_norm.weight",
        "first_conv.0.bias",
        "first_conv.1.bias",
        "proj.bias",
    ]
    assert decay == ["first_conv.0.weight", "first_conv.1.weight", "proj.weight", "query_embed"]


def test_adamw_settings_and_lr_from_blr():
    optimizer = build_optimizer(Net(), TrainingConfig(), lr=1e-4)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    assert base_learning_rate(TrainingConfig(lr=3e-4), world_size=8) == 3e-4
    # Effective batch 2 * 2 * 8 = 32 -> 1.5e-4 * 32 / 256.
    assert base_learning_rate(TrainingConfig(lr=None, blr=1.5e-4), world_size=8) == pytest.approx(1.875e-5)


def test_model_without_trainable_parameters_is_an_error():
    net = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        build_optimizer(net, TrainingConfig(), lr=1e-4)


def test_lr_scales_put_matching_parameters_in_their_own_groups():
    net = Net()
    groups = parameter_groups(net, weight_decay=0.05, lr_scales={"query_embed": 50.0, "proj.bias": 2.0})
    names = {id(p): n for n, p in net.named_parameters()}
    summary = [
        (sorted(names[id(p)] for p in g["params"]), g["weight_decay"], g.get("lr_scale", 1.0)) for g in groups
    ]
    assert summary == [
        (["decoder_norm.bias", "decoder_norm.weight", "first_conv.0.bias", "first_conv.1.bias"], 0.0, 1.0),
        (["first_conv.0.weight", "first_conv.1.weight", "proj.weight"], 0.05, 1.0),
        (["query_embed"], 0.05, 50.0),
        (["proj.bias"], 0.0, 2.0),
    ]
    optimizer = build_optimizer(net, TrainingConfig(lr_scales={"query_embed": 50.0}), lr=1e-4)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-4, 5e-3])


def test_lr_scales_keys_are_dotted_suffixes_and_unmatched_keys_are_errors():
    with pytest.raises(ValueError, match="embed"):
        parameter_groups(Net(), weight_decay=0.05, lr_scales={"embed": 2.0})  # not a whole name component
    with pytest.raises(ValueError, match="frozen.weight"):
        parameter_groups(Net(), weight_decay=0.05, lr_scales={"frozen.weight": 2.0})  # not trainable
    with pytest.raises(ValueError, match="lr_scales.query_embed"):
        TrainingConfig(lr_scales={"query_embed": 0})


def test_lr_scales_keys_may_name_a_submodule_prefix_and_the_longest_key_wins():
    net = Net()
    groups = parameter_groups(net, weight_decay=0.05, lr_scales={"first_conv": 0.1, "first_conv.1.weight": 3.0})
    names = {id(p): n for n, p in net.named_parameters()}
    scale_of = {names[id(p)]: g.get("lr_scale", 1.0) for g in groups for p in g["params"]}
    assert scale_of["first_conv.0.weight"] == scale_of["first_conv.0.bias"] == 0.1
    assert scale_of["first_conv.1.weight"] == 3.0 and scale_of["first_conv.1.bias"] == 0.1
    assert scale_of["proj.weight"] == 1.0
    with pytest.raises(ValueError, match="first"):
        parameter_groups(net, weight_decay=0.05, lr_scales={"first": 2.0})  # a prefix must end at a dot
