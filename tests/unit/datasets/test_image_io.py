import numpy as np
import pytest
from PIL import Image

from datasets.image_io import ImageFiles, collect_image_paths, load_images, read_image_rgb


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_folder_is_sorted_filtered_and_files_keep_order(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = np.zeros((4, 6, 3), np.uint8)
    _write(folder / "b.png", rgb)
    _write(folder / "a.JPG", rgb)
    (folder / "notes.txt").write_text("not an image")
    extra = _write(tmp_path / "z.png", rgb)
    paths = collect_image_paths([extra, folder, folder / "a.JPG"])
    assert [p.name for p in paths] == ["z.png", "a.JPG", "b.png"]


def test_reads_rgb_from_grey_and_rgba(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 10
    out_grey = read_image_rgb(_write(tmp_path / "g.png", grey))
    out_rgba = read_image_rgb(_write(tmp_path / "c.png", rgba))
    assert out_grey.shape == (3, 4, 3) and out_grey.dtype == np.uint8
    np.testing.assert_array_equal(out_grey[..., 1], grey)
    assert (out_rgba[..., 0] == 200).all() and out_rgba.shape == (3, 4, 3)
    images, paths = load_images([tmp_path / "g.png", tmp_path / "c.png"])
    assert len(images) == 2 and [p.name for p in paths] == ["g.png", "c.png"]


def test_clear_errors(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"broken\.png.*convert it to PNG or JPEG"):
        read_image_rgb(bad)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        collect_image_paths([tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        collect_image_paths([empty])
    with pytest.raises(ValueError, match="no images given"):
        collect_image_paths([])


def test_folders_in_natural_order_and_other_files_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    rgb = np.zeros((4, 6, 3), np.uint8)
    for name in ("frame_10.png", "frame_2.png", "frame_1.jpg", "Frame_3.png"):
        _write(folder / name, rgb)
    (folder / "notes.txt").write_text("not an image")
    (folder / "cameras.json").write_text("{}")
    with caplog.at_level("WARNING"):
        paths = collect_image_paths([folder])
    assert [p.name for p in paths] == ["frame_1.jpg", "frame_2.png", "Frame_3.png", "frame_10.png"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "2 file(s)" in warning and "cameras.json, notes.txt" in warning


def test_image_files_check_headers_up_front_and_read_on_demand(tmp_path):
    paths = [_write(tmp_path / f"{i}.png", np.full((4 + i, 6, 3), i, np.uint8)) for i in range(3)]
    files = ImageFiles(paths)
    assert len(files) == 3 and [files.size(i) for i in range(3)] == [(4, 6), (5, 6), (6, 6)]
    assert files.names == ["0", "1", "2"] and (files.read(2) == 2).all()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png"):
        ImageFiles([*paths, tmp_path / "bad.png"])  # before any pixel is decoded
    _write(paths[1], np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1\.png changed size"):
        files.read(1)


def test_codec_threads_are_bounded_by_the_cpus_and_the_cap(monkeypatch):
    from datasets import image_io

    monkeypatch.setattr(image_io.os, "cpu_count", lambda: 64)
    assert image_io.codec_threads() == image_io.MAX_CODEC_THREADS
    monkeypatch.setattr(image_io.os, "cpu_count", lambda: 2)
    assert image_io.codec_threads() == 2
    monkeypatch.setattr(image_io.os, "cpu_count", lambda: None)
    assert image_io.codec_threads() == 1
