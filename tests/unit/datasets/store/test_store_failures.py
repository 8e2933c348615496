from datasets.store.failures import clear_failure, read_failures, write_failure
from datasets.store.schema import StoreLayout


def test_failure_records_round_trip_and_clear(tmp_path):
    layout = StoreLayout(tmp_path)
    assert read_failures(layout) == {}
    write_failure(layout, "s1", "FileNotFoundError", "dslr/colmap/images.txt is missing", attempt=1)
    record = write_failure(layout, "s1", "OSError", "EGL context lost", attempt=3)
    failures = read_failures(layout)
    assert list(failures) == ["s1"] and failures["s1"] == record and failures["s1"].attempt == 3
    (layout.failures_dir / "junk.json").write_text("{not json")
    assert list(read_failures(layout)) == ["s1"]
    clear_failure(layout, "s1")
    clear_failure(layout, "s1")  # idempotent
    assert read_failures(layout) == {}
