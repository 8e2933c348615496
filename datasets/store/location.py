"""Where a store lives: a local directory, or a prefix of an S3-compatible bucket (`s3://bucket/prefix`).

An object-store location may pin one version of the store, `s3://bucket/prefix?snapshot=ID`: readers of a
pinned location see exactly that snapshot however many scenes are committed after it (training and
evaluation pin the store they start on, and MLflow records the id). Writers refuse pinned locations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

OBJECT_STORE_SCHEME = "s3"
SNAPSHOT_QUERY = "snapshot"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed `--store` value. Local paths keep the text they were given (relative stays relative)."""

    text: str
    """The local path as given, or `s3://bucket/prefix` without the snapshot."""
    bucket: str = ""
    prefix: str = ""
    snapshot: str | None = None

    @staticmethod
    def parse(store: str | Path | StoreLocation) -> StoreLocation:
        """ValueError naming the value for a URL of another scheme or one without a bucket."""
        if isinstance(store, StoreLocation):
            return store
        text = str(store)
        if "://" not in text:
            return StoreLocation(str(Path(text)))
        parts = urlsplit(text)
        if parts.scheme != OBJECT_STORE_SCHEME:
            raise ValueError(
                f"--store {text}: only local directories and s3://BUCKET/PREFIX are supported (any S3-compatible "
                "server: set AWS_ENDPOINT_URL or --s3-endpoint)"
            )
        if not parts.netloc:
            raise ValueError(f"--store {text} names no bucket; write s3://BUCKET/PREFIX")
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {SNAPSHOT_QUERY})
        if unknown:
            raise ValueError(
                f"--store {text}: unknown parameter {unknown[0]!r}; the only one is ?{SNAPSHOT_QUERY}=ID"
            )
        snapshot = query.get(SNAPSHOT_QUERY, [None])[0]
        prefix = parts.path.strip("/")
        url = f"{OBJECT_STORE_SCHEME}://{parts.netloc}/{prefix}".rstrip("/")
        return StoreLocation(url, parts.netloc, prefix, snapshot)

    @property
    def is_local(self) -> bool:
        return not self.bucket

    @property
    def path(self) -> Path:
        """The local directory; ValueError for an object store (callers that need files must not get one)."""
        if not self.is_local:
            raise ValueError(f"store {self} is in an object store, not a local directory")
        return Path(self.text)

    @property
    def name(self) -> str:
        """The last part of the path or prefix (e.g. what a training sample names its dataset)."""
        return Path(self.text).name if self.is_local else self.prefix.rsplit("/", 1)[-1] or self.bucket

    def resolved(self) -> StoreLocation:
        """Local paths made absolute (a flow run may start in another directory); URLs as they are."""
        return StoreLocation(str(Path(self.text).resolve())) if self.is_local else self

    def pinned(self, snapshot: str | None) -> StoreLocation:
        return replace(self, snapshot=snapshot)

    def __str__(self) -> str:
        return self.text + (f"?{SNAPSHOT_QUERY}={self.snapshot}" if self.snapshot else "")


def is_object_store(store: str | Path | StoreLocation) -> bool:
    return not StoreLocation.parse(store).is_local
