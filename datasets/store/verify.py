"""`panst3r status --verify`: read back every chunk of every committed scene and the index tables, and
name what is damaged (scene, camera, array, frame, file) with the fix.

Reading back is the check: every chunk carries a zstd checksum and every shard index a CRC32C, so a
damaged byte fails to decode (integrity.py). Arrays written before checksums existed decode either way
and are listed as unchecked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datasets.store.integrity import CorruptSceneError, has_checksums
from datasets.store.reader import StoreReader
from datasets.store.schema import FRAME_ARRAYS, TABLE_NAMES
from datasets.store.tables import read_table


@dataclass(frozen=True)
class Damage:
    scene_id: str
    """The damaged scene, or "" for an index table (which a re-run rebuilds)."""
    message: str
    """Where (scene, camera, array, frame, file) and the fix."""


@dataclass
class VerifyReport:
    scenes: int = 0
    chunks: int = 0
    damage: list[Damage] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    """Scenes with arrays written without chunk checksums."""

    @property
    def damaged_scenes(self) -> list[str]:
        return sorted({d.scene_id for d in self.damage if d.scene_id})


def verify_store(store: str | Path, on_scene: Callable[[str], None] | None = None) -> VerifyReport:
    """Every chunk of every committed scene, then the tables; never stops at the first damage."""
    reader = StoreReader(store)
    report = VerifyReport()
    for scene_id in reader.scene_ids():
        _verify_scene(reader, scene_id, report)
        report.scenes += 1
        if on_scene is not None:
            on_scene(scene_id)
    for name in TABLE_NAMES:
        try:
            read_table(store, name)
        except FileNotFoundError:
            continue  # never written (an empty store): nothing to damage
        except ValueError as exc:
            report.damage.append(Damage("", str(exc)))
    return report


def _verify_scene(reader: StoreReader, scene_id: str, report: VerifyReport) -> None:
    try:
        order = reader.scene_attrs(scene_id)["frame_order"]
        names = _names_by_camera(order, reader.frame_names(scene_id))
        arrays = [(camera, name) for camera in names for name in FRAME_ARRAYS] + [("_scene", "pairs")]
        checked = all(has_checksums(reader.array(scene_id, camera, name)) for camera, name in arrays)
    except CorruptSceneError as exc:  # metadata: nothing below it can be read
        report.damage.append(Damage(scene_id, str(exc)))
        return
    if not checked:
        report.unchecked.append(scene_id)
    for camera, frame_names in names.items():
        for name in FRAME_ARRAYS:
            for index, frame_name in enumerate(frame_names):
                _read(report, reader, scene_id, camera, name, index, frame_name)
    _read(report, reader, scene_id, "_scene", "pairs")


def _read(report: VerifyReport, reader: StoreReader, scene_id: str, *where) -> None:
    report.chunks += 1
    try:
        reader.read_array(scene_id, *where)
    except CorruptSceneError as exc:
        report.damage.append(Damage(exc.scene_id or "", str(exc)))


def _names_by_camera(order: list, selection_names: list[str]) -> dict[str, list[str]]:
    """Frame names per camera, in each camera's own frame order (the arrays' leading axis)."""
    names: dict[str, dict[int, str]] = defaultdict(dict)
    for (camera, index), name in zip(order, selection_names, strict=True):
        names[camera][int(index)] = name
    return {camera: [by_index[i] for i in sorted(by_index)] for camera, by_index in names.items()}
