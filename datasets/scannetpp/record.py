"""Small typed records describing a ScanNet++ scene on disk (paths and camera metadata, no pixels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# COLMAP models whose parameters start with one focal length (f cx cy ...) instead of fx fy cx cy.
SINGLE_FOCAL_MODELS = frozenset(
    {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}
)


@dataclass(frozen=True)
class CameraModel:
    """A COLMAP camera: `model` is e.g. OPENCV_FISHEYE (fx fy cx cy k1 k2 k3 k4) or OPENCV
    (fx fy cx cy k1 k2 p1 p2) or PINHOLE (fx fy cx cy). Principal point in the COLMAP convention
    (the centre of the top-left pixel is (0.5, 0.5))."""

    model: str
    width: int
    height: int
    params: tuple[float, ...]

    @property
    def _pinhole_count(self) -> int:
        """How many leading params are the pinhole part: f cx cy (one focal) or fx fy cx cy."""
        return 3 if self.model in SINGLE_FOCAL_MODELS else 4

    @property
    def fx(self) -> float:
        return self.params[0]

    @property
    def fy(self) -> float:
        return self.params[0] if self._pinhole_count == 3 else self.params[1]

    @property
    def cx(self) -> float:
        return self.params[self._pinhole_count - 2]

    @property
    def cy(self) -> float:
        return self.params[self._pinhole_count - 1]

    @property
    def distortion(self) -> tuple[float, ...]:
        return tuple(self.params[self._pinhole_count :])


@dataclass(frozen=True)
class FrameRecord:
    """One selected image of a scene.

    `name` is the basename without extension as used in the pairs selection (`DSC01234`,
    `frame_000120`); `device` is "dslr" or "iphone"; `cam_to_world` is a 4x4 float64 matrix in OpenCV
    camera axes (x right, y down, z forward), metres, in the mesh frame."""

    name: str
    device: str
    image_path: Path
    mask_path: Path
    camera: CameraModel
    cam_to_world: np.ndarray


@dataclass(frozen=True)
class SceneRecord:
    """Everything the preprocessing needs to know about one scene, without reading pixels or the mesh."""

    scene_id: str
    root: Path
    scene_dir: Path
    mesh_path: Path
    segments_path: Path
    segments_anno_path: Path
    frames: tuple[FrameRecord, ...]
    pairs: np.ndarray | None = None  # (P, >=2) indices into `frames` when a pairs folder gave them
    class_list_path: Path | None = None
    instance_list_path: Path | None = None
    mapping_path: Path | None = None
    source_files: tuple[Path, ...] = field(default_factory=tuple)  # every input file, for content hashing
