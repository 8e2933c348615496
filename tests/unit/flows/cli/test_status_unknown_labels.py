"""`panst3r status` shows each scene's unknown labels (left void): the labels and what they cover, nothing for
none, `?` for a scene committed before they were recorded."""

from __future__ import annotations

import json

import numpy as np

from datasets.preprocess.result import FrameBlock, PreprocessedScene
from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.store.failures import write_failure
from datasets.store.schema import StoreLayout
from datasets.store.writer import open_or_create_store, write_scene
from flows.cli.main import main


def _scene(scene_id: str, report: UnknownLabelReport) -> PreprocessedScene:
    block = FrameBlock(
        camera="dslr",
        names=["DSC00001"],
        images=np.zeros((1, 4, 6, 3), np.uint8),
        depth_mm=np.ones((1, 4, 6), np.uint16),
        panoptic=np.full((1, 4, 6), 257, np.uint32),
        intrinsics=np.eye(3)[None],
        cam_to_world=np.eye(4)[None],
    )
    return PreprocessedScene(
        scene_id, {"dslr": block}, [("dslr", 0)], np.zeros((0, 3)), [], [], unknown_labels=report
    )


def _row(output: str, scene_id: str) -> str:
    return next(line for line in output.splitlines() if scene_id in line)


def test_status_shows_unknown_labels(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    open_or_create_store(store)
    hashes = {"source_hash": "s", "config_hash": "c", "code_version": "v"}
    write_scene(store, _scene("with_unknown", UnknownLabelReport({"vase": 30}, 30, 7)), **hashes)
    write_scene(store, _scene("without", UnknownLabelReport()), **hashes)
    write_scene(store, _scene("older_code", UnknownLabelReport()), **hashes)
    metadata = StoreLayout(store).scene_dir("older_code") / "zarr.json"
    content = json.loads(metadata.read_text())
    del content["attributes"]["unknown_labels"]
    metadata.write_text(json.dumps(content))
    write_failure(StoreLayout(store), "never_done", "ValueError", "bad segIndices")

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["status", "--store", str(store)]) == 0
    output = capsys.readouterr().out
    assert "unknown labels (void)" in output
    assert "'vase': 30 vertices, 7 px" in _row(output, "with_unknown")
    assert "vertices" not in _row(output, "without") and "?" not in _row(output, "without")
    assert "│ ? " in _row(output, "older_code")
    assert "?" not in _row(output, "never_done")
    assert "1 scene(s) leave labels void that neither top100.txt nor map_benchmark.csv lists" in output
