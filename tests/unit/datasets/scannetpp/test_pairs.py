"""selected_pairs.npz read/write and the scene list of a pairs folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets.scannetpp.pairs import list_pair_scenes, read_selected_pairs, write_selected_pairs


def test_round_trip_keeps_unicode_selection_and_float_pairs(tmp_path):
    path = tmp_path / "abc" / "selected_pairs.npz"
    pairs = np.array([[0, 1, 0.75], [1, 2, 0.5]])
    write_selected_pairs(path, ["DSC00001", "DSC00002", "frame_000010"], pairs)
    with np.load(path, allow_pickle=False) as data:  # what the official scripts do
        assert data["selection"].dtype.kind == "U"
        assert data["pairs"][:, :2].astype(int).tolist() == [[0, 1], [1, 2]]
    selection, loaded = read_selected_pairs(path)
    assert selection == ["DSC00001", "DSC00002", "frame_000010"]
    np.testing.assert_array_equal(loaded, pairs)


def test_same_inputs_give_identical_bytes(tmp_path):
    for name in ("a.npz", "b.npz"):
        write_selected_pairs(tmp_path / name, ["DSC1", "DSC2"], np.array([[0, 1, 0.5]]))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_object_selection_and_bad_indices_are_rejected(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, selection=np.array(["DSC1", "DSC2"], dtype=object), pairs=np.array([[0, 1]]))
    with pytest.raises(ValueError, match="unicode"):
        read_selected_pairs(path)
    np.savez(path, selection=np.array(["DSC1", "DSC2"]), pairs=np.array([[0, 5]]))
    with pytest.raises(ValueError, match="outside the selection"):
        read_selected_pairs(path)
    np.savez(path, selection=np.array(["DSC1.JPG"]), pairs=np.zeros((0, 2)))
    with pytest.raises(ValueError, match="without extension"):
        read_selected_pairs(path)
    np.savez(path, selection=np.array(["DSC1"]))
    with pytest.raises(ValueError, match="needs arrays"):
        read_selected_pairs(path)
    with pytest.raises(FileNotFoundError):
        read_selected_pairs(tmp_path / "none.npz")


def test_scene_list_from_json_or_folders_only(tmp_path):
    (tmp_path / "bbb").mkdir()
    (tmp_path / "aaa").mkdir()
    (tmp_path / "notes.txt").write_text("stray file")
    assert list_pair_scenes(tmp_path) == ["aaa", "bbb"]
    (tmp_path / "scene_list.json").write_text(json.dumps(["bbb"]))
    assert list_pair_scenes(tmp_path) == ["bbb"]
    (tmp_path / "scene_list.json").write_text("{broken")
    with pytest.raises(ValueError, match="scene_list.json"):
        list_pair_scenes(tmp_path)
