"""host_to_device: a host tensor on the training device, same values (pinned first on a GPU)."""

import pytest
import torch

from panst3r_core.losses.host_to_device import host_to_device


def test_cpu_target_keeps_the_tensor():
    host = torch.arange(5)
    assert host_to_device(host, torch.device("cpu")) is host


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_copy_has_the_same_values():
    host = torch.arange(5)
    moved = host_to_device(host, torch.device("cuda"))
    assert moved.is_cuda and torch.equal(moved.cpu(), host)
