"""Runs `panst3r pq` for real on small PNG + JSON sets written in a temporary folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.segment_colors import ids_to_rgb
from flows.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[4]


def _write(root, name, maps, gt):
    folder = root / name
    folder.mkdir()
    annotations = []
    for index, (ids, segments) in enumerate(maps):
        ids = np.array(ids)
        Image.fromarray(ids_to_rgb(ids)).save(folder / f"scene_{index}.png")
        infos = [
            {"id": i, "category_id": c, **({"iscrowd": 0, "area": int((ids == i).sum())} if gt else {})}
            for i, c in segments.items()
        ]
        annotations.append({"image_id": index, "file_name": f"scene_{index}.png", "segments_info": infos})
    categories = [{"id": 1, "name": "obj", "isthing": 1}, {"id": 2, "name": "wall", "isthing": 0}]
    path = root / f"{name}.json"
    path.write_text(json.dumps({"annotations": annotations, "categories": categories}))
    return path


@pytest.fixture
def case_e(tmp_path):
    gt = _write(tmp_path, "gt", [([[1] * 5 + [2] * 5], {1: 1, 2: 2})] * 2, gt=True)
    pred = _write(
        tmp_path, "pred", [([[5] * 5 + [9] * 5], {5: 1, 9: 2}), ([[6] * 5 + [9] * 5], {6: 1, 9: 2})], gt=False
    )
    return tmp_path, gt, pred


def test_coco_mode_prints_and_writes_the_pq_compute_structure(case_e, capsys):
    tmp_path, gt, pred = case_e
    out = tmp_path / "result.json"
    code = main(["pq", "--gt-json", str(gt), "--pred-json", str(pred), "--json-out", str(out), "--per-class"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "All" in printed and "Things" in printed and "100.0" in printed and "wall" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"All", "Things", "Stuff", "per_class"}
    assert result["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 2}
    assert result["per_class"]["1"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0}


def test_scene_mode_groups_views_and_penalises_inconsistent_ids(case_e):
    tmp_path, gt, pred = case_e
    out = tmp_path / "scene.json"
    code = main(
        ["pq", "--gt-json", str(gt), "--pred-json", str(pred), "--mode", "scene", "--json-out", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["All"]["pq"] == pytest.approx(0.5)
    assert list(result["per_scene"]) == ["scene"]


def test_bad_input_is_one_clear_error_line_and_exit_code_2(case_e, capsys):
    tmp_path, gt, _ = case_e
    code = main(["pq", "--gt-json", str(gt), "--pred-json", str(tmp_path / "nope.json")])
    assert code == 2
    assert capsys.readouterr().err.strip().startswith("error: COCO panoptic JSON not found")


def test_console_script_runs_in_a_subprocess(case_e):
    tmp_path, gt, pred = case_e
    completed = subprocess.run(
        [sys.executable, "-m", "flows.cli.main", "pq", "--gt-json", str(gt), "--pred-json", str(pred)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Panoptic quality (coco mode)" in completed.stdout
