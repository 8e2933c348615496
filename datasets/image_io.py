"""Reading user images for prediction: a folder or a list of files -> RGB uint8 arrays, with clear errors.

`ImageFiles` reads them one at a time (the predictor's `ImageSource`), for sets too large to hold decoded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

LOG = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_DIGIT_RUNS = re.compile(r"(\d+)")
# A scene's images are encoded/decoded on a thread pool of at most this many (the codecs release the GIL).
MAX_CODEC_THREADS = 8


def codec_threads() -> int:
    """Threads for a scene's image encoding or decoding: min(MAX_CODEC_THREADS, CPUs)."""
    return min(MAX_CODEC_THREADS, os.cpu_count() or 1)


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: frame_2 before frame_10 (video dumps rarely zero-pad)."""
    parts = _DIGIT_RUNS.split(name)
    # (is_number, value) pairs keep text and numbers comparable; the raw name breaks remaining ties
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p.lower()) for p in parts), name


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand folders (their image files in natural name order, not recursive) and keep files as given.

    Order: the order of `inputs`, then natural order within each folder (frame_2 before frame_10);
    repeated paths are kept once; other files in a folder are skipped with a warning.
    Raises FileNotFoundError for a missing path and ValueError when nothing is left.
    """
    if not inputs:
        raise ValueError("no images given; pass a folder or image files to --images")
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = _folder_images(path)
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


def _folder_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = sorted(
        (p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name)
    )
    skipped = sorted(p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS)
    if skipped:
        LOG.warning(
            "folder %s: skipping %d file(s) that are not images (%s%s); images end in %s",
            folder,
            len(skipped),
            ", ".join(skipped[:5]),
            ", ..." if len(skipped) > 5 else "",
            ", ".join(IMAGE_EXTENSIONS),
        )
    return images


@contextmanager
def _opened_image(path: Path) -> Iterator[Image.Image]:
    """The PIL image of a file, with one error naming the file and the fix when it cannot be opened or
    decoded (inside the block too: PIL decodes lazily)."""
    try:
        with Image.open(path) as image:
            yield image
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist; check the image inputs") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(
            f"cannot read image {path} ({exc}); remove it from the inputs or convert it to PNG or JPEG"
        ) from None


def _check_not_empty(path: Path, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image {path} is empty ({width}x{height}); remove it from the inputs")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """One image file -> (H, W, 3) uint8 RGB (alpha dropped, greyscale expanded, no EXIF rotation).

    EXIF orientation is ignored on purpose, as in the official demo, so the pixels the model sees are the
    stored ones. Raises ValueError naming the file when it cannot be decoded.
    """
    path = Path(path)
    with _opened_image(path) as image:
        rgb = image.convert("RGB")
        rgb.load()
    array = np.asarray(rgb, dtype=np.uint8)
    _check_not_empty(path, array.shape[1], array.shape[0])
    return array


def load_images(inputs: Sequence[str | Path]) -> tuple[list[np.ndarray], list[Path]]:
    """Folders and/or files -> (list of (H, W, 3) uint8 RGB arrays, their paths), in collection order."""
    paths = collect_image_paths(inputs)
    return [read_image_rgb(p) for p in paths], paths


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header (no pixels decoded); ValueError naming the file otherwise."""
    path = Path(path)
    with _opened_image(path) as image:
        width, height = image.size
    _check_not_empty(path, width, height)
    return int(height), int(width)


class ImageFiles:
    """Image files read one at a time (an `ImageSource`): only their headers are read up front, so every
    unreadable file is reported before the model runs and no decoded image is kept."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no images given; pass a folder or image files to --images")
        self.sizes = [image_size(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def size(self, index: int) -> tuple[int, int]:
        return self.sizes[index]

    def read(self, index: int) -> np.ndarray:
        image = read_image_rgb(self.paths[index])
        if image.shape[:2] != self.sizes[index]:
            raise ValueError(
                f"image {self.paths[index]} changed size during the run ({image.shape[1]}x{image.shape[0]}, "
                f"was {self.sizes[index][1]}x{self.sizes[index][0]}); do not modify the inputs while predicting"
            )
        return image

    @property
    def names(self) -> list[str]:
        """View names: the file stems."""
        return [p.stem for p in self.paths]
