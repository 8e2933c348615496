from pathlib import Path

import numpy as np
import pytest

from flows.demo.limits import DemoInputError, UploadLimits, check_upload, load_images, load_rgb_image


def test_valid_images_decode_in_order(png_files):
    images = load_images([str(p) for p in png_files], UploadLimits())
    assert [im.shape for im in images] == [(48, 64, 3)] * 3
    assert images[0].dtype == np.uint8
    # the two halves of each synthetic image differ, so the decode is real
    assert not np.array_equal(images[0][:, 0], images[0][:, -1])


def test_too_many_images_names_the_limit(png_files):
    with pytest.raises(DemoInputError, match=r"3 images selected .* at most 2"):
        check_upload(png_files, UploadLimits(max_images=2))


def test_empty_selection_is_refused():
    with pytest.raises(DemoInputError, match="no images selected"):
        check_upload([], UploadLimits())


def test_file_too_large_names_the_file(tmp_path, make_png):
    big = make_png(tmp_path / "big.png", seed=1, size=(400, 400))
    with pytest.raises(DemoInputError, match=r"'big.png' is .* above the limit of 0.001 MiB"):
        check_upload([big], UploadLimits(max_image_mb=0.001))


def test_total_size_limit(png_files):
    one = png_files[0].stat().st_size / (1024 * 1024)
    with pytest.raises(DemoInputError, match="total"):
        check_upload(png_files, UploadLimits(max_image_mb=1.0, max_total_mb=one * 2.5))


def test_wrong_suffix_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DemoInputError, match=r"'notes.txt' is not an image file"):
        check_upload([text], UploadLimits())


def test_garbage_bytes_give_a_clear_message(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DemoInputError, match=r"'broken.png' could not be read as an image"):
        load_rgb_image(broken, UploadLimits())


def test_truncated_png_gives_a_clear_message(tmp_path, make_png):
    good = make_png(tmp_path / "good.png", seed=3, size=(200, 200))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DemoInputError, match=r"'truncated.png' is damaged"):
        load_rgb_image(truncated, UploadLimits())


def test_pixel_limit(tmp_path, make_png):
    path = make_png(tmp_path / "wide.png", seed=4, size=(100, 100))
    with pytest.raises(DemoInputError, match="100x100 pixels, above the limit of 9999"):
        load_rgb_image(path, UploadLimits(max_pixels=9999))


def test_missing_file(tmp_path):
    with pytest.raises(DemoInputError, match="missing"):
        check_upload([Path(tmp_path / "gone.png")], UploadLimits())


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="max_images"):
        UploadLimits(max_images=0)
