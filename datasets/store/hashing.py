"""Content hashes that decide whether a committed scene is still up to date.

A scene is redone when any of three things changes: its input files (source hash), the preprocessing
settings (config hash) or the code that turns one into the other (code version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_BLOCK = 1 << 20
_PACKAGE = "panst3r-pipeline"
# Packages whose source decides the preprocessed output; a change to any .py file there redoes scenes.
_CODE_PACKAGES = ("preprocess", "scannetpp")


def file_digest(path: Path) -> str:
    """sha256 of a file's content, read in 1 MiB blocks (meshes and image folders can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class DigestCache:
    """Content digests keyed by (path, size, mtime_ns, inode), kept in a JSON file between runs.

    A re-run over hundreds of unchanged scenes then stats the inputs instead of reading gigabytes; any
    write to a file changes its mtime (or size), which misses the cache and re-reads it."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, list] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        try:
            saved = self._load()
            self._entries = json.loads(saved) if saved is not None else {}
        except (OSError, ValueError):
            self._entries = {}  # a damaged cache only costs re-reading

    @staticmethod
    def of_store(store) -> DigestCache:
        """The cache a store keeps (`cache/digests.json`): a file of a directory store, an object beside
        an object-store store."""
        from datasets.store.backend import backend_for
        from datasets.store.local_backend import LocalBackend

        backend = backend_for(store)
        if isinstance(backend, LocalBackend):
            return DigestCache(backend.layout.digest_cache_path)
        return _ObjectDigestCache(backend)

    def _load(self) -> bytes | None:
        return self.path.read_bytes() if self.path is not None and self.path.is_file() else None

    def digest(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[:3] == signature:
            self.hits += 1
            return cached[3]
        self.misses += 1
        content = file_digest(path)
        with self._lock:
            self._entries[key] = [*signature, content]
        return content

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        with self._lock:
            tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)


class _ObjectDigestCache(DigestCache):
    """The same cache kept as an object of an object-store store (one PUT replaces it)."""

    def __init__(self, backend):
        self.backend = backend
        super().__init__(None)

    def _load(self) -> bytes | None:
        from datasets.store.schema import DIGEST_CACHE_KEY

        return self.backend.read_file(DIGEST_CACHE_KEY)

    def save(self) -> None:
        from datasets.store.schema import DIGEST_CACHE_KEY

        with self._lock:
            data = json.dumps(self._entries).encode()
        self.backend.write_file(DIGEST_CACHE_KEY, data)


def source_hash(files: Iterable[Path], root: Path, cache: DigestCache | None = None) -> str:
    """sha256 over (path relative to `root`, size, content digest) of every input file, order-independent."""
    entries = []
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input file {path} listed for the scene does not exist")
        try:
            rel = path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            rel = path.resolve().as_posix()  # a pairs folder may live outside the root
        content = cache.digest(path) if cache is not None else file_digest(path)
        entries.append((rel, path.stat().st_size, content))
    digest = hashlib.sha256()
    for rel, size, content in sorted(entries):
        digest.update(f"{rel}\0{size}\0{content}\n".encode())
    return digest.hexdigest()


def config_hash(config: object) -> str:
    """sha256 of the canonical JSON (sorted keys) of a dataclass config."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config_hash expects a dataclass instance, got {type(config).__name__}")
    canonical = json.dumps(dataclasses.asdict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _package_version() -> str:
    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def source_tree_digest(directories: Iterable[Path]) -> str:
    """sha256 over the relative names and contents of every .py file under `directories`."""
    digest = hashlib.sha256()
    for directory in directories:
        directory = Path(directory)
        for path in sorted(directory.rglob("*.py")):
            digest.update(f"{directory.name}/{path.relative_to(directory).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """`<package version>+<12 hex digits of the preprocessing source>`, e.g. `0.1.0+3fa2c9d01b7e`."""
    datasets_dir = Path(__file__).resolve().parents[1]
    tree = source_tree_digest(datasets_dir / name for name in _CODE_PACKAGES)
    return f"{_package_version()}+{tree[:12]}"
