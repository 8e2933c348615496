"""ScanNet++ semantic benchmark files and per-vertex panoptic ids, with the official PanSt3R rules.

- `top100.txt` / `top100_instance.txt`: one class name per line; class id = 0-based line index.
- `map_benchmark.csv` (columns `class, semantic_map_to, instance_map_to`, empty = no mapping): a raw label
  maps to its instance target when there is one (a thing); else to its semantic target when that is a stuff
  class; else to the semantic (thing) target and is marked *crowd*.
- `segments.json` (`segIndices` must be exactly 0..N-1: each vertex is its own segment) and
  `segments_anno.json` (`segGroups` in file order; later groups overwrite earlier ones) give every mesh
  vertex the id `instance_id * cls_sep + class_id`, 0 = void.
- A segGroup label that is neither a benchmark class nor a row of the CSV is *unknown*: the official script
  skips its groups (void); `unknown_labels="error"` fails the scene instead.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.store.schema import DEFAULT_CLS_SEP

logger = logging.getLogger(__name__)

# Cell values that pandas' read_csv (which the official script uses) parses as NaN by default.
_NA_VALUES = {
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
}
MAPPING_COLUMNS = ("class", "semantic_map_to", "instance_map_to")

UNKNOWN_LABEL_MODES = ("void", "error")
"""What an unknown label does: "void" (default, as the official script) leaves its groups void, "error" fails
the scene with a message naming the labels."""
UNKNOWN_LABEL_ALIASES = {"skip": "void"}
"""Earlier names of the modes, still accepted."""


def unknown_label_mode(value: str) -> str:
    """The mode `value` names (an alias gives its mode); ValueError listing the modes otherwise."""
    mode = UNKNOWN_LABEL_ALIASES.get(value, value)
    if mode not in UNKNOWN_LABEL_MODES:
        raise ValueError(
            f"unknown_labels must be one of {', '.join(UNKNOWN_LABEL_MODES)} (or 'skip', the old name of "
            f"'void'), got {value!r}"
        )
    return mode


@dataclass(frozen=True)
class MappingRow:
    """One row of map_benchmark.csv; None where the cell is empty."""

    raw_class: str
    semantic_map_to: str | None
    instance_map_to: str | None


@dataclass
class LabelMap:
    """Raw label -> benchmark class id, and which raw labels are crowd."""

    class_names: list[str]
    thing_names: set[str]
    label_to_class: dict[str, int] = field(default_factory=dict)
    crowd_labels: set[str] = field(default_factory=set)
    listed_labels: set[str] = field(default_factory=set)
    """Raw labels the mapping CSV lists, with or without a target. A label listed without a usable target is
    deliberately unmapped (void); a label listed nowhere is unknown, i.e. the CSV does not cover the data."""

    def categories(self) -> list[dict]:
        """COCO-style category list [{id, name, isthing}] in class-id order (the official categories.json)."""
        return [
            {"id": i, "name": name, "isthing": int(name in self.thing_names)}
            for i, name in enumerate(self.class_names)
        ]


@dataclass
class VertexPanoptic:
    """The panoptic labelling of one scene's mesh vertices."""

    pan_ids: np.ndarray
    """(N,) int64: instance_id * cls_sep + class_id, 0 = void."""
    segments: list[dict]
    """{id, instance_id, class_id, orig_class_name, iscrowd} of every kept group."""
    unknown_vertices: dict[str, int] = field(default_factory=dict)
    """Unknown label -> how many vertices of its groups are void (sorted by label)."""
    unknown_void: np.ndarray | None = None
    """(N,) bool: void vertices that a group with an unknown label covers (None when there is none)."""


def read_class_list(path: str | Path) -> list[str]:
    """One class name per line. Trailing blank lines are ignored (the official reader would turn them into
    extra classes with empty names); a blank line between names is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while names and not names[-1]:
        names.pop()
        logger.warning("%s: ignoring a trailing blank line (it is not a class)", path)
    for number, name in enumerate(names, start=1):
        if not name:
            raise ValueError(f"{path}: line {number} is blank; a class list holds one class name per line")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate class names {duplicates}")
    if not names:
        raise ValueError(f"{path}: the class list is empty")
    return names


def read_mapping(path: str | Path) -> list[MappingRow]:
    """map_benchmark.csv -> rows. Needs the columns class, semantic_map_to, instance_map_to."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class mapping CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MAPPING_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {missing}; the header must contain {', '.join(MAPPING_COLUMNS)}"
            )
        rows = []
        for record in reader:
            values = [(record.get(c) or "").strip() for c in MAPPING_COLUMNS]
            raw, semantic, instance = (None if v in _NA_VALUES else v for v in values)
            if raw is None:
                continue
            rows.append(MappingRow(raw, semantic, instance))
    return rows


def build_label_map(class_names: list[str], thing_names: list[str], rows: list[MappingRow]) -> LabelMap:
    """Apply the official mapping rules (see the module docstring)."""
    unknown_things = sorted(set(thing_names) - set(class_names))
    if unknown_things:
        raise ValueError(f"instance class list names classes missing from the class list: {unknown_things}")
    label_map = LabelMap(class_names=list(class_names), thing_names=set(thing_names))
    class_index = {name: i for i, name in enumerate(class_names)}
    label_map.label_to_class.update(class_index)
    for row in rows:
        label_map.listed_labels.add(row.raw_class)
        if row.semantic_map_to is None and row.instance_map_to is None:
            continue
        if row.instance_map_to in class_index:
            label_map.label_to_class[row.raw_class] = class_index[row.instance_map_to]
            label_map.crowd_labels.discard(row.raw_class)
        elif row.semantic_map_to in class_index:
            label_map.label_to_class[row.raw_class] = class_index[row.semantic_map_to]
            if row.semantic_map_to in label_map.thing_names:
                label_map.crowd_labels.add(row.raw_class)
            else:
                label_map.crowd_labels.discard(row.raw_class)
        else:
            logger.warning(
                "mapping row %r: neither target (%r, %r) is a benchmark class; the row is ignored",
                row.raw_class,
                row.semantic_map_to,
                row.instance_map_to,
            )
    return label_map


def load_label_map(class_list: str | Path, instance_list: str | Path, mapping_file: str | Path) -> LabelMap:
    """Read the three benchmark files and build the label map."""
    return build_label_map(
        read_class_list(class_list), read_class_list(instance_list), read_mapping(mapping_file)
    )


def _load_json(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _read_seg_groups(segments_path: Path, segments_anno_path: Path, num_vertices: int) -> list:
    """The segGroups of a scene whose segments file has one segment per mesh vertex (ValueError otherwise)."""
    seg_indices = _load_json(segments_path, "segments file").get("segIndices")
    if not isinstance(seg_indices, list):
        raise ValueError(f"{segments_path}: missing list field 'segIndices'")
    if len(seg_indices) != num_vertices or not np.array_equal(
        np.asarray(seg_indices, dtype=np.int64), np.arange(num_vertices)
    ):
        raise ValueError(
            f"{segments_path}: field 'segIndices' must equal 0..{num_vertices - 1} (one segment per mesh "
            f"vertex, {num_vertices} vertices), got {len(seg_indices)} entries; the segments file does not "
            "belong to this mesh"
        )
    groups = _load_json(segments_anno_path, "segment annotation file").get("segGroups")
    if not isinstance(groups, list):
        raise ValueError(f"{segments_anno_path}: missing list field 'segGroups'")
    return groups


def read_vertex_panoptic_ids(
    segments_path: str | Path,
    segments_anno_path: str | Path,
    label_map: LabelMap,
    num_vertices: int,
    cls_sep: int = DEFAULT_CLS_SEP,
    export_crowd: bool = False,
    unknown_labels: str = "void",
) -> VertexPanoptic:
    """Per-vertex panoptic ids of one scene.

    Groups whose label the mapping CSV lists without a benchmark target are skipped (void), as the official
    script does; crowd groups are skipped unless export_crowd. A label that is neither a benchmark class nor
    listed in the CSV is unknown (the CSV does not cover this scene): with unknown_labels="void" (default) its
    groups are skipped too, as in the official script, and the result says how many vertices that leaves
    void; with "error" it is a ValueError naming the labels and the fix. Logs nothing: the caller reports
    unknown labels once per scene."""
    mode = unknown_label_mode(unknown_labels)
    segments_path, segments_anno_path = Path(segments_path), Path(segments_anno_path)
    if cls_sep <= len(label_map.class_names) - 1:
        raise ValueError(
            f"cls_sep={cls_sep} must exceed the largest class id {len(label_map.class_names) - 1}"
        )
    groups = _read_seg_groups(segments_path, segments_anno_path, num_vertices)
    pan_ids = np.zeros(num_vertices, dtype=np.int64)
    segments: list[dict] = []
    unknown: dict[str, list[np.ndarray]] = {}
    for label, vertex_ids in _group_vertices(groups, segments_anno_path, num_vertices):
        if label not in label_map.label_to_class:
            if label not in label_map.listed_labels:
                unknown.setdefault(label, []).append(vertex_ids)
            continue
        is_crowd = label in label_map.crowd_labels
        if is_crowd and not export_crowd:
            continue
        instance_id = len(segments) + 1
        class_id = label_map.label_to_class[label]
        pan_id = instance_id * cls_sep + class_id
        pan_ids[vertex_ids] = pan_id
        segments.append(
            {
                "id": int(pan_id),
                "instance_id": instance_id,
                "class_id": class_id,
                "orig_class_name": label,
                "iscrowd": bool(is_crowd),
            }
        )
    result = VertexPanoptic(pan_ids, segments)
    if unknown:
        _add_unknown(result, unknown)
    if unknown and mode == "error":
        names = ", ".join(f"{name!r} ({count} vertices)" for name, count in result.unknown_vertices.items())
        raise ValueError(
            f"{segments_anno_path}: field 'label' of segGroups holds label(s) {names} that are neither "
            "benchmark classes nor rows of the mapping CSV; add a row per label to map_benchmark.csv (with "
            "empty targets to leave it void), or preprocess with --unknown-labels void (the default) to leave "
            "them void as the official script does"
        )
    return result


def _group_vertices(groups: list, segments_anno_path: Path, num_vertices: int):
    """(label, vertex ids) of every segGroup in file order; ValueError naming the group when one is malformed."""
    for position, group in enumerate(groups):
        try:
            label = str(group["label"])
            vertex_ids = np.asarray(group["segments"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{segments_anno_path}: segGroups[{position}] needs 'label' (str) and 'segments' (list of int)"
            ) from exc
        if vertex_ids.size and (vertex_ids.min() < 0 or vertex_ids.max() >= num_vertices):
            raise ValueError(
                f"{segments_anno_path}: segGroups[{position}] ({label!r}) field 'segments' holds vertex ids "
                f"outside [0, {num_vertices})"
            )
        yield label, vertex_ids


def _add_unknown(result: VertexPanoptic, unknown: dict[str, list[np.ndarray]]) -> None:
    """Record which vertices the unknown labels leave void: a later kept group may still label some of them."""
    void = result.pan_ids == 0
    result.unknown_void = np.zeros(len(result.pan_ids), dtype=bool)
    for label in sorted(unknown):
        vertex_ids = np.unique(np.concatenate(unknown[label]))
        result.unknown_vertices[label] = int(np.count_nonzero(void[vertex_ids]))
        result.unknown_void[vertex_ids] = True
    result.unknown_void &= void
