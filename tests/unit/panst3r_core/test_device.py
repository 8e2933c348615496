"""The one rule for `--device`: auto picks CUDA when present; CUDA asked for without it is a clear error."""

import pytest
import torch

from panst3r_core.device import resolve_device


def test_auto_and_explicit_devices():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_names_the_fix():
    with pytest.raises(ValueError, match="use --device cpu"):
        resolve_device("cuda:1")
