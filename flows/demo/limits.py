"""Upload limits and image decoding for the demo, with messages a user can act on.

Everything a browser sends is untrusted: too many files, files too large, files that are not images,
or images whose bytes are truncated. Each case becomes an `DemoInputError` (a ValueError) whose message
names the file and says what to do; the UI shows it as a one-line error instead of a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats Pillow decodes without extra plugins; the file picker and the local-folder listing use it too.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

_MB = 1024 * 1024


class DemoInputError(ValueError):
    """A user-caused problem with the uploaded or selected input; the message is shown as is."""


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on what one run may receive.

    max_images: most images per run (the model's memory grows with the number of views).
    max_image_mb: largest single image file, in MiB.
    max_total_mb: largest sum of all image files of one run, in MiB.
    max_pixels: largest decoded image (width x height); guards against decompression bombs.
    """

    max_images: int = 200
    max_image_mb: float = 50.0
    max_total_mb: float = 1000.0
    max_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        if self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}; pass --max-images 1 or more")
        for name in ("max_image_mb", "max_total_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def display_name(path: Path) -> str:
    """The file name a user recognises (uploads live in random temp folders; the base name is theirs)."""
    return Path(path).name


def check_upload(paths: Sequence[str | Path] | None, limits: UploadLimits) -> list[Path]:
    """Validate count, suffix and sizes of the selected files before anything is decoded.

    Returns the paths as `Path`s in the given order; raises DemoInputError naming the first offending
    file and the limit it breaks.
    """
    if not paths:
        raise DemoInputError("no images selected: upload at least one image (PNG or JPEG), then press Run")
    files = [Path(p) for p in paths]
    if len(files) > limits.max_images:
        raise DemoInputError(
            f"{len(files)} images selected but this server accepts at most {limits.max_images} per run; "
            "select fewer images (or start the demo with a larger --max-images)"
        )
    total = 0
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DemoInputError(
                f"'{display_name(path)}' is not an image file this demo reads (suffix {path.suffix or 'none'}); "
                f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
            )
        if not path.is_file():
            raise DemoInputError(f"'{display_name(path)}' is missing on the server; upload it again")
        size = path.stat().st_size
        if size > limits.max_image_mb * _MB:
            raise DemoInputError(
                f"'{display_name(path)}' is {size / _MB:.1f} MiB, above the limit of {limits.max_image_mb:g} MiB "
                "per image; downscale it or save it as JPEG"
            )
        total += size
    if total > limits.max_total_mb * _MB:
        raise DemoInputError(
            f"the selected images total {total / _MB:.1f} MiB, above the limit of {limits.max_total_mb:g} MiB "
            "per run; select fewer or smaller images"
        )
    return files


def load_rgb_image(path: Path, limits: UploadLimits) -> np.ndarray:
    """Decode one image file fully into an (H, W, 3) uint8 RGB array, or raise DemoInputError."""
    name = display_name(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > limits.max_pixels:
                raise DemoInputError(
                    f"'{name}' is {width}x{height} pixels, above the limit of {limits.max_pixels} pixels; "
                    "downscale it first"
                )
            # convert() forces a full decode, so truncated files fail here and not inside the model.
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except DemoInputError:
        raise
    except UnidentifiedImageError:
        raise DemoInputError(
            f"'{name}' could not be read as an image (unknown or damaged format); "
            "re-save it as PNG or JPEG, or remove it from the selection"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DemoInputError(
            f"'{name}' is damaged and could not be decoded ({exc}); "
            "re-save it as PNG or JPEG, or remove it from the selection"
        ) from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DemoInputError(f"'{name}' decoded to an empty image; remove it from the selection")
    return rgb


def load_images(paths: Sequence[str | Path] | None, limits: UploadLimits) -> list[np.ndarray]:
    """check_upload, then decode every file: a list of (H, W, 3) uint8 RGB arrays in input order."""
    return [load_rgb_image(path, limits) for path in check_upload(paths, limits)]
