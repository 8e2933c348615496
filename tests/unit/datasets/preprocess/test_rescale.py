"""The dust3r rescale: output sizes of the ScanNet++ cameras and the exact rescaled intrinsics."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datasets.preprocess.rescale import rescale_image, rescale_intrinsics, rescale_mask
from datasets.preprocess.rescale_plan import rescale_plan


def test_dslr_scale_and_intrinsics():
    plan = rescale_plan(1752, 1168, 920)
    assert plan.scale == pytest.approx(690 / 1168 + 1e-8, abs=1e-15)
    assert not plan.upscales
    # The undistorted fisheye K has its principal point at the image centre: (W/2, H/2) + 0.5 (COLMAP).
    K = np.array([[700.0, 0.0, 876.5], [0.0, 701.0, 584.5], [0.0, 0.0, 1.0]])
    out = rescale_intrinsics(K, plan)
    s = 690 / 1168 + 1e-8
    margin = np.array([1752 * s - 1035, 1168 * s - 690])
    expected = np.array(
        [[700.0 * s, 0.0, 876.5 * s - margin[0] / 2], [0.0, 701.0 * s, 584.5 * s - margin[1] / 2], [0, 0, 1]]
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    # The reference's rounded values of the stored principal point.
    assert out[0, 2] == pytest.approx(517.7954, abs=1e-4)
    assert out[1, 2] == pytest.approx(345.2954, abs=1e-4)
    assert np.all(margin > 0) and np.all(margin < 1e-4)


def test_iphone_scale():
    plan = rescale_plan(1920, 1440, 920)
    assert plan.scale == pytest.approx(0.479166677, abs=1e-9)
    K = np.array([[1400.0, 0.0, 960.5], [0.0, 1400.0, 720.5], [0.0, 0.0, 1.0]])
    out = rescale_intrinsics(K, plan)
    assert out[0, 0] == pytest.approx(1400 * plan.scale)
    # A pixel centre of the input maps to the same scene point in the output: u' = s * u - margin / 2.
    margin_x = 1920 * plan.scale - 920
    assert out[0, 2] == pytest.approx(960.5 * plan.scale - margin_x / 2, abs=1e-12)


def test_image_resampling_filters():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (584, 876, 3), dtype=np.uint8)
    up = rescale_plan(876, 584, 920)
    assert up.upscales
    got = np.asarray(rescale_image(small, up))
    assert got.shape == (690, 1035, 3) and got.dtype == np.uint8
    bicubic = np.asarray(Image.fromarray(small).resize((1035, 690), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(got, bicubic)

    big = rng.integers(0, 256, (1168, 1752, 3), dtype=np.uint8)
    down = rescale_plan(1752, 1168, 920)
    lanczos = np.asarray(Image.fromarray(big).resize((1035, 690), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(np.asarray(rescale_image(big, down)), lanczos)


def test_mask_uses_nearest_neighbour():
    mask = np.zeros((1168, 1752), np.uint8)
    mask[:, ::2] = 255
    mask[5, 7] = 128
    out = rescale_mask(mask, rescale_plan(1752, 1168, 920))
    assert out.shape == (690, 1035)
    # Nearest never invents values: only those present in the input survive.
    assert set(np.unique(out).tolist()) <= {0, 128, 255}
    assert {0, 255} <= set(np.unique(out).tolist())
