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
