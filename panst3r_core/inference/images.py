"""Image loading and the official resize, without torchvision.

At size 512 the supported resolutions (W x H) are 512x384, 512x336, 512x288, 512x256, 512x160 (portrait:
transposed). An image already at one of them is kept; otherwise it is centre-cropped to the closest supported
aspect ratio (crop sizes truncated with int()) and resized with antialiased bilinear interpolation.
Other sizes: the long side becomes `size`, the short side the nearest multiple of 16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# W / H -> (W, H) at 512, landscape.
RESOLUTIONS_512: dict[float, tuple[int, int]] = {
    4 / 3: (512, 384),
    32 / 21: (512, 336),
    16 / 9: (512, 288),
    2 / 1: (512, 256),
    16 / 5: (512, 160),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_image_uint8(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def to_model_range(image_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], exactly ToTensor then Normalize(0.5, 0.5)."""
    tensor = torch.as_tensor(np.array(image_uint8, copy=True)).permute(2, 0, 1).float() / 255.0
    return (tensor - 0.5) / 0.5


def target_resolution(height: int, width: int, size: int = 512, patch_size: int = 16) -> tuple[int, int]:
    """(H, W) the image is brought to (orientation kept)."""
    landscape = width >= height
    ratio = width / height if landscape else height / width
    if size == 512:
        key = min(RESOLUTIONS_512, key=lambda r: abs(ratio - r))
        long_side, short_side = RESOLUTIONS_512[key]
    else:
        if size % patch_size:
            raise ValueError(f"image size {size} must be a multiple of the patch size {patch_size}")
        long_side = size
        short_side = max(patch_size, int(size / ratio / patch_size + 0.5) * patch_size)
    return (short_side, long_side) if landscape else (long_side, short_side)


def centre_crop_box(shape: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred crop of an (H, W) image to the aspect of `target` (h, w)."""
    height, width = shape
    ratio, target_ratio = width / height, target[1] / target[0]
    if abs(ratio - target_ratio) < np.finfo(np.float32).eps:
        crop_h, crop_w = height, width
    elif ratio < target_ratio:
        crop_h, crop_w = int(width / target_ratio), width
    else:
        crop_h, crop_w = height, int(height * target_ratio)
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0)), crop_h, crop_w


def resize_for_model(image: torch.Tensor, size: int = 512, patch_size: int = 16) -> torch.Tensor:
    """(3, H, W) float image -> (3, H', W') at a supported resolution (centre crop + antialiased bilinear)."""
    _, H, W = image.shape
    if size == 512 and (max(H, W), min(H, W)) in RESOLUTIONS_512.values():
        return image
    th, tw = target_resolution(H, W, size, patch_size)
    top, left, crop_h, crop_w = centre_crop_box((H, W), (th, tw))
    cropped = image[:, top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) == (th, tw):
        return cropped.contiguous()
    resized = F.interpolate(
        cropped[None], size=(th, tw), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0]


def list_image_files(inputs: list[str | Path]) -> list[Path]:
    """Files and directories (their images, sorted by name) -> image paths in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"directory {path} contains no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"image {path} does not exist")
    return files


def load_images(inputs: list[str | Path], size: int | None = 512, patch_size: int = 16) -> list[torch.Tensor]:
    """Image files/directories -> list of (3, H, W) float32 tensors in [-1, 1] ready for the model.

    size=None keeps the original size (it must then be a multiple of the patch size)."""
    images = []
    for path in list_image_files(inputs):
        image = to_model_range(load_image_uint8(path))
        if size is not None:
            image = resize_for_model(image, size, patch_size)
        elif image.shape[1] % patch_size or image.shape[2] % patch_size:
            raise ValueError(
                f"image {path} is {image.shape[2]}x{image.shape[1]}: not a multiple of {patch_size}"
            )
        images.append(image)
    return images
