"""Views as the network sees them: uploaded, normalised and resized either all at once or one at a time.

`prepare_views` turns a list of views into network inputs up front (the whole-scene path). `NetworkViews`
does the same arithmetic for one view when it is asked for, reading it from an `ImageSource` (files, video
frames, or a list held in memory), so the streamed path never holds every decoded image at full size on
the host nor every network input on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from panst3r_core.inference.images import resize_for_model, target_resolution


@runtime_checkable
class ImageSource(Protocol):
    """Views read on demand, in view order. Implementations live where the files are known (datasets/)."""

    def __len__(self) -> int: ...

    def size(self, index: int) -> tuple[int, int]:
        """(H, W) of view `index` as stored, known without decoding its pixels."""
        ...

    def read(self, index: int) -> np.ndarray | torch.Tensor:
        """View `index`: (H, W, 3) uint8 RGB, or a (3, H, W) float tensor in [-1, 1]."""
        ...


class ListSource:
    """An `ImageSource` over views already in memory (what `Predictor.predict` gets as a list)."""

    def __init__(self, images: Sequence[np.ndarray | torch.Tensor]) -> None:
        self.images = images
        for index, image in enumerate(images):
            _check_view(index, image)

    def __len__(self) -> int:
        return len(self.images)

    def size(self, index: int) -> tuple[int, int]:
        image = self.images[index]
        if isinstance(image, torch.Tensor):
            return int(image.shape[1]), int(image.shape[2])
        return int(image.shape[0]), int(image.shape[1])

    def read(self, index: int) -> np.ndarray | torch.Tensor:
        return self.images[index]


def read_all(source: ImageSource) -> list[np.ndarray | torch.Tensor]:
    """Every view of `source` in order (the whole-scene path needs them all at once anyway)."""
    return [source.read(i) for i in range(len(source))]


class NetworkViews:
    """The network inputs of an `ImageSource`, made one view at a time on `device`.

    `shapes[i]` is view i's (3, H, W) network input shape, known before any pixel is read; indexing reads,
    uploads and resizes that view exactly as `prepare_views` does for a whole list (bitwise the same).
    """

    def __init__(self, source: ImageSource, image_size: int, patch_size: int, device: torch.device) -> None:
        if len(source) == 0:
            raise ValueError("no images given; pass at least one view")
        self.source = source
        self.image_size, self.patch_size, self.device = image_size, patch_size, device
        self.shapes = [
            (3, *target_resolution(*source.size(i), image_size, patch_size)) for i in range(len(source))
        ]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.source.read(index)
        _check_view(index, image)
        (view,), _ = prepare_views([image], self.image_size, self.patch_size, self.device)
        if tuple(view.shape) != self.shapes[index]:
            raise ValueError(
                f"view {index} changed size while the prediction ran: network input {tuple(view.shape)}, "
                f"expected {self.shapes[index]} from its stored size; do not modify the inputs during a run"
            )
        return view


def _check_view(index: int, image: np.ndarray | torch.Tensor) -> None:
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(
                f"view {index}: a tensor view must be (3, H, W) in [-1, 1], got {tuple(image.shape)}"
            )
        return
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"view {index}: expected an (H, W, 3) uint8 RGB array, got {array.dtype} {array.shape}"
        )


def prepare_views(
    images: Sequence[np.ndarray | torch.Tensor], image_size: int, patch_size: int, device: torch.device
) -> tuple[list[torch.Tensor], list[np.ndarray | torch.Tensor]]:
    """Views -> (network inputs (3, H, W) in [-1, 1] on `device`, the views as the network sees them).

    uint8 (H, W, 3) arrays are uploaded as uint8 (a quarter of the float bytes, one copy per shape group),
    then normalised exactly as ToTensor + Normalize(0.5, 0.5) and brought to a network resolution by the
    official crop + antialiased resize. The second list holds the original array when no resize happened,
    else the resized tensor (converted to uint8 on the host at the end).
    """
    uploaded: list[torch.Tensor | None] = [None] * len(images)
    groups: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        _check_view(i, image)
        if isinstance(image, torch.Tensor):
            uploaded[i] = image.to(device, torch.float32)
            continue
        groups.setdefault(np.asarray(image).shape, []).append(i)
    for indices in groups.values():
        batch = torch.from_numpy(np.stack([np.asarray(images[i]) for i in indices])).to(device)
        floats = (batch.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
        for j, i in enumerate(indices):
            uploaded[i] = floats[j]
    views, shown = [], []
    for i, view in enumerate(uploaded):
        assert view is not None
        resized = resize_for_model(view, image_size, patch_size)
        views.append(resized)
        unchanged = resized.shape == view.shape and not isinstance(images[i], torch.Tensor)
        shown.append(np.asarray(images[i]) if unchanged else resized)
    return views, shown


def to_uint8_tensor(view: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 on the same device (inverts the normalisation exactly for
    views that came from uint8 pixels)."""
    return ((view.float() * 0.5 + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


def to_uint8_image(view: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return to_uint8_tensor(view).cpu().numpy()
