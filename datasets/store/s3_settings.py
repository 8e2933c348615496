"""How to reach an S3-compatible server: the standard AWS environment variables, read in one place and handed
explicitly to both clients the object-store store uses (Icechunk for the scenes, obstore for the tables and
records beside them), so that they can never disagree about the endpoint or the credentials.

`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (any S3-compatible server; unset = AWS itself),
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`; none = anonymous access),
`AWS_REGION` or `AWS_DEFAULT_REGION` (default us-east-1). Processes started from ours (Dask workers,
torchrun ranks) inherit them; workers of a remote cluster need them set on their own hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from datasets.store.location import StoreLocation

ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_REGION = "us-east-1"


def _first(names: tuple[str, ...]) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None

    @staticmethod
    def from_env() -> S3Settings:
        return S3Settings(
            endpoint=_first(ENDPOINT_ENV),
            region=_first(REGION_ENV) or DEFAULT_REGION,
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        )

    @property
    def anonymous(self) -> bool:
        return self.access_key_id is None

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint) and self.endpoint.startswith("http://")

    @property
    def path_style(self) -> bool:
        # S3-compatible servers (SeaweedFS, MinIO, ...) are addressed as ENDPOINT/BUCKET; AWS by host name.
        return bool(self.endpoint)

    def describe(self) -> str:
        return self.endpoint or "AWS S3"

    def icechunk_storage(self, location: StoreLocation, subfolder: str):
        """Icechunk storage of the repository at `location`'s prefix + `subfolder`."""
        import icechunk

        return icechunk.s3_storage(
            bucket=location.bucket,
            prefix=_join(location.prefix, subfolder),
            region=self.region,
            endpoint_url=self.endpoint,
            allow_http=self.allow_http,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            session_token=self.session_token,
            anonymous=self.anonymous,
            force_path_style=self.path_style,
        )

    def obstore_store(self, location: StoreLocation):
        """An obstore S3Store rooted at `location`'s prefix."""
        from obstore.store import S3Store

        credentials = {}
        if not self.anonymous:
            credentials = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
            if self.session_token:
                credentials["session_token"] = self.session_token
        return S3Store(
            location.bucket,
            prefix=location.prefix or None,
            region=self.region,
            endpoint=self.endpoint,
            virtual_hosted_style_request=not self.path_style,
            skip_signature=self.anonymous,
            client_options={"allow_http": self.allow_http},
            **credentials,
        )


def _join(prefix: str, subfolder: str) -> str:
    return "/".join(part for part in (prefix.strip("/"), subfolder.strip("/")) if part)
