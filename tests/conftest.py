"""Shared pytest fixtures.

`synthetic_root`: a small synthetic ScanNet++ v2 dataset (2 scenes, 6 DSLR frames of 292x195, seed 0)
generated once per test session; its pairs folder is `synthetic_root / "pairs"`. Treat it as read-only.
`one_torch_thread`: torch limited to one thread for the test (the machines running the suite are small),
restored afterwards; use it with `pytest.mark.usefixtures("one_torch_thread")`.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

SYNTHETIC_SCENES = 2
SYNTHETIC_FRAMES = 6
SYNTHETIC_IMAGE_SIZE = (292, 195)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    from datasets.synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("synthetic_scannetpp")
    generate_dataset(root, SYNTHETIC_SCENES, seed=0, frames=SYNTHETIC_FRAMES, image_size=SYNTHETIC_IMAGE_SIZE)
    return root


@pytest.fixture
def one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS, `tests/s3_server.py`) for the session, on free ports with its
    data in a temporary folder; stopped at the end. Tests point clients at it with `s3_env`."""
    from s3_server import SeaweedS3

    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process's AWS_* variables point at the session's S3 server for the test; returns the server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return s3_server
