import os

import pytest

from flows.demo.files import LocalFileRoot
from flows.demo.limits import DemoInputError


@pytest.fixture
def shared(tmp_path, make_png):
    root = tmp_path / "shared"
    (root / "scene").mkdir(parents=True)
    make_png(root / "scene" / "b.png", seed=1)
    make_png(root / "scene" / "a.jpg.png", seed=2)
    (root / "scene" / "readme.txt").write_text("not an image")
    outside = tmp_path / "secret"
    outside.mkdir()
    make_png(outside / "private.png", seed=3)
    return root, outside


def test_lists_images_of_a_folder_sorted(shared):
    root, _ = shared
    listing = LocalFileRoot(root).list_images("scene")
    assert [p.name for p in listing.images] == ["a.jpg.png", "b.png"]
    assert listing.refused == []


def test_single_file_and_absolute_path_inside(shared):
    root, _ = shared
    files = LocalFileRoot(root)
    assert files.list_images("scene/b.png").images == [(root / "scene" / "b.png").resolve()]
    assert files.list_images(str(root / "scene")).images[0].name == "a.jpg.png"


@pytest.mark.parametrize("path", ["..", "../secret", "scene/../../secret", "../secret/private.png"])
def test_traversal_is_refused(shared, path):
    root, _ = shared
    with pytest.raises(DemoInputError, match="outside the folder this server shares"):
        LocalFileRoot(root).list_images(path)


def test_absolute_path_outside_is_refused(shared):
    root, outside = shared
    with pytest.raises(DemoInputError, match="outside"):
        LocalFileRoot(root).list_images(str(outside))


def test_symlinked_folder_escaping_root_is_refused(shared):
    root, outside = shared
    os.symlink(outside, root / "link_out")
    with pytest.raises(DemoInputError, match="outside"):
        LocalFileRoot(root).list_images("link_out")


def test_symlinked_file_escaping_root_is_left_out_and_reported(shared):
    root, outside = shared
    os.symlink(outside / "private.png", root / "scene" / "c_private.png")
    listing = LocalFileRoot(root).list_images("scene")
    assert [p.name for p in listing.images] == ["a.jpg.png", "b.png"]
    assert listing.refused == ["c_private.png"]


def test_symlink_inside_root_is_followed(shared):
    root, _ = shared
    os.symlink(root / "scene", root / "alias")
    assert len(LocalFileRoot(root).list_images("alias").images) == 2


def test_missing_path_and_empty_folder(shared):
    root, _ = shared
    files = LocalFileRoot(root)
    with pytest.raises(DemoInputError, match="does not exist"):
        files.list_images("nope")
    (root / "empty").mkdir()
    with pytest.raises(DemoInputError, match="no images"):
        files.list_images("empty")
    with pytest.raises(DemoInputError, match="NUL"):
        files.resolve("scene\x00/b.png")


def test_root_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="--allow_local_files"):
        LocalFileRoot(tmp_path / "missing")
