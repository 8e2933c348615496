"""Labels that map_benchmark.csv does not list: void by default with the output of the official script, what
they cover (vertices, pixels), the strict mode, and the marker render that counts their pixels."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest

from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.panoptic import MAX_ENCODABLE_ID
from datasets.preprocess.result import PreprocessConfig
from datasets.preprocess.scene import preprocess_scene
from datasets.preprocess.unknown_labels import UnknownFaceMarker, UnknownLabelReport, unused_id
from datasets.scannetpp.reader import read_scene

from .conftest import MAPPING, SCENE_ID
from .test_scene import assert_matches_official, official_scene

RENAMED = {"chair": "garden gnome", "cabinet": "umbrella stand"}
"""Groups of the mini scene relabelled with labels that neither top100.txt nor map_benchmark.csv lists."""
FULL_MASK_FRAMES = (1, 3, 5)
"""Odd DSLR frames have no anonymised hole, so every rendered pixel of a segment reaches its stored ids."""


@pytest.fixture(scope="module")
def unknown_label_root(mini_scene, tmp_path_factory):
    """(root, pairs_dir): a copy of the mini scene whose chair and cabinet carry unknown labels."""
    root, pairs_dir, _selection = mini_scene
    copy = tmp_path_factory.mktemp("unknown_labels") / "root"
    shutil.copytree(root, copy)
    anno = copy / "data" / SCENE_ID / "scans" / "segments_anno.json"
    data = json.loads(anno.read_text())
    for group in data["segGroups"]:
        group["label"] = RENAMED.get(group["label"], group["label"])
    anno.write_text(json.dumps(data))
    return copy, pairs_dir


def _few_frames(root, pairs_dir):
    record = read_scene(root, SCENE_ID, pairs_dir)
    frames = tuple(record.frames[i] for i in FULL_MASK_FRAMES)
    return dataclasses.replace(record, frames=frames, pairs=np.array([[0, 1, 0.9]]))


@pytest.fixture(scope="module")
def voided(unknown_label_root):
    """The default run on the relabelled scene."""
    return preprocess_scene(_few_frames(*unknown_label_root))


def test_default_leaves_them_void_with_the_official_output(unknown_label_root, voided, tmp_path):
    root, pairs_dir = unknown_label_root
    assert PreprocessConfig().unknown_labels == "void"
    assert not {s["orig_class_name"] for s in voided.segments} & set(RENAMED.values())
    selection = [frame.name for frame in _few_frames(root, pairs_dir).frames]
    reference = official_scene(root, SCENE_ID, selection, tmp_path)  # the official rule: unknown -> skipped
    depth_agreement, id_agreement = assert_matches_official(voided, reference)
    assert depth_agreement >= 0.999, f"depth within 1 mm on {depth_agreement:.5%} of valid pixels"
    assert id_agreement >= 0.995, f"panoptic ids equal on {id_agreement:.5%} of pixels"


def test_counting_their_pixels_changes_no_stored_value(unknown_label_root, voided, tmp_path):
    """Listing the labels in the CSV without a target (void, no marker involved) gives identical frames."""
    root, pairs_dir = unknown_label_root
    csv = tmp_path / "map_benchmark.csv"
    rows = [*MAPPING, *((label, "1", "", "") for label in RENAMED.values())]
    csv.write_text("\n".join(",".join(row) for row in rows) + "\n")
    listed = preprocess_scene(_few_frames(root, pairs_dir), PreprocessConfig(mapping_file=str(csv)))
    assert listed.unknown_labels == UnknownLabelReport()
    assert listed.segments == voided.segments
    for camera, block in voided.blocks.items():
        for name in ("images", "depth_mm", "panoptic", "intrinsics", "cam_to_world"):
            np.testing.assert_array_equal(
                getattr(block, name), getattr(listed.blocks[camera], name), err_msg=name
            )


def test_the_report_counts_their_vertices_and_pixels(mini_scene, unknown_label_root, voided):
    root, pairs_dir, _selection = mini_scene
    anno = json.loads((root / "data" / SCENE_ID / "scans" / "segments_anno.json").read_text())
    sizes = {g["label"]: len(g["segments"]) for g in anno["segGroups"] if g["label"] in RENAMED}
    report = voided.unknown_labels
    assert report.vertices_by_label == {RENAMED[label]: size for label, size in sizes.items()}
    assert report.vertices == sum(sizes.values())  # the boxes share no vertex and nothing relabels them
    # Where the original scene maps them, their stored ids cover exactly the pixels counted (full masks).
    original = preprocess_scene(_few_frames(root, pairs_dir))
    ids = [s["id"] for s in original.segments if s["orig_class_name"] in RENAMED]
    seen = sum(int(np.isin(block.panoptic, ids).sum()) for block in original.blocks.values())
    assert seen > 1000, "the chosen frames see the chair and the cabinet"
    assert report.pixels == seen


def test_strict_mode_fails_the_scene_naming_the_labels(unknown_label_root):
    record = _few_frames(*unknown_label_root)
    with pytest.raises(
        BadSceneInput, match=r"segments_anno\.json.*'garden gnome' \(\d+ vertices\).*'umbrella"
    ):
        preprocess_scene(record, PreprocessConfig(unknown_labels="error"))


def test_the_old_name_skip_is_the_default_mode():
    assert PreprocessConfig(unknown_labels="skip") == PreprocessConfig()
    with pytest.raises(ValueError, match="void, error"):
        PreprocessConfig(unknown_labels="drop")


def test_report_text_and_attrs_round_trip():
    report = UnknownLabelReport({"vase": 30, "statue": 120}, vertices=150, pixels=3456)
    assert UnknownLabelReport.from_attrs(report.to_attrs()) == report
    assert UnknownLabelReport.from_attrs(None) == UnknownLabelReport() == UnknownLabelReport.from_attrs({})
    assert report.labels == ["statue", "vase"]
    assert report.label_list() == "'statue', 'vase'"
    warning = report.warning("0a1b2c3d4e")
    assert warning.startswith(
        "scene 0a1b2c3d4e: segments_anno.json label(s) 'statue' (120 vertices), 'vase' (30 vertices): "
        "150 mesh vertices, 3456 pixels left void; they are neither benchmark classes nor rows of "
        "map_benchmark.csv"
    )
    assert "--unknown-labels error" in warning and "\n" not in warning
    assert (
        UnknownLabelReport({"vase": 30}, 30, 7).describe() == "'vase': 30 mesh vertices, 7 pixels left void"
    )


def test_the_marker_is_an_unused_id_and_is_cleared_to_void():
    pan_ids = np.array([0, 256, 513, 0, 0])
    marker = UnknownFaceMarker(pan_ids, np.array([False, False, False, True, False]))
    assert marker.marker == MAX_ENCODABLE_ID
    np.testing.assert_array_equal(marker.render_ids, [0, 256, 513, MAX_ENCODABLE_ID, 0])
    rendered = np.array([[MAX_ENCODABLE_ID, 256], [MAX_ENCODABLE_ID, 0]], dtype=np.uint32)
    ids, count = marker.clear(rendered)
    assert count == 2
    np.testing.assert_array_equal(ids, [[0, 256], [0, 0]])
    unmarked = UnknownFaceMarker(pan_ids, None)
    ids, count = unmarked.clear(rendered)
    assert unmarked.render_ids is pan_ids and ids is rendered and count == 0


def test_unused_id_skips_ids_in_use():
    assert unused_id(np.array([0, MAX_ENCODABLE_ID, MAX_ENCODABLE_ID - 1])) == MAX_ENCODABLE_ID - 2
