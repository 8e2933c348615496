"""Views read one at a time give bitwise the network inputs of the whole-list preparation."""

import numpy as np
import pytest
import torch

from panst3r_core.inference.view_source import ListSource, NetworkViews, prepare_views, to_uint8_tensor


class _SizesOnly(ListSource):
    """Fails on any read: proves the shapes come from the sizes alone."""

    def read(self, index):
        raise AssertionError("read before it was needed")


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [(96, 128), (128, 96), (100, 180), (384, 512)]  # kept, portrait, cropped+resized, other size
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.parametrize("image_size", [128, 512])
def test_network_views_equal_prepare_views(image_size):
    images = _images()
    whole, shown = prepare_views(images, image_size, 16, torch.device("cpu"))
    lazy = NetworkViews(_SizesOnly(images), image_size, 16, torch.device("cpu"))
    assert lazy.shapes == [tuple(v.shape) for v in whole]
    lazy = NetworkViews(ListSource(images), image_size, 16, torch.device("cpu"))
    for i, view in enumerate(whole):
        assert torch.equal(lazy[i], view)
        # the uint8 image a streamed chunk reports is the one the whole-scene path reports
        expected = shown[i] if isinstance(shown[i], np.ndarray) else to_uint8_tensor(shown[i]).numpy()
        assert np.array_equal(to_uint8_tensor(lazy[i]).numpy(), expected)


def test_uint8_round_trip_is_exact():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    (view,), _ = prepare_views([pixels], 16, 16, torch.device("cpu"))
    assert np.array_equal(to_uint8_tensor(view).numpy(), pixels)


def test_bad_views_are_named():
    with pytest.raises(ValueError, match=r"view 1: expected an \(H, W, 3\) uint8"):
        ListSource([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)])
    with pytest.raises(ValueError, match="no images"):
        NetworkViews(ListSource([]), 128, 16, torch.device("cpu"))
