from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from panst3r_core.inference.images import load_images, resize_for_model, target_resolution, to_model_range


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((480, 640), (384, 512)),
        ((1080, 1920), (288, 512)),
        ((640, 480), (512, 384)),
        ((300, 1000), (160, 512)),
        ((500, 1000), (256, 512)),
        ((384, 512), (384, 512)),
    ],
)
def test_target_resolution_picks_the_closest_supported_aspect_ratio(hw, expected):
    assert target_resolution(*hw) == expected


def test_supported_resolution_is_kept_unchanged():
    image = torch.randn(3, 336, 512)
    assert resize_for_model(image) is image


def test_crop_then_antialiased_resize():
    # A 600x800 image (3:4 portrait) with a coloured border column: crop 4:3 keeps the whole width here.
    image = torch.linspace(-1, 1, 600 * 800).view(1, 600, 800).repeat(3, 1, 1)
    out = resize_for_model(image)
    assert out.shape == (3, 384, 512)
    # 9:5 input -> 16:9 target: the width is centre-cropped to int(H * 16/9) = 888 before resizing.
    wide = torch.zeros(3, 500, 900)
    wide[:, :, :6] = 1.0  # the 6 leftmost columns lie outside the crop (left = 6)
    assert resize_for_model(wide).shape == (3, 288, 512)
    assert resize_for_model(wide).max() == 0


def test_other_sizes_give_multiples_of_16():
    out = resize_for_model(torch.randn(3, 480, 640), size=224)
    assert out.shape == (3, 176, 224)


def test_to_model_range_matches_totensor_normalize():
    u8 = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert torch.allclose(
        to_model_range(u8)[:, 0, 0], torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]), atol=1e-6
    )


def test_load_images_from_a_directory_in_name_order(tmp_path):
    for name, value in (("b.png", 200), ("a.png", 10)):
        Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    images = load_images([tmp_path], size=None)
    assert [tuple(i.shape) for i in images] == [(3, 48, 64)] * 2
    assert images[0].mean() < images[1].mean()
    with pytest.raises(FileNotFoundError):
        load_images([tmp_path / "missing.png"])
