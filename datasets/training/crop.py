"""Per-view crop and resize of training views, as the official `_crop_resize_if_necessary` does.

1. Crop symmetrically around the principal point (the largest window centred on (cx, cy)).
2. Pick the target (W, H): the batch resolution, transposed for a portrait view, a random orientation for
   a nearly square one.
3. `aug_crop`: add one random integer delta in [0, aug_crop) to both target sides and rescale the view so it
   covers that size (Lanczos when shrinking, bicubic when enlarging; depth and id maps by nearest neighbour,
   so ids are never interpolated).
4. Crop the target size centred on the principal point.
5. Transpose portrait results to landscape (image, depth, id maps and K alike; the official code leaves the
   id maps untransposed, which only works because ScanNet++ views are landscape); `view_pose` gives the
   camera-to-world that fits the transposed view (x and y axes swapped).

Intrinsics use the COLMAP pixel convention of the store (the image spans [0, W] x [0, H], pixel centres at
+0.5): scaling multiplies fx, cx (fy, cy) by the size ratio and cropping subtracts the crop offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# Views whose aspect ratio is within this factor of 1 count as square: their orientation is random.
SQUARE_TOLERANCE = 1.1


@dataclass
class CroppedView:
    """image (H, W, 3) uint8; depth (H, W) float32; labels: (H, W) integer maps; intrinsics (3, 3) float64;
    transposed: the view was portrait and has been turned to landscape."""

    image: np.ndarray
    depth: np.ndarray
    labels: list[np.ndarray]
    intrinsics: np.ndarray
    transposed: bool


def crop_around_principal_point(
    arrays: list[np.ndarray], intrinsics: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Largest window centred on (cx, cy); every array (H, W, ...) is cut the same way."""
    height, width = arrays[0].shape[:2]
    cx, cy = float(intrinsics[0, 2]), float(intrinsics[1, 2])
    half_w = min(cx, width - cx)
    half_h = min(cy, height - cy)
    if half_w < 0.5 or half_h < 0.5:
        raise ValueError(
            f"principal point ({cx:.1f}, {cy:.1f}) lies on or outside the border of a {width}x{height} view"
        )
    left, right = int(round(cx - half_w)), int(round(cx + half_w))
    top, bottom = int(round(cy - half_h)), int(round(cy + half_h))
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(max(right, left + 1), width), min(max(bottom, top + 1), height)
    K = intrinsics.astype(np.float64).copy()
    K[0, 2] -= left
    K[1, 2] -= top
    return [array[top:bottom, left:right] for array in arrays], K


def target_size(
    width: int, height: int, resolution: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int, bool]:
    """(W, H, portrait) for a view of size width x height at batch resolution (W, H) (landscape)."""
    res_w, res_h = resolution
    ratio = width / height
    if ratio < 1 / SQUARE_TOLERANCE:
        portrait = True
    elif ratio <= SQUARE_TOLERANCE:
        portrait = bool(rng.integers(0, 2))
    else:
        portrait = False
    if portrait:
        return res_h, res_w, True
    return res_w, res_h, False


def _nearest_indices(source: int, target: int) -> np.ndarray:
    # Output pixel j covers [j, j+1) / scale in the source: its centre's source pixel.
    scale = target / source
    return np.minimum(((np.arange(target) + 0.5) / scale).astype(np.int64), source - 1)


def resize_nearest(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W, ...) by index gathering (any dtype; values copied, never mixed)."""
    rows = _nearest_indices(array.shape[0], height)
    cols = _nearest_indices(array.shape[1], width)
    return array[rows[:, None], cols[None, :]]


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3): Lanczos when shrinking, bicubic when enlarging (as dust3r)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[1] * image.shape[0]
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), method))


def _crop_centred(size: int, target: int, centre: float) -> int:
    return int(np.clip(round(centre - target / 2), 0, size - target))


# Swaps the camera's x and y axes: what transposing an image does to its camera.
_SWAP_XY = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)


def view_pose(cam_to_world: np.ndarray, view: CroppedView) -> np.ndarray:
    """The camera-to-world (4, 4) that fits the returned view: for a transposed view, the camera whose x and y
    axes are swapped, so that its K and depth back-project to the same world points as the original."""
    pose = np.asarray(cam_to_world, dtype=np.float64).copy()
    if view.transposed:
        pose[:3, :3] = pose[:3, :3] @ _SWAP_XY
    return pose


def _to_landscape(view: CroppedView) -> CroppedView:
    swap = _SWAP_XY
    return CroppedView(
        image=np.ascontiguousarray(view.image.transpose(1, 0, 2)),
        depth=np.ascontiguousarray(view.depth.T),
        labels=[np.ascontiguousarray(label.T) for label in view.labels],
        intrinsics=swap @ view.intrinsics @ swap,
        transposed=True,
    )


def crop_resize_view(
    image: np.ndarray,
    depth: np.ndarray,
    labels: list[np.ndarray],
    intrinsics: np.ndarray,
    resolution: tuple[int, int],
    aug_crop: int,
    rng: np.random.Generator,
) -> CroppedView:
    """One view at the batch `resolution` (W, H), always returned landscape: (H, W) arrays.

    image (h, w, 3) uint8; depth (h, w) float; labels: (h, w) integer maps (e.g. instance and class ids);
    intrinsics (3, 3) in the COLMAP pixel convention."""
    (image, depth, *labels), K = crop_around_principal_point([image, depth, *labels], intrinsics)
    height, width = image.shape[:2]
    target_w, target_h, portrait = target_size(width, height, resolution, rng)
    delta = int(rng.integers(0, aug_crop)) if aug_crop > 0 else 0
    cover_w, cover_h = target_w + delta, target_h + delta
    scale = max(cover_w / width, cover_h / height)
    new_w = max(cover_w, int(round(width * scale)))
    new_h = max(cover_h, int(round(height * scale)))
    image = resize_image(image, new_w, new_h)
    depth = resize_nearest(depth, new_w, new_h)
    labels = [resize_nearest(label, new_w, new_h) for label in labels]
    K[0] *= new_w / width
    K[1] *= new_h / height
    K[2] = (0.0, 0.0, 1.0)
    left = _crop_centred(new_w, target_w, K[0, 2])
    top = _crop_centred(new_h, target_h, K[1, 2])
    window = (slice(top, top + target_h), slice(left, left + target_w))
    K[0, 2] -= left
    K[1, 2] -= top
    view = CroppedView(
        image=image[window],
        depth=depth[window],
        labels=[label[window] for label in labels],
        intrinsics=K,
        transposed=False,
    )
    return _to_landscape(view) if portrait else view
