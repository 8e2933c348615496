import os
from dataclasses import dataclass

import pytest

from datasets.preprocess.result import PreprocessConfig
from datasets.store import hashing


def _files(tmp_path):
    (tmp_path / "data").mkdir()
    a, b = tmp_path / "data" / "a.txt", tmp_path / "data" / "b.bin"
    a.write_text("hello")
    b.write_bytes(b"\x00\x01" * 1000)
    return a, b


def test_source_hash_is_order_independent_and_content_sensitive(tmp_path):
    a, b = _files(tmp_path)
    first = hashing.source_hash([a, b], tmp_path)
    assert first == hashing.source_hash([b, a], tmp_path)
    a.write_text("hellO")  # same size, different content
    assert hashing.source_hash([a, b], tmp_path) != first


def test_source_hash_depends_on_relative_names_not_the_root_location(tmp_path):
    a, b = _files(tmp_path)
    first = hashing.source_hash([a, b], tmp_path)
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    tmp_path.rename(moved)
    again = hashing.source_hash([moved / "data" / "a.txt", moved / "data" / "b.bin"], moved)
    assert again == first


def test_source_hash_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="ghost.ply"):
        hashing.source_hash([tmp_path / "ghost.ply"], tmp_path)


def test_config_hash_changes_with_any_field():
    base = hashing.config_hash(PreprocessConfig())
    assert base == hashing.config_hash(PreprocessConfig())
    assert base != hashing.config_hash(PreprocessConfig(target_resolution=512))
    assert base != hashing.config_hash(PreprocessConfig(export_crowd=True))


def test_config_hash_needs_a_dataclass():
    @dataclass
    class Other:
        x: int = 1

    assert len(hashing.config_hash(Other())) == 64
    with pytest.raises(TypeError):
        hashing.config_hash({"x": 1})


def test_code_version_tracks_source_files(tmp_path):
    pkg = tmp_path / "preprocess"
    pkg.mkdir()
    (pkg / "m.py").write_text("x = 1\n")
    first = hashing.source_tree_digest([pkg])
    (pkg / "m.py").write_text("x = 2\n")
    assert hashing.source_tree_digest([pkg]) != first
    version = hashing.code_version()
    assert "+" in version and len(version.split("+")[-1]) == 12


def test_digest_cache_rereads_only_changed_files(tmp_path):
    a, b = _files(tmp_path)
    cache_path = tmp_path / "cache" / "digests.json"
    cache = hashing.DigestCache(cache_path)
    first = hashing.source_hash([a, b], tmp_path, cache)
    assert first == hashing.source_hash([a, b], tmp_path) and (cache.hits, cache.misses) == (0, 2)
    cache.save()
    reloaded = hashing.DigestCache(cache_path)
    assert hashing.source_hash([a, b], tmp_path, reloaded) == first and (reloaded.hits, reloaded.misses) == (
        2,
        0,
    )
    a.write_text("hellO")  # same size: the mtime tells (moved on explicitly: timestamps are coarse)
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10_000_000))
    changed = hashing.source_hash([a, b], tmp_path, reloaded)
    assert changed == hashing.source_hash([a, b], tmp_path) != first and reloaded.misses == 1
    cache_path.write_text("{broken")
    assert hashing.source_hash([a, b], tmp_path, hashing.DigestCache(cache_path)) == changed
