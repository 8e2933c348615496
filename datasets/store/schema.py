"""Layout and version of the preprocessed-scene store.

STORE/
  scenes.zarr/                      zarr v3 root group; attrs: schema_version, store_uuid, categories, cls_sep
    scenes/<scene_id>/              one committed group per scene (attrs: see SCENE_ATTR_KEYS)
      pairs                         (P, 3) float64: frame a, frame b (selection order), overlap
      <camera>/                     "dslr" / "iphone": frames that share one image size
        images (F,H,W,3) uint8, depth_mm (F,H,W) uint16, panoptic (F,H,W) uint32,
        intrinsics (F,3,3) float64, cam_to_world (F,4,4) float64; attrs: names
    _staging/<scene_id>.<uuid>/     a scene being written (invisible to readers)
    _trash/                         replaced versions waiting to be deleted
  tables/{scenes,frames,pairs}.parquet   derived from the committed groups + failure records
  failures/<scene_id>.json          the last failure of a scene
  cache/digests.json                content digests of input files (skips re-reading unchanged inputs)

In an object store (`s3://bucket/prefix`) the same tree lives in an Icechunk repository at
`prefix/scenes.icechunk/` instead of `scenes.zarr/` (no `_staging`/`_trash`: a session is the staging, a
commit the rename), and the files beside it are objects under `prefix/` with the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
"""Bump whenever arrays, dtypes or attrs change meaning; readers refuse any other version. An attr added
without changing any other (e.g. `unknown_labels`) is no bump: readers treat its absence as "not recorded",
and older stores stay readable."""

DEFAULT_CLS_SEP = 256
"""Panoptic id = instance_id * cls_sep + class_id (0 = void): the preprocessing default, and what a store
without the root attribute `cls_sep` was written with."""

ZARR_DIRNAME = "scenes.zarr"
SCENES_GROUP = "scenes"
STAGING_DIRNAME = "_staging"
TRASH_DIRNAME = "_trash"
TABLES_DIRNAME = "tables"
FAILURES_DIRNAME = "failures"
CACHE_DIRNAME = "cache"
ICECHUNK_DIRNAME = "scenes.icechunk"
TABLE_NAMES = ("scenes", "frames", "pairs")
DIGEST_CACHE_KEY = f"{CACHE_DIRNAME}/digests.json"
"""Keys of the files beside the Zarr tree are relative to the store root, the same in both backends."""


def table_key(name: str) -> str:
    if name not in TABLE_NAMES:
        raise ValueError(f"unknown table {name!r}; the store has {', '.join(TABLE_NAMES)}")
    return f"{TABLES_DIRNAME}/{name}.parquet"


def failure_key(scene_id: str) -> str:
    return f"{FAILURES_DIRNAME}/{scene_id}.json"


FRAME_ARRAYS = ("images", "depth_mm", "panoptic", "intrinsics", "cam_to_world")
SCENE_ATTR_KEYS = (
    "schema_version",
    "scene_id",
    "source_hash",
    "config_hash",
    "code_version",
    "frame_order",
    "segments",
    "categories",
    "num_frames",
    "split",
    "timings",
    "committed_at",
    "made_with",
    "unknown_labels",
)
"""`unknown_labels` (`{labels: {label: void vertices}, vertices, pixels}`, see
datasets.preprocess.unknown_labels) is absent from scenes committed before it existed."""

SHARD_FRAMES = 16
"""Frames per shard: fewer files per scene. No shard is shared by two writers: a scene is written by one task,
or by frame-chunk tasks whose chunks start on shard boundaries (writer.write_staged_frames checks it)."""


class SchemaVersionError(ValueError):
    """The store was written by a different schema version."""


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside a store directory."""

    root: Path

    @property
    def zarr_root(self) -> Path:
        return self.root / ZARR_DIRNAME

    @property
    def scenes_dir(self) -> Path:
        return self.zarr_root / SCENES_GROUP

    @property
    def staging_dir(self) -> Path:
        return self.zarr_root / STAGING_DIRNAME

    @property
    def trash_dir(self) -> Path:
        return self.zarr_root / TRASH_DIRNAME

    @property
    def tables_dir(self) -> Path:
        return self.root / TABLES_DIRNAME

    @property
    def failures_dir(self) -> Path:
        return self.root / FAILURES_DIRNAME

    @property
    def digest_cache_path(self) -> Path:
        return self.root / DIGEST_CACHE_KEY

    def scene_dir(self, scene_id: str) -> Path:
        return self.scenes_dir / scene_id

    def table_path(self, name: str) -> Path:
        return self.root / table_key(name)

    def failure_path(self, scene_id: str) -> Path:
        return self.root / failure_key(scene_id)

    def committed_scene_ids(self) -> list[str]:
        """Scene groups that finished their atomic commit (a group's zarr.json is written before the rename)."""
        if not self.scenes_dir.is_dir():
            return []
        return sorted(p.name for p in self.scenes_dir.iterdir() if (p / "zarr.json").is_file())


def check_schema_version(found: object, store: Path) -> None:
    """Raise SchemaVersionError naming the store when `found` is not the version this code reads."""
    if found != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"store {store} has schema_version {found}, this code reads {SCHEMA_VERSION}; "
            "re-run preprocess into a new store"
        )
