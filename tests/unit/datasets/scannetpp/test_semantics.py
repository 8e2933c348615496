"""Benchmark class files, the official mapping rules (incl. crowd) and per-vertex panoptic ids."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from datasets.scannetpp.semantics import (
    build_label_map,
    load_label_map,
    read_class_list,
    read_mapping,
    read_vertex_panoptic_ids,
    unknown_label_mode,
)

CLASSES = ["wall", "floor", "table", "chair", "book"]
THINGS = ["table", "chair", "book"]
CSV = (
    "class,count,semantic_map_to,instance_map_to\n"
    "desk,10,table,table\n"  # thing through the instance target
    "wall panel,4,wall,\n"  # stuff: semantic target is not a thing
    "books,7,book,\n"  # crowd: thing semantic target without instance target
    "object,99,,\n"  # no mapping at all
    "rug,3,carpet,None\n"  # target outside the benchmark: warned and dropped
)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "top100.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp_path / "top100_instance.txt").write_text("\n".join(THINGS) + "\n")
    (tmp_path / "map.csv").write_text(CSV)
    return tmp_path


def test_mapping_rules_follow_the_official_script(files, caplog):
    with caplog.at_level(logging.WARNING):
        label_map = load_label_map(files / "top100.txt", files / "top100_instance.txt", files / "map.csv")
    assert label_map.label_to_class["desk"] == 2
    assert label_map.label_to_class["wall panel"] == 0
    assert label_map.label_to_class["books"] == 4
    assert label_map.label_to_class["chair"] == 3  # top100 names map to themselves
    assert label_map.crowd_labels == {"books"}
    assert "object" not in label_map.label_to_class and "rug" not in label_map.label_to_class
    assert "rug" in caplog.text
    assert label_map.categories()[2] == {"id": 2, "name": "table", "isthing": 1}
    assert label_map.categories()[0]["isthing"] == 0


def test_empty_cells_and_literal_none_are_missing(files):
    rows = {r.raw_class: r for r in read_mapping(files / "map.csv")}
    assert rows["wall panel"].instance_map_to is None
    assert rows["rug"].instance_map_to is None  # pandas reads the text None as NaN


def test_class_list_trailing_blank_is_ignored_but_inner_blank_fails(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("wall\nfloor\n\n")
    assert read_class_list(path) == ["wall", "floor"]
    path.write_text("wall\n\nfloor\n")
    with pytest.raises(ValueError, match="line 2 is blank"):
        read_class_list(path)


def test_mapping_csv_without_required_columns(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("class,semantic\nx,y\n")
    with pytest.raises(ValueError, match="instance_map_to"):
        read_mapping(path)


def _write_scene(tmp_path, groups, num_vertices=8, seg_indices=None):
    seg = list(range(num_vertices)) if seg_indices is None else seg_indices
    (tmp_path / "segments.json").write_text(json.dumps({"segIndices": seg}))
    (tmp_path / "segments_anno.json").write_text(json.dumps({"segGroups": groups}))
    return tmp_path / "segments.json", tmp_path / "segments_anno.json"


def _groups():
    return [
        {"id": 0, "objectId": 0, "label": "wall panel", "segments": [0, 1, 2], "obb": {}},
        {"id": 1, "objectId": 1, "label": "desk", "segments": [2, 3], "obb": {}},
        {"id": 2, "objectId": 2, "label": "books", "segments": [4], "obb": {}},
        {"id": 3, "objectId": 3, "label": "object", "segments": [5], "obb": {}},
        {"id": 4, "objectId": 4, "label": "chair", "segments": [6], "obb": {}},
    ]


def test_vertex_ids_later_groups_overwrite_and_listed_unmapped_labels_are_void(files, tmp_path):
    label_map = build_label_map(CLASSES, THINGS, read_mapping(files / "map.csv"))
    seg, anno = _write_scene(tmp_path, _groups())
    labels = read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8)
    pan, segments = labels.pan_ids, labels.segments
    assert labels.unknown_vertices == {} and labels.unknown_void is None
    # instance ids count kept groups only: wall panel=1, desk=2, chair=3 (books is crowd, object unmapped)
    np.testing.assert_array_equal(pan, [256, 256, 2 * 256 + 2, 2 * 256 + 2, 0, 0, 3 * 256 + 3, 0])
    assert [s["orig_class_name"] for s in segments] == ["wall panel", "desk", "chair"]
    assert segments[1] == {
        "id": 514,
        "instance_id": 2,
        "class_id": 2,
        "orig_class_name": "desk",
        "iscrowd": False,
    }


def _with_unknown_labels():
    """Two unknown labels: 'sculpture' on vertex 7 alone, 'statue' on 5 ('object', listed without a target,
    leaves it void too) and on 6, which the later 'chair' group labels after all."""
    return [
        {"id": 9, "objectId": 9, "label": "statue", "segments": [5, 6], "obb": {}},
        *_groups(),
        {"id": 10, "objectId": 10, "label": "sculpture", "segments": [7], "obb": {}},
    ]


def test_unknown_labels_are_void_by_default_and_counted(files, tmp_path, caplog):
    label_map = build_label_map(CLASSES, THINGS, read_mapping(files / "map.csv"))
    seg, anno = _write_scene(tmp_path, _with_unknown_labels())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        labels = read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8)
    assert caplog.text == ""  # the caller warns once per scene, with the pixels too
    # Exactly what the official script makes: unknown groups skipped, instance ids count kept groups only.
    np.testing.assert_array_equal(labels.pan_ids, [256, 256, 2 * 256 + 2, 2 * 256 + 2, 0, 0, 3 * 256 + 3, 0])
    assert [s["orig_class_name"] for s in labels.segments] == ["wall panel", "desk", "chair"]
    # Vertex 6 is 'statue' too, but the later 'chair' group labels it: only 5 and 7 stay void through them.
    assert labels.unknown_vertices == {"sculpture": 1, "statue": 1}
    np.testing.assert_array_equal(np.flatnonzero(labels.unknown_void), [5, 7])


def test_unknown_labels_fail_the_scene_in_strict_mode(files, tmp_path):
    label_map = build_label_map(CLASSES, THINGS, read_mapping(files / "map.csv"))
    seg, anno = _write_scene(tmp_path, _with_unknown_labels())
    expected = r"segments_anno\.json.*'sculpture' \(1 vertices\), 'statue' \(1 vertices\).*map_benchmark\.csv"
    with pytest.raises(ValueError, match=expected):
        read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8, unknown_labels="error")


def test_unknown_label_modes_and_the_old_name():
    assert unknown_label_mode("void") == "void" and unknown_label_mode("error") == "error"
    assert unknown_label_mode("skip") == "void"
    with pytest.raises(ValueError, match="void, error.*'ignore'"):
        unknown_label_mode("ignore")


def test_export_crowd_keeps_crowd_groups(files, tmp_path):
    label_map = build_label_map(CLASSES, THINGS, read_mapping(files / "map.csv"))
    seg, anno = _write_scene(tmp_path, _groups())
    labels = read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8, export_crowd=True)
    pan, segments = labels.pan_ids, labels.segments
    crowd = [s for s in segments if s["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["instance_id"] == 3 and pan[4] == 3 * 256 + 4


def test_seg_indices_must_be_one_per_vertex(files, tmp_path):
    label_map = build_label_map(CLASSES, THINGS, [])
    seg, anno = _write_scene(tmp_path, _groups(), seg_indices=[0, 1, 2, 3, 4, 5, 7, 6])
    with pytest.raises(ValueError, match=r"segments\.json.*'segIndices' must equal 0\.\.7"):
        read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8)
    seg, anno = _write_scene(tmp_path, _groups(), num_vertices=6)
    with pytest.raises(ValueError, match="segIndices"):
        read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8)


def test_out_of_range_segments_and_missing_files(files, tmp_path):
    label_map = build_label_map(CLASSES, THINGS, [])
    bad = [{"id": 0, "objectId": 0, "label": "chair", "segments": [99], "obb": {}}]
    seg, anno = _write_scene(tmp_path, bad)
    with pytest.raises(ValueError, match=r"segGroups\[0\].*outside"):
        read_vertex_panoptic_ids(seg, anno, label_map, num_vertices=8)
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        read_vertex_panoptic_ids(tmp_path / "nothing.json", anno, label_map, num_vertices=8)
