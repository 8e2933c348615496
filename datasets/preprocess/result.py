"""The configuration and the in-memory result of preprocessing one scene."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.scannetpp.semantics import unknown_label_mode
from datasets.store.schema import DEFAULT_CLS_SEP

DEFAULT_FRAMES_PER_TASK = 32
"""Frames per chunk task of a long scene (rounded up to whole store shards); 0 = one task per scene. How the
work is split, not what it produces: no field of PreprocessConfig (the output is the same bit for bit).
Measured on 24-frame and 150-frame DSLR scenes: docs/benchmarks/preprocess_scaling_cpu.json."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of `preprocess_scene`. Every field changes the output, so all of them enter the config hash."""

    target_resolution: int = 920
    """Output images cover (target, target*3/4) with the official dust3r rescale rule (DSLR -> 1035x690)."""
    cls_sep: int = DEFAULT_CLS_SEP
    """Panoptic id = instance_id * cls_sep + class_id; 0 is void."""
    min_inst_area: int = 50
    """Ids covering fewer pixels than this in a frame become void (MIN_INST_AREA)."""
    export_crowd: bool = False
    """Keep crowd groups (thing class without instance mapping) as ordinary segments."""
    unknown_labels: str = "void"
    """A segGroup label that is neither a benchmark class nor listed in map_benchmark.csv: "void" (default)
    leaves it void as the official script does, and the scene records the labels and what they cover;
    "error" fails the scene with a message naming them. "skip", the old name of "void", is stored as "void".
    Labels the CSV lists without a target are always void, as in the official script."""
    znear: float = 0.05
    zfar: float = 20.0
    class_list: str = "metadata/semantic_benchmark/top100.txt"
    instance_list: str = "metadata/semantic_benchmark/top100_instance.txt"
    mapping_file: str = "metadata/semantic_benchmark/map_benchmark.csv"
    """The three class files, relative to the ScanNet++ root."""
    pairs_min_overlap: float = 0.3
    """When no pairs folder is given: keep pairs whose co-visibility from rendered depth is at least this."""
    jpeg_quality: int = 75
    """Quality of the JPEG round trip applied to images so they equal what the official script stores."""

    def __post_init__(self) -> None:
        # One spelling per mode, so that an alias hashes (and compares) like the mode it names.
        object.__setattr__(self, "unknown_labels", unknown_label_mode(self.unknown_labels))


@dataclass
class FrameBlock:
    """Frames of one scene that share an image size (DSLR and iPhone frames differ in size).

    Arrays are stacked along the first axis (F frames)."""

    camera: str  # "dslr" or "iphone"
    names: list[str]  # basenames without extension, selection order
    images: np.ndarray  # (F, H, W, 3) uint8 RGB, anonymised pixels black
    depth_mm: np.ndarray  # (F, H, W) uint16 millimetres, 0 = invalid
    panoptic: np.ndarray  # (F, H, W) uint32 ids instance*cls_sep+class, 0 = void
    intrinsics: np.ndarray  # (F, 3, 3) float64, COLMAP pixel convention, after undistortion + rescale
    cam_to_world: np.ndarray  # (F, 4, 4) float64, OpenCV camera axes, mesh frame, metres


@dataclass
class PreprocessedScene:
    """Everything written for one scene. `frame_order` lists (camera, index) in selection order."""

    scene_id: str
    blocks: dict[str, FrameBlock]  # keyed by camera ("dslr", "iphone")
    frame_order: list[tuple[str, int]]
    pairs: np.ndarray  # (P, 3) float64: frame index a, frame index b (selection order), overlap score
    segments: list[dict]  # {id, instance_id, class_id, orig_class_name, iscrowd}
    categories: list[dict]  # {id, name, isthing} for the class list
    timings: dict[str, float] = field(default_factory=dict)
    unknown_labels: UnknownLabelReport = field(default_factory=UnknownLabelReport)

    @property
    def num_frames(self) -> int:
        return len(self.frame_order)
