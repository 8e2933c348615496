import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from panst3r_core.config import from_dict
from panst3r_core.engine.config import TrainConfig
from panst3r_core.engine.config_files import (
    available_configs,
    config_to_dict,
    load_train_config,
)

REPO = Path(__file__).resolve().parents[4]


def test_shipped_configs_load_with_official_values():
    assert {"base", "distributed", "base_v2", "synthetic_cpu", "synthetic_gpu"} <= set(available_configs())
    base = load_train_config("base")
    assert base.model.variant == "panst3r_v1_512"
    assert (base.training.batch_size, base.training.accum_iter, base.training.epochs) == (2, 2, 200)
    assert (base.training.lr, base.training.min_lr, base.training.warmup_epochs) == (1e-4, 1e-6, 5)
    assert base.training.betas == (0.9, 0.95) and base.training.weight_decay == 0.05
    assert base.criterion.num_points == 12288 and base.criterion.mask_weight == 20.0
    assert base.data.resolutions[0] == (512, 384) and base.data.samples_per_epoch == 10000
    assert not (base.training.finetune_dino or base.training.finetune_must3r_encoder)
    assert load_train_config("distributed").training.distributed is True
    v2 = load_train_config("base_v2")
    assert v2.model.variant == "panst3r_v2_512" and v2.training.lr == 1e-4  # inherited
    cpu = load_train_config("synthetic_cpu")
    assert (
        cpu.model.variant == "tiny_v2" and cpu.training.finetune_dino and cpu.data.resolutions == [(128, 96)]
    )
    assert cpu.training.lr_scales == {"cls_logit_scale": 25}
    accuracy = load_train_config("synthetic_gpu_accuracy")
    assert accuracy.model.variant == "small_v2" and accuracy.training.lr_scales == {"cls_logit_scale": 25}
    assert accuracy.training.lr == 6e-4 and accuracy.training.epochs == 8
    assert load_train_config("synthetic_gpu").training.amp == "bf16"


def test_overrides_are_typed():
    config = load_train_config(
        "base", ["training.lr=3e-4", "training.amp=bf16", "data.resolutions=[[256,192]]"]
    )
    assert config.training.lr == 3e-4 and config.training.amp == "bf16"
    assert config.data.resolutions == [(256, 192)]
    assert load_train_config("base", ["training.lr=null"]).training.lr is None


def test_unknown_keys_and_names_are_errors_that_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown key.*learning_rate.*valid keys:.*accum_iter"):
        load_train_config("base", ["training.learning_rate=1"])
    with pytest.raises(ValueError, match="unknown key.*optim"):
        load_train_config("base", ["optim.lr=1"])
    with pytest.raises(ValueError, match="available: .*synthetic_cpu"):
        load_train_config("nope")
    with pytest.raises(ValueError, match="amp"):
        load_train_config("base", ["training.amp=fp8"])
    with pytest.raises(ValueError, match="multiple of 16"):
        load_train_config("base", ["data.resolutions=[[100,100]]"])


def test_yaml_path_with_inheritance_and_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("inherits: synthetic_cpu\ntraining:\n  epochs: 1\n")
    with pytest.raises(ValueError, match="unknown training config 'synthetic_cpu'"):
        load_train_config(path, config_dir=tmp_path)
    (tmp_path / "synthetic_cpu.yaml").write_text("model:\n  variant: tiny_v2\n")
    config = load_train_config(path, config_dir=tmp_path)
    assert config.training.epochs == 1 and config.model.variant == "tiny_v2"
    assert from_dict(TrainConfig, config_to_dict(config)) == config


@pytest.mark.slow
def test_an_installed_wheel_finds_the_same_presets_and_the_shipped_model(tmp_path):
    """conf/ and the shipped synthetic model come with the wheel and are found through the package, not
    through the checkout's folders."""
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    for name in ("panst3r_core", "datasets", "flows", "conf"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "wheel")]
    subprocess.run(build, check=True, capture_output=True, timeout=300, cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    site = tmp_path / "site"
    install = [*pip, "install", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    program = (
        "from panst3r_core.engine import config_files as c; from panst3r_core import pretrained as p; "
        "print(p.shipped_model()); print(c.CONFIG_DIR); print(*c.available_configs())"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model, where, names = result.stdout.strip().splitlines()[-3:]
    assert Path(model) == site / "panst3r_core" / "pretrained" / "compact_smooth_v2_synthetic"
    assert Path(where) == site / "conf" / "train"
    assert names.split() == available_configs()
