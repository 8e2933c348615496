"""PLY triangle meshes as ScanNet++ stores them (`scans/mesh_aligned_0.05.ply`).

The writer produces binary little-endian PLY with float32 `x y z`, uchar `red green blue` (plus any extra
scalar vertex properties, e.g. the integer `label` of the semantic mesh) and faces as
`list uchar int vertex_indices`, a layout both trimesh and open3d read. The reader accepts that layout,
ASCII PLY, big-endian PLY and headers with extra properties (normals, alpha, ...) as found in real scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# PLY scalar type names (both spellings of the spec) -> numpy type code without byte order.
_PLY_TYPES: dict[str, str] = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_NUMPY_TO_PLY: dict[str, str] = {
    "i1": "char",
    "u1": "uchar",
    "i2": "short",
    "u2": "ushort",
    "i4": "int",
    "u4": "uint",
    "f4": "float",
    "f8": "double",
}
_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


@dataclass
class PlyMesh:
    """A triangle mesh with per-vertex colours.

    vertices: (N, 3) float32 metres; colors: (N, 3) uint8 RGB; faces: (F, 3) int64 vertex indices;
    vertex_properties: any other per-vertex scalar property by name, each (N,)."""

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray
    vertex_properties: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])


@dataclass
class _Property:
    name: str
    dtype: str  # numpy code without byte order, e.g. "f4"
    count_dtype: str | None = None  # set for list properties


@dataclass
class _Element:
    name: str
    count: int
    properties: list[_Property] = field(default_factory=list)


def write_ply(
    path: str | Path,
    vertices: np.ndarray,
    colors: np.ndarray,
    faces: np.ndarray,
    vertex_properties: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a binary little-endian PLY.

    vertices: (N, 3) float, stored as float32; colors: (N, 3) uint8; faces: (F, 3) int, stored as int32;
    vertex_properties: extra (N,) scalar arrays stored with their own dtype (e.g. int32 `label`)."""
    path = Path(path)
    vertices = np.asarray(vertices)
    colors = np.asarray(colors)
    faces = np.asarray(faces)
    n = vertices.shape[0]
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{path}: vertices must have shape (N, 3), got {vertices.shape}")
    if colors.shape != (n, 3) or colors.dtype != np.uint8:
        raise ValueError(
            f"{path}: colors must be uint8 with shape ({n}, 3), got {colors.dtype} {colors.shape}"
        )
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{path}: faces must have shape (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise ValueError(f"{path}: face indices must lie in [0, {n}), got [{faces.min()}, {faces.max()}]")
    extra = dict(vertex_properties or {})
    for name, values in extra.items():
        if np.asarray(values).shape != (n,):
            raise ValueError(f"{path}: vertex property {name!r} must have shape ({n},)")

    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex_fields += [(name, np.asarray(v).dtype.newbyteorder("<").str) for name, v in extra.items()]
    vertex_data = np.empty(n, dtype=vertex_fields)
    for axis, name in enumerate("xyz"):
        vertex_data[name] = vertices[:, axis]
    for axis, name in enumerate(("red", "green", "blue")):
        vertex_data[name] = colors[:, axis]
    for name, values in extra.items():
        vertex_data[name] = values

    face_data = np.empty(faces.shape[0], dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_data["count"] = 3
    face_data["indices"] = faces

    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    for name, code in vertex_fields:
        header.append(f"property {_NUMPY_TO_PLY[np.dtype(code).str[1:]]} {name}")
    header += [f"element face {faces.shape[0]}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vertex_data.tobytes())
        f.write(face_data.tobytes())


def read_ply(path: str | Path) -> PlyMesh:
    """Read a PLY triangle mesh (binary or ASCII). Vertices without colour properties get zeros.

    Raises FileNotFoundError if the file is missing and ValueError naming the file and the problem for a
    malformed header, a truncated body or non-triangle faces."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY mesh not found: {path}")
    data = path.read_bytes()
    elements, fmt, body_start = _parse_header(path, data)
    if fmt == "ascii":
        columns = _read_ascii_body(path, data[body_start:], elements)
    else:
        columns = _read_binary_body(path, data, body_start, elements, _FORMATS[fmt])

    if "vertex" not in columns:
        raise ValueError(f"{path}: the PLY has no 'vertex' element")
    vertex = columns["vertex"]
    for axis in "xyz":
        if axis not in vertex:
            raise ValueError(f"{path}: vertex element lacks property {axis!r}")
    vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
    n = vertices.shape[0]
    if all(c in vertex for c in ("red", "green", "blue")):
        colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
        if colors.dtype.kind == "f":  # some writers store colours in [0, 1]
            colors = np.clip(np.round(colors * 255.0), 0, 255)
        colors = colors.astype(np.uint8)
    else:
        colors = np.zeros((n, 3), dtype=np.uint8)
    faces = columns.get("face", {}).get("vertex_indices")
    if faces is None:
        faces = columns.get("face", {}).get("vertex_index")
    faces = np.zeros((0, 3), dtype=np.int64) if faces is None else faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise ValueError(f"{path}: face indices out of range [0, {n}): found [{faces.min()}, {faces.max()}]")
    known = {"x", "y", "z", "red", "green", "blue"}
    extra = {k: v for k, v in vertex.items() if k not in known}
    return PlyMesh(vertices=vertices, colors=colors, faces=faces, vertex_properties=extra)


def _parse_header(path: Path, data: bytes) -> tuple[list[_Element], str, int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header')")
    newline = data.find(b"\n", end)
    if newline < 0:
        raise ValueError(f"{path}: header ends without a newline after 'end_header'")
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[_Element] = []
    for number, raw in enumerate(lines[1:], start=2):
        tokens = raw.split()
        if not tokens or tokens[0] in ("comment", "obj_info"):
            continue
        if tokens[0] == "format":
            if len(tokens) < 2 or tokens[1] not in _FORMATS:
                raise ValueError(f"{path}: header line {number}: unknown format {raw!r}")
            fmt = tokens[1]
        elif tokens[0] == "element":
            if len(tokens) != 3 or not tokens[2].isdigit():
                raise ValueError(f"{path}: header line {number}: malformed element line {raw!r}")
            elements.append(_Element(tokens[1], int(tokens[2])))
        elif tokens[0] == "property":
            if not elements:
                raise ValueError(f"{path}: header line {number}: property before any element")
            if (
                tokens[1] == "list"
                and len(tokens) == 5
                and tokens[2] in _PLY_TYPES
                and tokens[3] in _PLY_TYPES
            ):
                elements[-1].properties.append(
                    _Property(tokens[4], _PLY_TYPES[tokens[3]], _PLY_TYPES[tokens[2]])
                )
            elif len(tokens) == 3 and tokens[1] in _PLY_TYPES:
                elements[-1].properties.append(_Property(tokens[2], _PLY_TYPES[tokens[1]]))
            else:
                raise ValueError(f"{path}: header line {number}: malformed property line {raw!r}")
        else:
            raise ValueError(f"{path}: header line {number}: unexpected keyword {tokens[0]!r}")
    if fmt is None:
        raise ValueError(f"{path}: the header has no 'format' line")
    return elements, fmt, newline + 1


def _truncated(path: Path, element: _Element, detail: str = "") -> ValueError:
    return ValueError(
        f"{path}: truncated or corrupt PLY: element {element.name!r} declares {element.count} entries"
        f"{detail}; re-export or re-download the mesh"
    )


def _read_binary_body(
    path: Path, data: bytes, offset: int, elements: list[_Element], order: str
) -> dict[str, dict[str, np.ndarray]]:
    columns: dict[str, dict[str, np.ndarray]] = {}
    for element in elements:
        scalars = [p for p in element.properties if p.count_dtype is None]
        lists = [p for p in element.properties if p.count_dtype is not None]
        if not lists:
            dtype = np.dtype([(p.name, order + p.dtype) for p in scalars])
            size = dtype.itemsize * element.count
            if offset + size > len(data):
                raise _truncated(path, element, f" ({size} bytes) but only {len(data) - offset} remain")
            table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
            columns[element.name] = {p.name: table[p.name].copy() for p in scalars}
            offset += size
            continue
        # The common case: a face element that holds one list of triangles. Read it in one go and check
        # that every count is 3; fall back to a per-row walk otherwise.
        if len(element.properties) == 1:
            prop = lists[0]
            dtype = np.dtype([("count", order + prop.count_dtype), ("items", order + prop.dtype, (3,))])
            size = dtype.itemsize * element.count
            if offset + size <= len(data):
                table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
                if np.all(table["count"] == 3):
                    columns[element.name] = {prop.name: table["items"].astype(np.int64)}
                    offset += size
                    continue
        values, offset = _walk_binary_rows(path, data, offset, element, order)
        columns[element.name] = values
    return columns


def _walk_binary_rows(
    path: Path, data: bytes, offset: int, element: _Element, order: str
) -> tuple[dict[str, np.ndarray], int]:
    rows: dict[str, list] = {p.name: [] for p in element.properties}
    for _ in range(element.count):
        for prop in element.properties:
            if prop.count_dtype is None:
                item = np.dtype(order + prop.dtype)
                if offset + item.itemsize > len(data):
                    raise _truncated(path, element)
                rows[prop.name].append(np.frombuffer(data, item, 1, offset)[0])
                offset += item.itemsize
            else:
                count_type = np.dtype(order + prop.count_dtype)
                item = np.dtype(order + prop.dtype)
                if offset + count_type.itemsize > len(data):
                    raise _truncated(path, element)
                count = int(np.frombuffer(data, count_type, 1, offset)[0])
                offset += count_type.itemsize
                if offset + count * item.itemsize > len(data):
                    raise _truncated(path, element)
                rows[prop.name].append(np.frombuffer(data, item, count, offset))
                offset += count * item.itemsize
    return _finish_rows(path, element, rows), offset


def _read_ascii_body(path: Path, body: bytes, elements: list[_Element]) -> dict[str, dict[str, np.ndarray]]:
    lines = iter(body.decode("ascii", errors="replace").splitlines())
    columns: dict[str, dict[str, np.ndarray]] = {}
    for element in elements:
        rows: dict[str, list] = {p.name: [] for p in element.properties}
        for index in range(element.count):
            line = next(lines, None)
            while line is not None and not line.strip():
                line = next(lines, None)
            if line is None:
                raise _truncated(path, element, f" but the file ends at entry {index}")
            tokens = line.split()
            position = 0
            try:
                for prop in element.properties:
                    if prop.count_dtype is None:
                        rows[prop.name].append(float(tokens[position]))
                        position += 1
                    else:
                        count = int(tokens[position])
                        rows[prop.name].append(
                            [float(t) for t in tokens[position + 1 : position + 1 + count]]
                        )
                        if len(rows[prop.name][-1]) != count:
                            raise IndexError
                        position += 1 + count
            except (IndexError, ValueError) as exc:
                raise ValueError(
                    f"{path}: malformed ASCII PLY: entry {index} of element {element.name!r} is {line!r}"
                ) from exc
        columns[element.name] = _finish_rows(path, element, rows)
    return columns


def _finish_rows(path: Path, element: _Element, rows: dict[str, list]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for prop in element.properties:
        values = rows[prop.name]
        if prop.count_dtype is None:
            out[prop.name] = np.asarray(values, dtype=prop.dtype)
            continue
        lengths = {len(v) for v in values}
        if lengths - {3}:
            raise ValueError(
                f"{path}: element {element.name!r} property {prop.name!r} holds polygons with "
                f"{sorted(lengths)} corners; only triangles are supported (triangulate the mesh first)"
            )
        out[prop.name] = np.asarray(values, dtype=np.int64).reshape(-1, 3)
    return out
