"""A frame's RGB image and anonymisation mask as PIL decodes them, and the official JPEG round trip.

A complete JPEG of three 8-bit components is decoded by OpenCV instead of PIL: both decode with
libjpeg-turbo's defaults (accurate integer IDCT, fancy upsampling), so the pixels are PIL's bit for bit
(tests compare them over subsamplings, qualities and progressive files), in about a third of the time (PIL
keeps RGB as 4-byte RGBX rows that it repacks into a new array, and the old path copied it twice more).
Anything else (grey or CMYK JPEGs, PNG, a JPEG that does not end with its end-of-image marker, so possibly
truncated) goes through PIL, with PIL's errors.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from datasets.preprocess.error_kinds import lasting_os_error
from datasets.preprocess.errors import BadSceneInput

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_OPENCV_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # PIL does not apply EXIF rotation either


def read_frame_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) writable uint8 RGB of an image file."""
    with _file_errors("image", path):
        return decode_rgb(Path(path).read_bytes())


def read_frame_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 anonymisation mask (converted to grey when stored otherwise)."""
    with _file_errors("anonymisation mask", path), Image.open(path) as image:
        mask = image if image.mode == "L" else image.convert("L")
        return np.asarray(mask).copy()


@contextmanager
def _file_errors(kind: str, path: Path) -> Iterator[None]:
    """BadSceneInput naming the file when it is missing or cannot be decoded; an unreadable file's OSError
    is raised as is (its fix is the file's permissions, not a new file)."""
    try:
        yield
    except FileNotFoundError:
        raise BadSceneInput(f"{kind} not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        if lasting_os_error(exc):
            raise
        raise BadSceneInput(f"{kind} {path} cannot be decoded ({exc}); replace the file") from exc


def jpeg_round_trip(rgb: np.ndarray | Image.Image, quality: int = 75) -> np.ndarray:
    """(H, W, 3) uint8 or a PIL RGB image -> the (H, W, 3) pixels a reader gets back from PIL's JPEG at
    `quality` (PIL's default is 75)."""
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return decode_rgb(buffer.getvalue())


def decode_rgb(data: bytes) -> np.ndarray:
    """(H, W, 3) writable uint8 RGB of encoded image bytes, as PIL's convert("RGB") gives them."""
    with Image.open(io.BytesIO(data)) as image:
        if _opencv_decodes_like_pil(image, data):
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _OPENCV_FLAGS)
            if bgr is not None and bgr.shape[:2] == (image.height, image.width):
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return np.array(image.convert("RGB"))


def _opencv_decodes_like_pil(image: Image.Image, data: bytes) -> bool:
    """A complete JPEG of three 8-bit components (PIL has only read its header so far)."""
    return (
        image.format == "JPEG"
        and image.mode == "RGB"
        and data.startswith(_JPEG_START)
        and data.endswith(_JPEG_END)
    )
