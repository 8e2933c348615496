"""`--store` values: a local directory or s3://BUCKET/PREFIX, optionally pinned to a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.store.location import StoreLocation, is_object_store


def test_a_local_path_keeps_its_text_and_is_a_directory():
    location = StoreLocation.parse("runs/stores/synthetic/")
    assert location.is_local and not is_object_store("runs/stores/synthetic")
    assert str(location) == "runs/stores/synthetic" and location.path == Path("runs/stores/synthetic")
    assert location.name == "synthetic"
    assert location.resolved().text == str(Path("runs/stores/synthetic").resolve())


def test_an_object_store_url_names_bucket_prefix_and_snapshot():
    location = StoreLocation.parse("s3://data/scannetpp/v2/?snapshot=ABC123")
    assert not location.is_local and is_object_store(location)
    assert (location.bucket, location.prefix, location.snapshot) == ("data", "scannetpp/v2", "ABC123")
    assert location.text == "s3://data/scannetpp/v2" and location.name == "v2"
    assert str(location) == "s3://data/scannetpp/v2?snapshot=ABC123"
    assert StoreLocation.parse(str(location)) == location
    assert location.pinned(None) == StoreLocation.parse("s3://data/scannetpp/v2")
    assert StoreLocation.parse("s3://data").name == "data"
    with pytest.raises(ValueError, match="object store, not a local directory"):
        _ = location.path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gs://bucket/prefix", "only local directories and s3://BUCKET/PREFIX"),
        ("s3:///prefix", "names no bucket"),
        ("s3://bucket/prefix?version=1", "unknown parameter 'version'"),
    ],
)
def test_other_urls_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message):
        StoreLocation.parse(value)
