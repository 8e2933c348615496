"""`panst3r preprocess` on a scene whose labels map_benchmark.csv does not list: by default the scene is done
with those labels void (the official script's output), one warning names labels, scene, vertices and pixels,
and the scenes table and `panst3r status` show them; `skip` is the same setting as the default;
`--unknown-labels error` fails that scene alone with a message naming the labels."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from _preprocess_support import REPO, cli_command, cli_env, make_root, run_preprocess

from datasets.store.tables import read_table

pytestmark = pytest.mark.slow

RENAMED = {"floor": "terrazzo floor", "ceiling": "stucco ceiling"}
"""Labels every synthetic scene has, renamed to labels that neither top100.txt nor map_benchmark.csv lists."""


def _rename_labels(scene) -> int:
    """Rename the labels in RENAMED; returns how many vertices the renamed groups cover."""
    path = scene / "scans" / "segments_anno.json"
    data = json.loads(path.read_text())
    covered = set()
    for group in data["segGroups"]:
        if group["label"] in RENAMED:
            group["label"] = RENAMED[group["label"]]
            covered |= set(group["segments"])
    path.write_text(json.dumps(data))
    return len(covered)


def _status(store) -> str:
    result = subprocess.run(
        cli_command("status", "--store", str(store)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_unknown_labels_are_void_with_one_warning_by_default_and_fail_in_strict_mode(
    tmp_path, prefect_server
):
    root, pairs = make_root(tmp_path / "data", num_scenes=2, seed=71)
    relabelled, clean = sorted(p.name for p in (root / "data").iterdir())
    vertices = _rename_labels(root / "data" / relabelled)
    env, store = cli_env(*prefect_server), tmp_path / "store"

    result, summary = run_preprocess(env, root, pairs, store, tmp_path / "s1.json", "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["done"] == [relabelled, clean] and summary["failed"] == {}
    output = result.stdout + result.stderr
    warning = f"scene {relabelled}: segments_anno.json label(s) 'stucco ceiling' ("
    assert output.count(warning) == 1, output[-4000:]
    line = next(line for line in output.splitlines() if warning in line)
    assert (
        "'terrazzo floor' (" in line
        and f": {vertices} mesh vertices, " in line
        and "map_benchmark.csv" in line
    )
    pixels = int(line.split(" mesh vertices, ")[1].split(" pixels")[0])
    assert pixels > 0
    assert list(summary["unknown_labels"]) == [relabelled]

    scenes = read_table(store, "scenes").set_index("scene_id")
    assert scenes.loc[relabelled, "unknown_labels"] == "'stucco ceiling', 'terrazzo floor'"
    assert scenes.loc[relabelled, "unknown_label_vertices"] == vertices
    assert scenes.loc[relabelled, "unknown_label_pixels"] == pixels
    assert scenes.loc[clean, "unknown_labels"] == "" and scenes.loc[clean, "unknown_label_vertices"] == 0

    status = _status(store)
    row = next(line for line in status.splitlines() if relabelled in line)
    assert f"'stucco ceiling', 'terrazzo floor': {vertices} vertices, {pixels} px" in row, status
    assert "1 scene(s) leave labels void" in status

    # `skip`, the old name of the default, is the same setting: nothing to redo.
    result, summary = run_preprocess(
        env, root, pairs, store, tmp_path / "s2.json", "--workers", "1", "--unknown-labels", "skip"
    )
    assert result.returncode == 0 and summary["skipped"] == [relabelled, clean] and summary["done"] == []

    result, summary = run_preprocess(
        env, root, pairs, store, tmp_path / "s3.json", "--workers", "2", "--unknown-labels", "error"
    )
    assert result.returncode == 1, "a strict run with a failed scene exits 1"
    assert summary["done"] == [clean] and list(summary["failed"]) == [relabelled]
    reason = summary["failed"][relabelled]
    assert "'stucco ceiling' (" in reason and "'terrazzo floor' (" in reason and "map_benchmark.csv" in reason
    assert "\n" not in reason and "Traceback" not in reason
    scenes = read_table(store, "scenes").set_index("scene_id")
    assert scenes.loc[relabelled, "status"] == "failed" and scenes.loc[relabelled, "error"] == reason
