"""The Parquet tables `scenes`, `frames` and `pairs`, derived from committed scene groups + failure records.

Rebuilt in the flow process only (after each finished task and at the end), each replaced atomically (a
temporary file renamed, or one PUT on an object store), so a reader always sees a consistent table that
lists committed scenes only. On an object store the tables are built from one snapshot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datasets.preprocess.unknown_labels import UnknownLabelReport
from datasets.store.backend import StoreRef, backend_for
from datasets.store.failures import read_failures
from datasets.store.location import StoreLocation
from datasets.store.reader import StoreReader
from datasets.store.schema import TABLE_NAMES, table_key
from datasets.store.staleness import CurrentVersion

SCENE_COLUMNS = [
    "scene_id",
    "status",
    "error",
    "stale_reason",
    "frames",
    "split",
    "source_hash",
    "config_hash",
    "code_version",
    "seconds",
    "committed_at",
    "unknown_labels",
    "unknown_label_vertices",
    "unknown_label_pixels",
]
"""`unknown_labels`: the segGroup labels left void because map_benchmark.csv does not list them (quoted,
comma-separated; "" for none), with the mesh vertices and frame pixels they cover; the counts are missing
(<NA>) for failed scenes and for scenes committed before they were recorded."""
FRAME_COLUMNS = [
    "scene_id",
    "frame_index",
    "name",
    "camera",
    "index_in_camera",
    "height",
    "width",
    "fx",
    "fy",
    "cx",
    "cy",
    "split",
]
PAIR_COLUMNS = ["scene_id", "frame_a", "frame_b", "overlap", "split"]
_SNAPSHOT_KEY = b"panst3r.snapshot"
"""Parquet metadata key: the Icechunk snapshot an object store's tables were built from."""


@dataclass(frozen=True)
class _SceneRows:
    """One committed scene's share of the tables, as columns: the whole run's rows become one DataFrame
    per table, typed once (a DataFrame typed per scene cost about as much as reading the scene)."""

    scene_id: str
    token: object
    attrs: dict
    frames: dict[str, np.ndarray]
    pairs: np.ndarray
    """(P, 3): frame index a, frame index b, overlap."""

    @property
    def split(self) -> str:
        return str(self.attrs.get("split") or "")


class TableBuilder:
    """Builds the three tables, caching each committed scene's rows by its backend's commit token (for a
    directory the inode + mtime of its zarr.json: a re-commit renames a new directory in), so rebuilding
    after every task stays cheap."""

    def __init__(self, store: StoreRef):
        self.store = store
        self.built_from: str | None = None
        """The snapshot the last build read (object stores), recorded in the tables it writes."""
        self._cache: dict[str, _SceneRows] = {}

    def _scene_rows(self, reader: StoreReader, scene_id: str) -> _SceneRows:
        token = reader.backend.scene_token(scene_id)
        cached = self._cache.get(scene_id)
        if cached is not None and cached.token == token:
            return cached
        attrs = reader.scene_attrs(scene_id)
        pairs = np.asarray(reader.pairs(scene_id)).reshape(-1, 3)
        rows = _SceneRows(scene_id, token, attrs, _frame_columns(reader, scene_id, attrs), pairs)
        self._cache[scene_id] = rows
        return rows

    def read_new_scenes(self) -> int:
        """Read the rows of every committed scene not cached yet, without building the tables; returns how
        many. A run that calls this while its tasks work pays only for its last scenes at the final build (a
        cold build reads about 7-30 ms of Zarr metadata and arrays per scene: a minute for 2,000 scenes)."""
        backend = backend_for(self.store)
        backend.refresh()
        if not backend.exists():
            return 0
        reader = StoreReader(backend)
        before = len(self._cache)
        for scene_id in reader.scene_ids():
            self._scene_rows(reader, scene_id)
        return len(self._cache) - before

    def build(self, current: CurrentVersion | None = None) -> dict[str, pd.DataFrame]:
        """The three tables as DataFrames (scenes sorted by id)."""
        backend = backend_for(self.store)
        backend.refresh()  # an object store's newest snapshot
        failures = read_failures(backend)
        reader = StoreReader(backend) if backend.exists() else None
        committed = reader.scene_ids() if reader is not None else []
        snapshot = reader.version() if reader is not None else None
        self.built_from = snapshot.id if snapshot is not None else None
        scene_rows, parts = [], []
        for scene_id in committed:
            part = self._scene_rows(reader, scene_id)
            parts.append(part)
            attrs = part.attrs
            failure = failures.pop(scene_id, None)
            if failure is not None and failure.time >= str(attrs.get("committed_at", "")):
                # The last attempt failed; the older committed version is still readable.
                status, error = "failed", failure.reason
            elif current is not None and current.is_stale(scene_id, attrs):
                status, error = "stale", ""
            else:
                status, error = "done", ""
            stale_reason = "; ".join(current.stale_reasons(scene_id, attrs)) if status == "stale" else ""
            timings = attrs.get("timings") or {}
            row = {
                "scene_id": scene_id,
                "status": status,
                "error": error,
                "stale_reason": stale_reason,
                "frames": int(attrs.get("num_frames", 0)),
                "split": str(attrs.get("split") or ""),
                "source_hash": attrs.get("source_hash", ""),
                "config_hash": attrs.get("config_hash", ""),
                "code_version": attrs.get("code_version", ""),
                "seconds": float(timings.get("total", sum(timings.values()) if timings else np.nan)),
                "committed_at": attrs.get("committed_at", ""),
                **_unknown_label_cells(attrs),
            }
            row.update(
                {f"seconds_{stage}": float(value) for stage, value in timings.items() if stage != "total"}
            )
            scene_rows.append(row)
        for scene_id, failure in failures.items():
            scene_rows.append(
                {
                    "scene_id": scene_id,
                    "status": "failed",
                    "error": failure.reason,
                    "frames": 0,
                    "seconds": np.nan,
                }
            )
        scenes = pd.DataFrame(scene_rows)
        extra = sorted(c for c in scenes.columns if c.startswith("seconds_"))
        scenes = scenes.reindex(columns=SCENE_COLUMNS + extra)
        scenes = _typed(scenes, SCENE_COLUMNS + extra).sort_values("scene_id", ignore_index=True)
        return {"scenes": scenes, "frames": _frames_table(parts), "pairs": _pairs_table(parts)}

    def write(self, current: CurrentVersion | None = None) -> dict[str, pd.DataFrame]:
        """Build and write the tables (each replaced atomically); returns them."""
        tables = self.build(current)
        backend = backend_for(self.store)
        for name in TABLE_NAMES:
            backend.write_file(table_key(name), _parquet_bytes(tables[name], self.built_from))
        return tables


def _unknown_label_cells(attrs: dict) -> dict:
    if "unknown_labels" not in attrs:
        return {}  # committed before the report existed: not recorded
    report = UnknownLabelReport.from_attrs(attrs["unknown_labels"])
    return {
        "unknown_labels": report.label_list(),
        "unknown_label_vertices": report.vertices,
        "unknown_label_pixels": report.pixels,
    }


_INT_COLUMNS = {
    "frames": "int64",
    "frame_index": "int32",
    "index_in_camera": "int32",
    "height": "int32",
    "width": "int32",
}
_INT_COLUMNS.update({"frame_a": "int32", "frame_b": "int32"})
_FLOAT_COLUMNS = {"fx", "fy", "cx", "cy", "seconds"}
_COUNT_COLUMNS = {"unknown_label_vertices", "unknown_label_pixels"}
"""Integers that may be unknown (nullable Int64, <NA>)."""


def _typed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Stable dtypes even for empty tables: strings as pandas' `str`, ints and floats fixed."""
    for column in columns:
        if column in _INT_COLUMNS:
            frame[column] = frame[column].fillna(0).astype(_INT_COLUMNS[column])
        elif column in _COUNT_COLUMNS:
            frame[column] = frame[column].astype("Int64")
        elif column in _FLOAT_COLUMNS or column.startswith("seconds_"):
            frame[column] = frame[column].astype("float64")
        elif column == "overlap":
            frame[column] = frame[column].astype("float32")
        else:
            frame[column] = frame[column].fillna("").astype("str")
    return frame


def _frame_columns(reader: StoreReader, scene_id: str, attrs: dict) -> dict[str, np.ndarray]:
    """FRAME_COLUMNS of one scene, in selection order; only the intrinsics are read (the shapes are
    metadata)."""
    names = reader.camera_frame_names(scene_id)
    shapes = reader.camera_shapes(scene_id)
    intrinsics = {camera: reader.read_array(scene_id, camera, "intrinsics") for camera in names}
    order = [(str(camera), int(index)) for camera, index in attrs["frame_order"]]
    K = np.array([intrinsics[camera][index] for camera, index in order], dtype=np.float64).reshape(-1, 3, 3)
    count = len(order)
    return {
        "scene_id": np.full(count, scene_id, dtype=object),
        "frame_index": np.arange(count),
        "name": np.array([names[camera][index] for camera, index in order], dtype=object),
        "camera": np.array([camera for camera, _ in order], dtype=object),
        "index_in_camera": np.array([index for _, index in order], dtype=np.int64),
        "height": np.array([shapes[camera][1] for camera, _ in order], dtype=np.int64),
        "width": np.array([shapes[camera][2] for camera, _ in order], dtype=np.int64),
        "fx": K[:, 0, 0],
        "fy": K[:, 1, 1],
        "cx": K[:, 0, 2],
        "cy": K[:, 1, 2],
        "split": np.full(count, str(attrs.get("split") or ""), dtype=object),
    }


def _frames_table(parts: list[_SceneRows]) -> pd.DataFrame:
    columns = {
        column: np.concatenate([part.frames[column] for part in parts]) if parts else []
        for column in FRAME_COLUMNS
    }
    return _typed(pd.DataFrame(columns, columns=FRAME_COLUMNS), FRAME_COLUMNS)


def _pairs_table(parts: list[_SceneRows]) -> pd.DataFrame:
    pairs = np.concatenate([part.pairs for part in parts]) if parts else np.zeros((0, 3))
    counts = [len(part.pairs) for part in parts]
    columns = {
        "scene_id": np.repeat(np.array([part.scene_id for part in parts], dtype=object), counts),
        "frame_a": pairs[:, 0].astype(np.int32),
        "frame_b": pairs[:, 1].astype(np.int32),
        "overlap": pairs[:, 2].astype(np.float32),
        "split": np.repeat(np.array([part.split for part in parts], dtype=object), counts),
    }
    return _typed(pd.DataFrame(columns, columns=PAIR_COLUMNS), PAIR_COLUMNS)


def _parquet_bytes(table: pd.DataFrame, snapshot: str | None) -> bytes:
    """The table as Parquet (zstd); an object store's tables name the snapshot they were built from."""
    buffer = io.BytesIO()
    if snapshot is None:
        table.to_parquet(buffer, index=False, compression="zstd")
        return buffer.getvalue()
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _SNAPSHOT_KEY: snapshot.encode()})
    pq.write_table(arrow, buffer, compression="zstd")
    return buffer.getvalue()


def _built_from(data: bytes) -> str | None:
    metadata = pq.read_schema(io.BytesIO(data)).metadata or {}
    return metadata[_SNAPSHOT_KEY].decode() if _SNAPSHOT_KEY in metadata else None


@lru_cache(maxsize=8)
def _tables_of_snapshot(location: StoreLocation) -> dict[str, pd.DataFrame]:
    """The tables of a pinned snapshot, built from the snapshot itself (once per process)."""
    return TableBuilder(location).build()


def read_table(store: StoreRef, name: str) -> pd.DataFrame:
    """One table of a store; FileNotFoundError naming the file and the fix when it was never written."""
    backend = backend_for(store)
    where = backend.describe(table_key(name))
    data = backend.read_file(table_key(name))
    if data is None:
        raise FileNotFoundError(
            f"table {where} does not exist; run `panst3r preprocess --store {store}` first"
        )
    try:
        if backend.location.snapshot and _built_from(data) != backend.location.snapshot:
            # The stored tables follow the newest snapshot; a pinned reader gets its snapshot's own.
            return _tables_of_snapshot(backend.location)[name].copy()
        return pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(
            f"table {where} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]}); the tables are "
            f"derived from the committed scenes: re-run `panst3r preprocess` on --store {store} (nothing is "
            "redone that is up to date) to rebuild it"
        ) from exc
