"""Frame images decode to PIL's pixels, through OpenCV or PIL, with the same errors as PIL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datasets.preprocess import frame_images
from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.frame_images import decode_rgb, jpeg_round_trip, read_frame_mask, read_frame_rgb


def _photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: JPEG's chroma subsampling and IDCT rounding both matter on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    noisy = base + rng.normal(0, 25, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    "options",
    [
        {"quality": 75},
        {"quality": 95, "subsampling": 0},  # 4:4:4
        {"quality": 90, "subsampling": 1},  # 4:2:2
        {"quality": 50, "subsampling": 2},  # 4:2:0
        {"quality": 85, "progressive": True},
        {"quality": 75, "optimize": True},
    ],
)
@pytest.mark.parametrize("size", [(117, 203), (96, 128)])
def test_opencv_path_gives_pils_pixels(options, size):
    data = _jpeg(_photo_like(*size), **options)
    with Image.open(io.BytesIO(data)) as image:
        assert frame_images._opencv_decodes_like_pil(image, data)
    decoded = decode_rgb(data)
    np.testing.assert_array_equal(decoded, _pil_rgb(data))
    assert decoded.flags.writeable and decoded.flags.c_contiguous


def test_grey_jpeg_and_png_go_through_pil():
    grey = _photo_like(40, 60)[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG")
    grey_jpeg = buffer.getvalue()
    with Image.open(io.BytesIO(grey_jpeg)) as image:
        assert not frame_images._opencv_decodes_like_pil(image, grey_jpeg)
    np.testing.assert_array_equal(decode_rgb(grey_jpeg), _pil_rgb(grey_jpeg))
    buffer = io.BytesIO()
    Image.fromarray(_photo_like(40, 60)).save(buffer, format="PNG")
    np.testing.assert_array_equal(decode_rgb(buffer.getvalue()), _photo_like(40, 60))


def test_bytes_after_the_end_marker_go_through_pil_with_the_same_pixels():
    data = _jpeg(_photo_like(48, 64)) + b"camera trailer"
    with Image.open(io.BytesIO(data)) as image:
        assert not frame_images._opencv_decodes_like_pil(image, data)
    np.testing.assert_array_equal(decode_rgb(data), _pil_rgb(data))


def test_truncated_jpeg_is_a_bad_input_naming_the_file(tmp_path):
    path = tmp_path / "DSC00001.JPG"
    data = _jpeg(_photo_like(120, 160))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadSceneInput, match=r"DSC00001.JPG cannot be decoded .*replace the file"):
        read_frame_rgb(path)


def test_missing_and_undecodable_files_name_the_file(tmp_path):
    with pytest.raises(BadSceneInput, match="image not found: .*nothing.JPG"):
        read_frame_rgb(tmp_path / "nothing.JPG")
    (tmp_path / "noise.JPG").write_bytes(b"not an image at all")
    with pytest.raises(BadSceneInput, match="noise.JPG cannot be decoded"):
        read_frame_rgb(tmp_path / "noise.JPG")
    with pytest.raises(BadSceneInput, match="anonymisation mask not found"):
        read_frame_mask(tmp_path / "nothing.png")


def test_read_frame_rgb_equals_pil_on_a_file(tmp_path):
    path = tmp_path / "DSC00002.JPG"
    path.write_bytes(_jpeg(_photo_like(64, 80, seed=3), quality=92))
    np.testing.assert_array_equal(read_frame_rgb(path), _pil_rgb(path.read_bytes()))


def test_mask_in_rgb_is_read_as_grey(tmp_path):
    mask = np.full((10, 12), 255, np.uint8)
    mask[2:5, 3:7] = 0
    Image.fromarray(np.stack([mask] * 3, axis=-1)).save(tmp_path / "mask.png")
    np.testing.assert_array_equal(read_frame_mask(tmp_path / "mask.png"), mask)


def test_jpeg_round_trip_equals_the_pil_default():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")  # no quality given: PIL's default
    np.testing.assert_array_equal(jpeg_round_trip(rgb, 75), _pil_rgb(buffer.getvalue()))
    assert not np.array_equal(jpeg_round_trip(rgb, 75), rgb)
