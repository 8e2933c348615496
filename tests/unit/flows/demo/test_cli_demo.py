"""`panst3r demo` argument handling (the server itself is exercised by the browser test)."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import demo as demo_cli

REPO = Path(__file__).resolve().parents[4]


def parse(argv):
    parser = argparse.ArgumentParser()
    demo_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_official_flags_map_onto_the_config(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    config = demo_cli.config_from_args(
        parse(
            [
                "--weights",
                str(weights),
                "--local_network",
                "--server_port",
                "7999",
                "--viser_port",
                "6000",
                "--image_size",
                "224",
                "--amp",
                "False",
                "--tmp_dir",
                str(tmp_path / "t"),
                "--silent",
                "--allow_local_files",
                str(root),
                "--camera_animation",
                "--max-images",
                "7",
            ]
        )
    )
    assert config.server_name == "0.0.0.0" and config.server_port == 7999 and config.viser_port == 6000
    assert config.image_size == 224 and config.amp == "none" and config.silent and config.camera_animation
    assert config.allow_local_files == root and config.limits.max_images == 7
    assert demo_cli.config_from_args(parse(["--weights", str(weights)])).server_name == "127.0.0.1"


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--weights"):
        demo_cli.config_from_args(parse(["--weights", str(tmp_path / "missing.pth")]))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    with pytest.raises(ValueError, match="--amp 'int8'"):
        demo_cli.config_from_args(parse(["--weights", str(weights), "--amp", "int8"]))
    with pytest.raises(SystemExit):
        parse(["--weights", str(weights), "--image_size", "500"])
    with pytest.raises(SystemExit):
        parse(["--weights", str(weights), "--local_network", "--server_name", "0.0.0.0"])


def test_alias_script_and_cli_report_missing_weights(tmp_path):
    for command in (
        [sys.executable, str(REPO / "gradio_panst3r.py")],
        [sys.executable, "-m", "flows.cli.main", "demo"],
    ):
        result = subprocess.run(
            [*command, "--weights", str(tmp_path / "nope.pth")], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 2
        assert "--weights" in result.stderr and "Traceback" not in result.stderr
