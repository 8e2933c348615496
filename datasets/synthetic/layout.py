"""Procedural room layout: a box room (walls, floor, ceiling as stuff), a door and windows with their
frames, furniture against the walls, free-standing objects in the middle, small things on tables and
cabinets, decorations on the walls and lamps on the ceiling.

Placement uses a 5 cm floor occupancy grid so footprints never intersect, and keeps a ring around the
room free for the camera path (see trajectory.py): free-standing objects stay inside `inner_region`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datasets.synthetic import furniture
from datasets.synthetic.classes import CATALOGUE, STUFF_SPECS, ClassSpec
from datasets.synthetic.geometry import ObjectMesh, grid, rotation_z
from datasets.synthetic.textures import jitter_color, paint

CELL = 0.05  # occupancy grid cell (metres)
CORNER_MARGIN = 0.75  # keep wall furniture this far from the corners so perpendicular walls do not clash
WALL_FURNITURE = ("sofa", "bed", "cabinet", "storage cabinet", "bookshelf", "refrigerator")
WALL_DECOR = ("tv", "whiteboard", "picture", "poster", "clock", "heater")
FLOOR_SMALL = ("trash can", "box", "crate", "suitcase", "backpack", "bucket", "plant pot", "computer tower")
ON_TOP = ("monitor", "laptop", "keyboard", "cup", "bottle", "bowl", "table lamp", "microwave", "book")

# Clutter for scenes with many annotated objects (real ScanNet++ rooms have hundreds): wall shelves that
# small things stand on, small things on the wall, and small things on every support. Only used when
# `build_layout(min_objects=...)` asks for more objects than the base room has, so other rooms are unchanged.
_SMALL = ((200, 200, 195), (60, 60, 65), (180, 40, 40), (40, 90, 170), (230, 190, 60), (70, 140, 80))
CLUTTER_SHELF = ClassSpec(
    "shelf", "slab", ((0.6, 1.1), (0.22, 0.3), (0.025, 0.035)), _SMALL[:2], ("solid",), "wall_mount",
    mount_height=(0.9, 1.9),
)  # fmt: skip
CLUTTER_WALL = (
    ClassSpec("socket", "panel", ((0.07, 0.09), (0.012, 0.02), (0.07, 0.09)), _SMALL[:2], ("solid",),
              "wall_mount", mount_height=(0.2, 0.4)),
    ClassSpec("light switch", "panel", ((0.07, 0.09), (0.012, 0.02), (0.08, 0.11)), _SMALL[:2], ("solid",),
              "wall_mount", mount_height=(1.0, 1.2)),
    CATALOGUE["picture"],
    CATALOGUE["poster"],
)  # fmt: skip
CLUTTER_ON_TOP = (
    CATALOGUE["cup"],
    CATALOGUE["bottle"],
    CATALOGUE["bowl"],
    CATALOGUE["book"],
    ClassSpec("tissue box", "box", ((0.2, 0.24), (0.1, 0.12), (0.08, 0.1)), _SMALL, ("solid",), "on_top"),
    ClassSpec("jar", "cup", ((0.08, 0.11), (0.08, 0.11), (0.1, 0.16)), _SMALL, ("solid",), "on_top"),
    ClassSpec("spray bottle", "bottle", ((0.07, 0.08), (0.07, 0.08), (0.2, 0.26)), _SMALL, ("solid",), "on_top"),
    ClassSpec("container", "box", ((0.12, 0.25), (0.1, 0.2), (0.06, 0.15)), _SMALL, ("solid",), "on_top"),
    ClassSpec("stapler", "box", ((0.12, 0.16), (0.04, 0.05), (0.04, 0.06)), _SMALL, ("solid",), "on_top"),
    ClassSpec("mouse", "box", ((0.06, 0.07), (0.1, 0.12), (0.03, 0.04)), _SMALL[:2], ("solid",), "on_top"),
)  # fmt: skip


@dataclass
class Room:
    """Axis-aligned room [0, size_x] x [0, size_y] x [0, height] before the scene's global transform."""

    size_x: float
    size_y: float
    height: float
    loop_margin: float  # distance of the nominal camera loop from the walls

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.size_x / 2, self.size_y / 2])

    @property
    def loop_axes(self) -> tuple[float, float]:
        return self.size_x / 2 - self.loop_margin, self.size_y / 2 - self.loop_margin

    def walls(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
        """(corner origin, unit along-axis, unit inward normal, length) of the four walls."""
        lx, ly = self.size_x, self.size_y
        return [
            (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), lx),
            (np.array([lx, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), ly),
            (np.array([lx, ly]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), lx),
            (np.array([0.0, ly]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), ly),
        ]


@dataclass
class Support:
    """A horizontal surface small things can stand on."""

    centre: np.ndarray  # (2,)
    yaw: float
    half: tuple[float, float]
    z: float
    used: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (xy, radius)


@dataclass
class Layout:
    room: Room
    objects: list[ObjectMesh]
    occupancy: np.ndarray  # (nx, ny) bool floor grid, True = taken
    heights: np.ndarray  # (nx, ny) float tallest object height per cell


class _Builder:
    def __init__(self, rng: np.random.Generator, resolution: float):
        self.rng = rng
        self.res = resolution
        lx, ly = rng.uniform(5.0, 7.5), rng.uniform(4.5, 6.5)
        self.room = Room(lx, ly, rng.uniform(2.5, 3.0), loop_margin=min(1.2, min(lx, ly) / 2 - 0.6))
        self.nx, self.ny = int(np.ceil(lx / CELL)), int(np.ceil(ly / CELL))
        self.occupancy = np.zeros((self.nx, self.ny), dtype=bool)
        self.heights = np.zeros((self.nx, self.ny))
        cx, cy = np.meshgrid(
            (np.arange(self.nx) + 0.5) * CELL, (np.arange(self.ny) + 0.5) * CELL, indexing="ij"
        )
        self.cells = np.stack([cx, cy], -1)
        self.objects: list[ObjectMesh] = []
        self.wall_rects: list[list[tuple[float, float, float, float]]] = [[] for _ in range(4)]
        self.wall_floor: list[list[tuple[float, float]]] = [[] for _ in range(4)]
        self.supports: list[Support] = []
        self.soft: list[Support] = []

    # -- object creation --------------------------------------------------------------------------------
    def _colors(self, spec_palette, patterns, scale, local_parts, roles):
        rng = self.rng
        base = jitter_color(spec_palette[rng.integers(len(spec_palette))], rng)
        pattern = patterns[rng.integers(len(patterns))]
        if pattern in ("stripes", "checker", "blotches") and len(spec_palette) > 1:
            accent = jitter_color(spec_palette[rng.integers(len(spec_palette))], rng)
            if np.abs(accent - base).sum() < 60:
                accent = base * 0.55
        else:
            accent = base * 0.6
        colours = []
        for local, role in zip(local_parts, roles):
            if role == "main":
                colours.append(paint(pattern, local, base, accent, rng, scale))
            else:
                colours.append(paint("solid", local, accent, accent, rng, scale))
        return colours

    def add(self, label, class_name, parts, position, yaw, palette, patterns, scale=0.2, colours=None):
        rotation = rotation_z(yaw)
        locals_ = [p[0] for p in parts]
        if colours is None:
            colours = self._colors(palette, patterns, scale, locals_, [p[2] for p in parts])
        vertices, faces, offset = [], [], 0
        for (local, f, _), _c in zip(parts, colours):
            vertices.append(local @ rotation.T + position)
            faces.append(f + offset)
            offset += len(local)
        obj = ObjectMesh(
            label=label,
            class_name=class_name,
            position=np.asarray(position, dtype=float),
            yaw=float(yaw),
            vertices=np.concatenate(vertices),
            faces=np.concatenate(faces),
            colors=np.concatenate(colours),
        )
        self.objects.append(obj)
        return obj

    def sample_size(self, spec: ClassSpec) -> tuple[float, float, float]:
        return tuple(float(self.rng.uniform(lo, hi)) for lo, hi in spec.size)

    def add_spec(self, spec: ClassSpec, size, position, yaw):
        label = spec.labels[self.rng.integers(len(spec.labels))]
        parts = furniture.build(spec.shape, size, self.rng, self.res)
        return self.add(
            label, spec.class_name, parts, position, yaw, spec.palette, spec.patterns, spec.pattern_scale
        )

    # -- room shell ------------------------------------------------------------------------------------
    def shell(self):
        room, rng = self.room, self.rng
        wall_color = STUFF_SPECS["wall"][rng.integers(len(STUFF_SPECS["wall"]))]
        wall_pattern = ("solid", "solid", "stripes", "blotches")[rng.integers(4)]
        accent = jitter_color(wall_color, rng) * 0.85
        for origin, along, inward, length in room.walls():
            # u x v must point into the room: along x up is -inward for a counter-clockwise wall loop,
            # so use (up, along).
            up = np.array([0.0, 0.0, room.height])
            u, v = up, np.append(along * length, 0.0)
            vertices, faces = grid(np.append(origin, 0.0), u, v, self.res)
            assert np.dot(np.cross(u, v), np.append(inward, 0.0)) > 0
            local = np.stack([(vertices[:, :2] - origin) @ along, np.zeros(len(vertices)), vertices[:, 2]], 1)
            colours = paint(wall_pattern, local, jitter_color(wall_color, rng, 0.04), accent, rng, 0.5)
            self.add(
                "wall", "wall", [(vertices, faces, "main")], np.zeros(3), 0.0, None, None, colours=[colours]
            )
        floor_color = STUFF_SPECS["floor"][rng.integers(len(STUFF_SPECS["floor"]))]
        floor_pattern = ("wood", "checker", "blotches")[rng.integers(3)]
        vertices, faces = grid((0, 0, 0), (room.size_x, 0, 0), (0, room.size_y, 0), self.res)
        colours = paint(
            floor_pattern,
            vertices,
            jitter_color(floor_color, rng),
            jitter_color(floor_color, rng) * 0.7,
            rng,
            rng.uniform(0.15, 0.4),
        )
        self.add(
            "floor", "floor", [(vertices, faces, "main")], np.zeros(3), 0.0, None, None, colours=[colours]
        )
        vertices, faces = grid((0, 0, room.height), (0, room.size_y, 0), (room.size_x, 0, 0), self.res)
        ceiling_color = STUFF_SPECS["ceiling"][rng.integers(2)]
        colours = paint("solid", vertices, jitter_color(ceiling_color, rng, 0.03), ceiling_color, rng, 1.0)
        self.add(
            "ceiling", "ceiling", [(vertices, faces, "main")], np.zeros(3), 0.0, None, None, colours=[colours]
        )

    # -- occupancy --------------------------------------------------------------------------------------
    def _footprint_cells(self, centre, yaw, half, pad):
        local = (self.cells - centre) @ rotation_z(yaw)[:2, :2]
        return (np.abs(local[..., 0]) <= half[0] + pad) & (np.abs(local[..., 1]) <= half[1] + pad)

    def fits(self, centre, yaw, half, pad=0.05) -> bool:
        cells = self._footprint_cells(centre, yaw, half, pad)
        return cells.any() and not (cells & self.occupancy).any()

    def occupy(self, centre, yaw, half, height):
        cells = self._footprint_cells(centre, yaw, half, 0.0)
        self.occupancy |= cells
        self.heights[cells] = np.maximum(self.heights[cells], height)

    def in_inner_region(self, centre, yaw, half, clearance: float = 0.4) -> bool:
        """Whether a footprint lies inside the camera loop, `clearance` metres away from it."""
        a, b = self.room.loop_axes
        a, b = a - clearance, b - clearance
        if a <= 0.1 or b <= 0.1:
            return False
        corners = np.array([[sx * half[0], sy * half[1]] for sx in (-1, 1) for sy in (-1, 1)])
        world = corners @ rotation_z(yaw)[:2, :2].T + centre - self.room.centre
        return bool(np.all((world[:, 0] / a) ** 2 + (world[:, 1] / b) ** 2 <= 1.0))

    # -- walls -------------------------------------------------------------------------------------------
    def _wall_free(self, wall, s0, s1, z0, z1) -> bool:
        for r in self.wall_rects[wall]:
            if s0 < r[1] + 0.05 and r[0] - 0.05 < s1 and z0 < r[3] + 0.05 and r[2] - 0.05 < z1:
                return False
        return True

    def _wall_point(self, wall, s, offset):
        origin, along, inward, _ = self.room.walls()[wall]
        return origin + along * s + inward * offset, float(np.arctan2(inward[0], -inward[1]))

    def place_on_wall_floor(self, spec: ClassSpec, tries=20):
        size = self.sample_size(spec)
        w, d, h = size
        for _ in range(tries):
            wall = int(self.rng.integers(4))
            length = self.room.walls()[wall][3]
            lo, hi = CORNER_MARGIN + w / 2, length - CORNER_MARGIN - w / 2
            if hi <= lo:
                continue
            s = self.rng.uniform(lo, hi)
            if not self._wall_free(wall, s - w / 2, s + w / 2, 0.0, h):
                continue
            centre, yaw = self._wall_point(wall, s, d / 2 + 0.02)
            if not self.fits(centre, yaw, (w / 2, d / 2), pad=0.02):
                continue
            self.wall_rects[wall].append((s - w / 2, s + w / 2, 0.0, h))
            self.occupy(centre, yaw, (w / 2, d / 2), h)
            obj = self.add_spec(spec, size, np.append(centre, 0.002), yaw)
            return obj, size
        return None, size

    def place_on_wall(self, spec: ClassSpec, tries=20, z_range=None):
        w, d, h = size = self.sample_size(spec)
        z_lo, z_hi = z_range or spec.mount_height
        for _ in range(tries):
            wall = int(self.rng.integers(4))
            length = self.room.walls()[wall][3]
            lo, hi = 0.3 + w / 2, length - 0.3 - w / 2
            z0 = self.rng.uniform(z_lo, z_hi)
            if hi <= lo or z0 + h > self.room.height - 0.1:
                continue
            s = self.rng.uniform(lo, hi)
            if not self._wall_free(wall, s - w / 2, s + w / 2, z0, z0 + h):
                continue
            centre, yaw = self._wall_point(wall, s, d / 2 + 0.003)
            self.wall_rects[wall].append((s - w / 2, s + w / 2, z0, z0 + h))
            return wall, s, z0, size, self.add_spec(spec, size, np.append(centre, z0), yaw)
        return None

    def door(self):
        spec = CATALOGUE["door"]
        placed = self.place_on_wall(spec, z_range=(0.0, 0.0))
        if placed is None:
            return
        wall, s, _, (w, d, h), _ = placed
        # keep the floor in front of the door free
        centre, yaw = self._wall_point(wall, s, 0.5)
        self.occupy(centre, yaw, (w / 2, 0.45), 0.0)
        frame = 0.07
        parts = [
            self._local_box(-w / 2 - frame, -0.03, 0.0, -w / 2, 0.0, h + frame),
            self._local_box(w / 2, -0.03, 0.0, w / 2 + frame, 0.0, h + frame),
            self._local_box(-w / 2, -0.03, h, w / 2, 0.0, h + frame),
        ]
        position, yaw = self._wall_point(wall, s, 0.0)
        self._stuff("doorframe", parts, np.append(position, 0.0), yaw)
        self.wall_rects[wall].append((s - w / 2 - 0.15, s + w / 2 + 0.15, 0.0, h + 0.15))

    def window(self):
        spec = CATALOGUE["window"]
        placed = self.place_on_wall(spec)
        if placed is None:
            return
        wall, s, z0, (w, d, h), _ = placed
        frame = 0.05
        parts = [
            self._local_box(-w / 2 - frame, -0.04, z0 - frame, -w / 2, 0.0, z0 + h + frame),
            self._local_box(w / 2, -0.04, z0 - frame, w / 2 + frame, 0.0, z0 + h + frame),
            self._local_box(-w / 2, -0.04, z0 + h, w / 2, 0.0, z0 + h + frame),
            self._local_box(-w / 2, -0.04, z0 - frame, w / 2, 0.0, z0),
        ]
        position, yaw = self._wall_point(wall, s, 0.0)
        self._stuff("window frame", parts, np.append(position, 0.0), yaw)
        sill = [
            self._local_box(-w / 2 - 0.1, -0.16, z0 - frame - 0.042, w / 2 + 0.1, 0.0, z0 - frame - 0.002)
        ]
        label = "windowsill" if self.rng.random() < 0.5 else "window sill"  # the raw label maps via the CSV
        self._stuff(label, sill, np.append(position, 0.0), yaw, class_name="windowsill")
        self.wall_rects[wall].append((s - w / 2 - 0.15, s + w / 2 + 0.15, z0 - 0.15, z0 + h + 0.08))

    def _local_box(self, x0, y0, z0, x1, y1, z1):
        return furniture._box(x0, y0, z0, x1, y1, z1, self.res)

    def _stuff(self, label, parts, position, yaw, class_name=None):
        palette = STUFF_SPECS[class_name or label]
        self.add(label, class_name or label, parts, position, yaw, palette, ("solid",), 0.3)

    # -- free-standing ------------------------------------------------------------------------------------
    def place_center(self, spec: ClassSpec, tries=30, size=None, near=None, aligned=False):
        """Free-standing object inside the camera loop; `near` = (centre, yaw) tries one given spot with a
        looser clearance (chairs around a table); `aligned` keeps the yaw close to the room axes."""
        size = size or self.sample_size(spec)
        w, d, h = size
        for _ in range(tries):
            if near is None:
                a, b = self.room.loop_axes
                centre = self.room.centre + self.rng.uniform(-1, 1, 2) * np.array([a, b])
                if aligned:
                    yaw = self.rng.integers(4) * np.pi / 2 + self.rng.uniform(-0.15, 0.15)
                else:
                    yaw = self.rng.uniform(0, 2 * np.pi)
            else:
                centre, yaw = near
            clearance = 0.15 if near is not None else 0.4
            inside = self.in_inner_region(centre, yaw, (w / 2, d / 2), clearance)
            if not inside or not self.fits(centre, yaw, (w / 2, d / 2)):
                if near is not None:
                    return None, size
                continue
            self.occupy(centre, yaw, (w / 2, d / 2), h)
            return self.add_spec(spec, size, np.append(centre, 0.002), yaw), size
        return None, size

    def table_with_chairs(self):
        table, (w, d, h) = self.place_center(CATALOGUE["table"], aligned=True)
        if table is None:
            return
        self.supports.append(Support(table.position[:2], table.yaw, (w / 2 - 0.05, d / 2 - 0.05), h))
        chair_spec = CATALOGUE["chair" if self.rng.random() < 0.7 else "office chair"]
        rotation = rotation_z(table.yaw)[:2, :2]
        sides = [((0, -1), w), ((0, 1), w), ((-1, 0), d), ((1, 0), d)]
        for k in self.rng.permutation(4)[: self.rng.integers(1, 5)]:
            direction, _ = sides[k]
            size = self.sample_size(chair_spec)
            half_extent = (d if direction[0] == 0 else w) / 2
            offset = np.array(direction) * (half_extent + size[1] / 2 + 0.12)
            centre = table.position[:2] + rotation @ offset
            # the chair's back (+y local) points away from the table
            yaw = table.yaw + float(np.arctan2(-direction[0], direction[1]))
            self.place_center(chair_spec, size=size, near=(centre, yaw))

    def place_on_top(self, spec: ClassSpec, tries=15):
        if not self.supports:
            return None
        size = self.sample_size(spec)
        w, d, h = size
        radius = float(np.hypot(w, d)) / 2
        for _ in range(tries):
            support = self.supports[self.rng.integers(len(self.supports))]
            hx, hy = support.half[0] - radius, support.half[1] - radius
            if hx <= 0 or hy <= 0:
                continue
            local = self.rng.uniform(-1, 1, 2) * np.array([hx, hy])
            xy = support.centre + rotation_z(support.yaw)[:2, :2] @ local
            if any(np.linalg.norm(xy - c) < radius + r + 0.02 for c, r in support.used):
                continue
            support.used.append((xy, radius))
            yaw = support.yaw + self.rng.uniform(-0.4, 0.4) + (np.pi if self.rng.random() < 0.2 else 0.0)
            return self.add_spec(spec, size, np.append(xy, support.z + 0.001), yaw)
        return None

    def books_on_shelf(self, shelf: ObjectMesh, size):
        """Rows of books on some shelves of a bookshelf: one crowd group ("books") per row."""
        w, d, _ = size
        for z in furniture.shelf_heights(size[2]):
            if self.rng.random() < 0.35:
                continue
            x = -w / 2 + 0.03 + self.rng.uniform(0, 0.15)
            parts, colours = [], []
            while x < w / 2 - 0.06:
                bw, bh, bd = (
                    self.rng.uniform(0.02, 0.05),
                    self.rng.uniform(0.18, 0.3),
                    self.rng.uniform(0.15, d - 0.06),
                )
                local = self._local_box(
                    x, -d / 2 + 0.02, z + 0.026, x + bw, -d / 2 + 0.02 + bd, z + 0.026 + bh
                )
                parts.append(local)
                palette = CATALOGUE["book"].palette
                colours.append(
                    paint(
                        "solid",
                        local[0],
                        jitter_color(palette[self.rng.integers(len(palette))], self.rng, 0.25),
                        palette[0],
                        self.rng,
                        0.1,
                    )
                )
                x += bw + self.rng.uniform(0.0, 0.01)
            if parts:
                self.add("books", "book", parts, shelf.position, shelf.yaw, None, None, colours=colours)


def build_layout(rng: np.random.Generator, resolution: float = 0.06, min_objects: int = 0) -> Layout:
    """Build one room with 20-45 annotated objects, then, when `min_objects` asks for more, add clutter
    (wall shelves, things on the walls and on every support) until the room has that many or no place is
    left. Deterministic for a given generator state; `min_objects` up to the base count changes nothing."""
    b = _Builder(rng, resolution)
    b.shell()
    b.door()
    for _ in range(int(rng.integers(1, 3))):
        b.window()
    for name in rng.choice(WALL_FURNITURE, size=int(rng.integers(3, 6))):
        spec = CATALOGUE[str(name)]
        obj, size = b.place_on_wall_floor(spec)
        if obj is None:
            continue
        if spec.class_name == "bookshelf":
            b.books_on_shelf(obj, size)
        if spec.class_name == "cabinet":
            b.supports.append(
                Support(obj.position[:2], obj.yaw, (size[0] / 2 - 0.04, size[1] / 2 - 0.04), size[2])
            )
        if spec.class_name in ("sofa", "bed"):
            seat = size[2] * (0.55 if spec.class_name == "sofa" else 1.0)
            b.soft.append(Support(obj.position[:2], obj.yaw, (size[0] / 2 - 0.3, size[1] / 2 - 0.35), seat))
    for name in rng.choice(WALL_DECOR, size=int(rng.integers(2, 5))):
        b.place_on_wall(CATALOGUE[str(name)])
    if rng.random() < 0.85:
        b.table_with_chairs()
    if rng.random() < 0.5:
        b.place_center(CATALOGUE["office chair"])
    for name in rng.choice(FLOOR_SMALL, size=int(rng.integers(3, 7))):
        spec = CATALOGUE[str(name)]
        obj, size = b.place_center(spec)
        if obj is not None and spec.class_name == "plant pot":
            plant = CATALOGUE["plant"]
            b.add_spec(plant, b.sample_size(plant), obj.position + np.array([0, 0, size[2]]), obj.yaw)
    for name in rng.choice(ON_TOP, size=int(rng.integers(4, 10))):
        b.place_on_top(CATALOGUE[str(name)])
    if rng.random() < 0.5 and b.supports:  # an annotated object whose raw label has no benchmark class
        spec = ClassSpec(
            "object", "box", ((0.1, 0.2), (0.1, 0.2), (0.05, 0.15)), ((120, 60, 160),), ("solid",), ""
        )
        obj = b.place_on_top(spec)
        if obj is not None:
            obj.label = "object"
    for support in b.soft:
        for _ in range(int(rng.integers(1, 3))):
            b.supports, saved = [support], b.supports
            b.place_on_top(CATALOGUE["pillow"])
            b.supports = saved
    for _ in range(int(rng.integers(1, 4))):
        spec = CATALOGUE["ceiling lamp"]
        w, d, h = size = b.sample_size(spec)
        xy = b.room.centre + rng.uniform(-0.35, 0.35, 2) * np.array([b.room.size_x, b.room.size_y])
        b.add_spec(spec, size, np.append(xy, b.room.height - h - 0.002), rng.uniform(0, np.pi))
    if min_objects > len(b.objects):
        _add_clutter(b, min_objects)
    return Layout(room=b.room, objects=b.objects, occupancy=b.occupancy, heights=b.heights)


def _add_clutter(b: _Builder, min_objects: int) -> None:
    """Wall shelves first (about one per eight missing objects: each is a support for small things), then
    things on the walls and on supports in random order until `min_objects` or too many misses."""
    rng = b.rng
    b.supports.extend(b.soft)
    for _ in range(int(np.ceil((min_objects - len(b.objects)) / 8))):
        if len(b.objects) >= min_objects:
            return
        placed = b.place_on_wall(CLUTTER_SHELF)
        if placed is not None:
            _, _, z0, (w, d, h), shelf = placed
            b.supports.append(Support(shelf.position[:2], shelf.yaw, (w / 2 - 0.03, d / 2 - 0.03), z0 + h))
    misses = 0
    while len(b.objects) < min_objects and misses < 200:
        if rng.random() < 0.3:
            placed = b.place_on_wall(CLUTTER_WALL[rng.integers(len(CLUTTER_WALL))], tries=10) is not None
        else:
            placed = b.place_on_top(CLUTTER_ON_TOP[rng.integers(len(CLUTTER_ON_TOP))], tries=10) is not None
        misses = 0 if placed else misses + 1
