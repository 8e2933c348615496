"""Reading user images for prediction: a folder or a list of files -> RGB uint8 arrays, with clear errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand folders (their image files, sorted by name, not recursive) and keep files as given.

    Order: the order of `inputs`, then sorted names within each folder; repeated paths are kept once.
    Raises FileNotFoundError for a missing path and ValueError when nothing is left.
    """
    if not inputs:
        raise ValueError("no images given; pass a folder or image files to --images")
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(
                    f"folder {path} holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                    "point --images at a folder of images or list the files"
                )
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"image path {path} does not exist; check the --images argument")
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def read_image_rgb(path: str | Path) -> np.ndarray:
    """One image file -> (H, W, 3) uint8 RGB (alpha dropped, greyscale expanded, no EXIF rotation).

    EXIF orientation is ignored on purpose, as in the official demo, so the pixels the model sees are the
    stored ones. Raises ValueError naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            rgb.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist; check the --images argument") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(
            f"cannot read image {path} ({exc}); remove it from --images or convert it to PNG or JPEG"
        ) from None
    array = np.asarray(rgb, dtype=np.uint8)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"image {path} is empty ({array.shape[1]}x{array.shape[0]}); remove it from --images"
        )
    return array


def load_images(inputs: Sequence[str | Path]) -> tuple[list[np.ndarray], list[Path]]:
    """Folders and/or files -> (list of (H, W, 3) uint8 RGB arrays, their paths), in collection order."""
    paths = collect_image_paths(inputs)
    return [read_image_rgb(p) for p in paths], paths
