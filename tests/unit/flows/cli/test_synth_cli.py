"""`panst3r synth` end to end on a tiny dataset, and its argument errors."""

from __future__ import annotations

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


def test_synth_rejects_bad_arguments_with_one_clear_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--scenes", "0", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--scenes must be at least 1" in err and "Traceback" not in err
    assert (
        main(["synth", "--out", str(tmp_path), "--scenes", "1", "--seed", "1", "--image-size", "8", "8"]) == 2
    )
    assert "--image-size" in capsys.readouterr().err
