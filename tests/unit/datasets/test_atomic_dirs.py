"""Folder swaps and the sweep of interrupted runs' leftovers."""

from __future__ import annotations

from datasets.atomic_dirs import remove_leftovers, swap_in_directory


def _folder(path, text):
    path.mkdir(parents=True)
    (path / "file.txt").write_text(text)
    return path


def test_a_new_folder_takes_the_place_of_the_old_one_and_the_old_one_is_gone(tmp_path):
    target = _folder(tmp_path / "scene", "old")
    staging = _folder(tmp_path / "staging" / "scene", "new")
    swap_in_directory(staging, target, tmp_path / "trash")
    assert (target / "file.txt").read_text() == "new"
    assert not staging.exists()
    assert list((tmp_path / "trash").iterdir()) == []


def test_a_first_commit_needs_no_trash(tmp_path):
    staging = _folder(tmp_path / "staging" / "scene", "new")
    swap_in_directory(staging, tmp_path / "scene", tmp_path / "trash")
    assert (tmp_path / "scene" / "file.txt").read_text() == "new"
    assert not (tmp_path / "trash").exists()


def test_leftovers_are_removed_with_their_folders_and_named(tmp_path):
    _folder(tmp_path / "staging" / "a", "x")
    _folder(tmp_path / "trash" / "b.123", "y")
    removed = remove_leftovers([tmp_path / "staging", tmp_path / "trash", tmp_path / "absent"])
    assert sorted(removed) == ["a", "b.123"]
    assert not (tmp_path / "staging").exists() and not (tmp_path / "trash").exists()
    assert remove_leftovers([tmp_path / "staging"]) == []
