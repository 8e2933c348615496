"""Files beside the Zarr tree of an object-store store (tables, failure records, the digest cache): plain
objects under the store's prefix, read and written with obstore. One PUT replaces an object atomically, so a
reader sees the old bytes or the new ones, as with the rename of a local file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from datasets.store.location import StoreLocation
from datasets.store.s3_settings import S3Settings


class ObjectFiles:
    def __init__(self, location: StoreLocation, settings: S3Settings):
        self.location = location
        self.settings = settings
        self._store = settings.obstore_store(location)

    @contextmanager
    def _named_errors(self, key: str) -> Iterator[None]:
        """obstore's errors (refused connection, bad credentials, no bucket) as one ConnectionError naming
        the object, the endpoint and what to check; a missing object stays FileNotFoundError."""
        from obstore.exceptions import BaseError

        try:
            yield
        except FileNotFoundError:
            raise
        except BaseError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConnectionError(
                f"{self.describe(key)}: the object store at {self.settings.describe()} refused the request "
                f"({type(exc).__name__}: {first[:300]}); check AWS_ENDPOINT_URL (or --s3-endpoint), "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that the bucket exists"
            ) from exc

    def read(self, key: str) -> bytes | None:
        import obstore

        try:
            with self._named_errors(key):
                return bytes(obstore.get(self._store, key).bytes())
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        import obstore

        with self._named_errors(key):
            obstore.put(self._store, key, data)

    def delete(self, key: str) -> None:
        import obstore

        try:
            with self._named_errors(key):
                obstore.delete(self._store, key)
        except FileNotFoundError:
            pass

    def list(self, folder: str) -> list[str]:
        """Keys directly under `folder` (no deeper ones), sorted."""
        import obstore

        with self._named_errors(folder):
            listed = obstore.list_with_delimiter(self._store, folder.strip("/") + "/")
        return sorted(item["path"] for item in listed["objects"])

    def any_key(self) -> str | None:
        """Some key under the prefix, or None when it holds nothing (a new store)."""
        import obstore

        with self._named_errors(""):
            for batch in obstore.list(self._store, chunk_size=1):
                for item in batch:
                    return item["path"]
        return None

    def describe(self, key: str = "") -> str:
        return f"{self.location.text}/{key}" if key else self.location.text
