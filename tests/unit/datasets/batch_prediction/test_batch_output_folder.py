"""A scene folder of a batch run holds a complete prediction or does not exist."""

from __future__ import annotations

import pytest

from datasets.batch_prediction.output_folder import STAGING_DIR, TRASH_DIR, BatchOutput


def _writer(text):
    def fill(folder):
        (folder / "segments.json").write_text(text)

    return fill


def test_commit_replaces_the_scene_folder_whole(tmp_path):
    output = BatchOutput(tmp_path / "out")
    output.commit("scene", _writer("old"))
    (output.scene_dir("scene") / "only_in_old.txt").write_text("x")
    output.commit("scene", _writer("new"))
    assert sorted(p.name for p in output.scene_dir("scene").iterdir()) == ["segments.json"]
    assert (output.scene_dir("scene") / "segments.json").read_text() == "new"


def test_a_failing_writer_leaves_no_half_written_folder_and_the_old_one_intact(tmp_path):
    output = BatchOutput(tmp_path / "out")

    def half_then_fail(folder):
        (folder / "segments.json").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        output.commit("new_scene", half_then_fail)
    assert not output.scene_dir("new_scene").exists()
    output.commit("scene", _writer("good"))
    with pytest.raises(OSError):
        output.commit("scene", half_then_fail)
    assert (output.scene_dir("scene") / "segments.json").read_text() == "good"
    assert list((output.root / STAGING_DIR).iterdir()) == []


def test_sweep_removes_leftovers_of_killed_runs(tmp_path):
    output = BatchOutput(tmp_path / "out")
    for name in (STAGING_DIR, TRASH_DIR):
        (output.root / name / "scene.0123").mkdir(parents=True)
    assert sorted(output.sweep()) == ["scene.0123", "scene.0123"]
    assert sorted(p.name for p in output.root.iterdir()) == []


def test_failure_records_are_written_read_and_cleared(tmp_path):
    output = BatchOutput(tmp_path / "out")
    assert output.read_failure("scene") is None
    output.write_failure("scene", {"reason": "first"})
    output.write_failure("scene", {"reason": "second"})
    assert output.read_failure("scene") == {"reason": "second"}
    output.clear_failure("scene")
    assert output.read_failure("scene") is None


def test_one_run_per_output_folder(tmp_path):
    output = BatchOutput(tmp_path / "out")
    with output.lock(), pytest.raises(ValueError, match="being written by another run"):
        with BatchOutput(tmp_path / "out").lock():
            pass
