"""`panst3r synth` end to end on a tiny dataset, and its argument errors."""

from __future__ import annotations

import logging

from flows.cli.main import main


def test_synth_writes_a_readable_dataset(tmp_path, capsys):
    from datasets.scannetpp.reader import list_scenes, read_scene

    out = tmp_path / "root"
    code = main(
        [
            "synth",
            "--out",
            str(out),
            "--scenes",
            "1",
            "--seed",
            "4",
            "--frames",
            "3",
            "--image-size",
            "128",
            "96",
        ]
    )
    assert code == 0
    assert "wrote 1 scene(s)" in capsys.readouterr().out
    scenes = list_scenes(out, out / "pairs")
    assert len(scenes) == 1
    record = read_scene(out, scenes[0], out / "pairs")
    assert len(record.frames) == 3 and record.frames[0].camera.width == 128
    assert logging.getLogger("OpenGL").getEffectiveLevel() >= logging.WARNING, "PyOpenGL's INFO lines show"


def test_synth_rejects_bad_arguments_with_one_clear_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--scenes", "0", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--scenes must be at least 1" in err and "Traceback" not in err
    assert (
        main(["synth", "--out", str(tmp_path), "--scenes", "1", "--seed", "1", "--image-size", "8", "8"]) == 2
    )
    assert "--image-size" in capsys.readouterr().err


def test_synth_preset_with_overrides(tmp_path):
    import json

    from datasets.scannetpp.reader import list_scenes, read_scene

    out = tmp_path / "root"
    argv = ["synth", "--out", str(out), "--scenes", "1", "--seed", "2", "--preset", "scannetpp"]
    argv += ["--frames", "2", "--image-size", "128", "86", "--mesh-faces", "0", "--objects", "80"]
    assert main(argv) == 0
    (scene_id,) = list_scenes(out)
    camera = read_scene(out, scene_id).frames[0].camera
    assert camera.model == "OPENCV_FISHEYE" and (camera.width, camera.height) == (128, 86)
    anno = json.loads((out / "data" / scene_id / "scans" / "segments_anno.json").read_text())
    assert len(anno["segGroups"]) >= 80


def test_synth_rejects_an_unknown_camera_model(tmp_path, capsys):
    import pytest

    argv = ["synth", "--out", str(tmp_path), "--scenes", "1", "--seed", "1", "--camera-model", "PINHOLE"]
    with pytest.raises(SystemExit) as exit_info:  # argparse's own one-line usage error
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--camera-model" in err and "Traceback" not in err


def test_synth_dslr_focal_range(tmp_path, capsys):
    from datasets.scannetpp.reader import list_scenes, read_scene

    out = tmp_path / "root"
    argv = ["synth", "--out", str(out), "--scenes", "1", "--seed", "2", "--frames", "2"]
    argv += ["--image-size", "96", "64"]
    assert main([*argv, "--dslr-focal-range", "0.8", "0.82"]) == 0
    (scene_id,) = list_scenes(out)
    assert 0.8 * 96 <= read_scene(out, scene_id).frames[0].camera.params[0] <= 0.82 * 96
    assert main([*argv, "--dslr-focal-range", "0.3", "0.6"]) == 2
    err = capsys.readouterr().err
    assert "--dslr-focal-range" in err and "Traceback" not in err
