"""`panst3r convert` end to end on the tiny official-format checkpoint of the parity fixture."""

from __future__ import annotations

import json
import subprocess
import sys

from shared_fixtures import require_parity_fixture


def _panst3r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_convert_writes_safetensors_and_config(tmp_path):
    parity = require_parity_fixture()
    out = tmp_path / "converted"
    proc = _panst3r(
        "convert",
        "--weights",
        str(parity / "tiny_v1.pth"),
        "--out",
        str(out),
        "--dino-config",
        str(parity / "tiny_dino_config.json"),
        "--class-names",
        "wall",
        "floor",
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads((out / "config.json").read_text())
    assert document["model"]["decoder"]["embed_dim"] == 48
    assert document["metadata"]["class_names"] == ["wall", "floor"]
    assert (out / "model.safetensors").stat().st_size > 1_000_000


def test_convert_reports_a_missing_file_in_one_line(tmp_path):
    proc = _panst3r("convert", "--weights", str(tmp_path / "none.pth"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
