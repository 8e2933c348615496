"""Colour jitter in torch: HSV conversions, each adjustment, ranges, reproducibility."""

import colorsys

import numpy as np
import pytest
import torch

from datasets.training.color_jitter import (
    ColorJitter,
    adjust_brightness,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    rgb_to_hsv,
)


def random_image(seed=0, height=12, width=10):
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def test_hsv_matches_colorsys_and_round_trips():
    image = random_image()
    hsv = rgb_to_hsv(image)
    for y, x in [(0, 0), (5, 7), (11, 9)]:
        want = colorsys.rgb_to_hsv(*image[:, y, x].tolist())
        assert hsv[:, y, x].tolist() == pytest.approx(want, abs=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), image, atol=1e-5)


def test_grey_pixels_have_no_hue_or_saturation():
    grey = torch.full((3, 2, 2), 0.4)
    hsv = rgb_to_hsv(grey)
    assert torch.all(hsv[0] == 0) and torch.all(hsv[1] == 0) and torch.allclose(hsv[2], grey[0])
    assert torch.allclose(adjust_hue(grey, 0.3), grey)


def test_hue_shift_rotates_primary_colours():
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-5)
    assert torch.allclose(adjust_hue(red, -1 / 3), torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1), atol=1e-5)


def test_brightness_and_saturation_factors():
    image = random_image(1) * 0.5
    assert torch.allclose(adjust_brightness(image, 1.5), image * 1.5)
    grey = adjust_saturation(image, 0.0)
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])


def test_jitter_is_reproducible_stays_in_range_and_changes_the_image():
    image = random_image(2)
    jitter = ColorJitter()
    first = jitter(image, np.random.default_rng(7))
    again = jitter(image, np.random.default_rng(7))
    other = jitter(image, np.random.default_rng(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert first.min() >= 0 and first.max() <= 1
    assert not torch.allclose(first, image)


def test_zero_strength_is_the_identity():
    image = random_image(3)
    assert torch.allclose(ColorJitter(0, 0, 0, 0)(image, np.random.default_rng(0)), image)


def test_bad_strengths_are_refused():
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=-1)
