"""Files beside the Zarr tree of an object-store store (tables, failure records, the digest cache): plain
objects under the store's prefix, read and written with obstore. One PUT replaces an object atomically, so a
reader sees the old bytes or the new ones, as with the rename of a local file.
"""

from __future__ import annotations

from datasets.store.location import StoreLocation
from datasets.store.s3_settings import S3Settings


class ObjectFiles:
    def __init__(self, location: StoreLocation, settings: S3Settings):
        self.location = location
        self._store = settings.obstore_store(location)

    def read(self, key: str) -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self._store, key).bytes())
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self._store, key, data)

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass

    def list(self, folder: str) -> list[str]:
        """Keys directly under `folder` (no deeper ones), sorted."""
        import obstore

        listed = obstore.list_with_delimiter(self._store, folder.strip("/") + "/")
        return sorted(item["path"] for item in listed["objects"])

    def any_key(self) -> str | None:
        """Some key under the prefix, or None when it holds nothing (a new store)."""
        import obstore

        for batch in obstore.list(self._store, chunk_size=1):
            for item in batch:
                return item["path"]
        return None

    def describe(self, key: str = "") -> str:
        return f"{self.location.text}/{key}" if key else self.location.text
