"""The S3 connection settings come from the standard AWS variables, read in one place."""

from __future__ import annotations

import pytest

from datasets.store.s3_settings import DEFAULT_REGION, S3Settings

AWS_VARIABLES = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_s3_compatible_server(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
    clean_env.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")  # the S3-specific one wins
    clean_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "key")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = S3Settings.from_env()
    assert settings.endpoint == "http://127.0.0.1:9000" and settings.region == "eu-west-1"
    assert settings.allow_http and settings.path_style and not settings.anonymous
    assert settings.describe() == "http://127.0.0.1:9000"


def test_aws_itself_without_keys_is_anonymous(clean_env):
    settings = S3Settings.from_env()
    assert settings.endpoint is None and settings.region == DEFAULT_REGION
    assert settings.anonymous and not settings.allow_http and not settings.path_style
    assert settings.describe() == "AWS S3"
