"""The ScanNet++ benchmark vocabulary and the object catalogue of the synthetic generator.

`TOP100` / `TOP100_INSTANCE` are the official benchmark lists (class id = index). `MAPPING_ROWS` are the
rows of the generated `map_benchmark.csv`: every benchmark name maps to itself, plus a few raw labels that
map through the CSV (e.g. "desk" -> table), one crowd label ("books": a thing class without an instance
target) and one label without any target ("object", which readers skip).

`CATALOGUE` gives every object class a consistent shape family, size range, palette and patterns so that a
model can learn the classes from appearance and shape; instances vary within those ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

from panst3r_core.classes.vocabulary import SCANNETPP_STUFF

TOP100 = (
    "wall, ceiling, floor, table, door, ceiling lamp, cabinet, blinds, curtain, chair, storage cabinet, "
    "office chair, bookshelf, whiteboard, window, box, window frame, monitor, shelf, doorframe, pipe, heater, "
    "kitchen cabinet, sofa, windowsill, bed, shower wall, trash can, book, plant, blanket, tv, computer tower, "
    "kitchen counter, refrigerator, jacket, electrical duct, sink, bag, picture, pillow, towel, suitcase, "
    "backpack, crate, keyboard, rack, toilet, paper, printer, poster, painting, microwave, board, shoes, "
    "socket, bottle, bucket, cushion, basket, shoe rack, telephone, file folder, cloth, blind rail, laptop, "
    "plant pot, exhaust fan, cup, coat hanger, light switch, speaker, table lamp, air vent, clothes hanger, "
    "kettle, smoke detector, container, power strip, slippers, paper bag, mouse, cutting board, toilet paper, "
    "paper towel, pot, clock, pan, tap, jar, soap dispenser, binder, bowl, tissue box, whiteboard eraser, "
    "toilet brush, spray bottle, headphones, stapler, marker"
).split(", ")

STUFF_CLASSES = SCANNETPP_STUFF
TOP100_INSTANCE = tuple(name for name in TOP100 if name not in STUFF_CLASSES)

# Raw labels that reach a benchmark class only through map_benchmark.csv:
# (raw label, semantic_map_to, instance_map_to); None = empty cell.
RAW_LABEL_ROWS: tuple[tuple[str, str | None, str | None], ...] = (
    ("desk", "table", "table"),
    ("dining chair", "chair", "chair"),
    ("couch", "sofa", "sofa"),
    ("trash bin", "trash can", "trash can"),
    ("flower pot", "plant pot", "plant pot"),
    ("tv screen", "tv", "tv"),
    ("window sill", "windowsill", None),  # stuff through the semantic target
    ("books", "book", None),  # crowd: a thing class without an instance target
    ("object", None, None),  # no benchmark class: readers skip it
)
CROWD_LABELS = ("books",)
UNMAPPED_LABELS = ("object",)


def mapping_rows() -> list[tuple[str, int, str, str]]:
    """Rows (class, count, semantic_map_to, instance_map_to) of map_benchmark.csv; '' = empty cell."""
    rows = []
    for index, name in enumerate(TOP100):
        rows.append((name, 1000 - 7 * index, name, name if name in TOP100_INSTANCE else ""))
    for index, (raw, semantic, instance) in enumerate(RAW_LABEL_ROWS):
        rows.append((raw, 90 - index, semantic or "", instance or ""))
    return rows


def raw_labels() -> list[str]:
    """Every raw label the generator can write (the `semantic_classes.txt` vocabulary), sorted."""
    return sorted(set(TOP100) | {row[0] for row in RAW_LABEL_ROWS})


@dataclass(frozen=True)
class ClassSpec:
    """How instances of one benchmark class look and where they go.

    size: (min, max) ranges of width (x), depth (y), height (z) in metres in the object frame (the front
    faces -y); placement: 'wall' (on the floor, back to a wall), 'center' (on the floor, free-standing),
    'on_top' (on a table or cabinet), 'wall_mount' (on a wall at mount_height), 'ceiling'."""

    class_name: str
    shape: str
    size: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    palette: tuple[tuple[int, int, int], ...]
    patterns: tuple[str, ...]
    placement: str
    raw_labels: tuple[str, ...] = ()
    mount_height: tuple[float, float] = (0.0, 0.0)
    pattern_scale: float = 0.2

    @property
    def labels(self) -> tuple[str, ...]:
        return self.raw_labels or (self.class_name,)


_WOOD = ((150, 105, 60), (120, 80, 45), (190, 150, 100), (90, 60, 35))
_FABRIC = ((60, 90, 150), (140, 40, 45), (90, 120, 80), (110, 110, 115), (200, 170, 120))
_DARK = ((30, 30, 32), (55, 55, 60), (20, 25, 40))
_WHITE = ((235, 235, 230), (210, 212, 215), (245, 240, 225))
_BRIGHT = ((220, 60, 50), (50, 140, 220), (240, 200, 40), (60, 170, 90), (160, 80, 190), (240, 130, 40))

CATALOGUE: dict[str, ClassSpec] = {
    spec.class_name: spec
    for spec in (
        ClassSpec(
            "table",
            "table",
            ((1.0, 1.7), (0.6, 0.95), (0.7, 0.78)),
            _WOOD + _WHITE[:1],
            ("wood", "solid"),
            "center",
            ("table", "desk"),
        ),
        ClassSpec(
            "chair",
            "chair",
            ((0.42, 0.5), (0.42, 0.5), (0.8, 0.95)),
            _WOOD + _FABRIC[:2],
            ("solid", "wood"),
            "center",
            ("chair", "dining chair"),
        ),
        ClassSpec(
            "office chair",
            "office_chair",
            ((0.55, 0.65), (0.55, 0.65), (0.9, 1.1)),
            _DARK + _FABRIC[:1],
            ("solid", "blotches"),
            "center",
        ),
        ClassSpec(
            "sofa",
            "sofa",
            ((1.6, 2.2), (0.8, 0.95), (0.75, 0.9)),
            _FABRIC,
            ("blotches", "solid", "checker"),
            "wall",
            ("sofa", "couch"),
            pattern_scale=0.3,
        ),
        ClassSpec(
            "bed",
            "bed",
            ((1.4, 1.8), (1.9, 2.1), (0.45, 0.6)),
            _FABRIC + _WHITE[:1],
            ("stripes", "solid"),
            "wall",
            pattern_scale=0.3,
        ),
        ClassSpec(
            "cabinet",
            "cabinet",
            ((0.6, 1.2), (0.4, 0.55), (0.7, 1.0)),
            _WOOD + _WHITE,
            ("panels",),
            "wall",
            pattern_scale=0.3,
        ),
        ClassSpec(
            "storage cabinet",
            "cabinet",
            ((0.8, 1.2), (0.4, 0.6), (1.6, 2.0)),
            _WHITE + _DARK[1:2],
            ("panels",),
            "wall",
            pattern_scale=0.45,
        ),
        ClassSpec(
            "bookshelf",
            "bookshelf",
            ((0.8, 1.2), (0.3, 0.4), (1.6, 2.0)),
            _WOOD + _WHITE[:1],
            ("wood",),
            "wall",
        ),
        ClassSpec(
            "refrigerator",
            "fridge",
            ((0.6, 0.75), (0.6, 0.72), (1.7, 1.9)),
            _WHITE + ((180, 180, 185),),
            ("solid",),
            "wall",
        ),
        ClassSpec(
            "trash can",
            "cylinder",
            ((0.3, 0.42), (0.3, 0.42), (0.35, 0.6)),
            _DARK + _BRIGHT[1:3],
            ("solid", "stripes"),
            "center",
            ("trash can", "trash bin"),
            pattern_scale=0.1,
        ),
        ClassSpec(
            "box",
            "box",
            ((0.3, 0.6), (0.3, 0.5), (0.25, 0.5)),
            ((190, 150, 100), (170, 130, 85)),
            ("blotches", "solid"),
            "center",
            pattern_scale=0.15,
        ),
        ClassSpec(
            "crate",
            "box",
            ((0.4, 0.6), (0.3, 0.4), (0.25, 0.35)),
            _BRIGHT,
            ("stripes",),
            "center",
            pattern_scale=0.08,
        ),
        ClassSpec(
            "suitcase",
            "suitcase",
            ((0.4, 0.5), (0.22, 0.28), (0.6, 0.75)),
            _DARK + _BRIGHT[:2],
            ("stripes", "solid"),
            "center",
            pattern_scale=0.12,
        ),
        ClassSpec(
            "backpack",
            "ellipsoid",
            ((0.28, 0.34), (0.16, 0.22), (0.4, 0.48)),
            _BRIGHT + _DARK[:1],
            ("solid", "checker"),
            "center",
            pattern_scale=0.1,
        ),
        ClassSpec(
            "bucket", "bucket", ((0.26, 0.34), (0.26, 0.34), (0.25, 0.32)), _BRIGHT, ("solid",), "center"
        ),
        ClassSpec(
            "plant pot",
            "bucket",
            ((0.22, 0.34), (0.22, 0.34), (0.22, 0.32)),
            ((170, 85, 50), (230, 225, 215), (60, 60, 65)),
            ("solid", "stripes"),
            "center",
            ("plant pot", "flower pot"),
            pattern_scale=0.06,
        ),
        ClassSpec(
            "plant",
            "plant",
            ((0.35, 0.6), (0.35, 0.6), (0.5, 0.9)),
            ((50, 120, 45), (70, 140, 60)),
            ("blotches",),
            "on_pot",
            pattern_scale=0.08,
        ),
        ClassSpec("monitor", "monitor", ((0.5, 0.7), (0.18, 0.22), (0.4, 0.5)), _DARK, ("solid",), "on_top"),
        ClassSpec(
            "laptop",
            "laptop",
            ((0.32, 0.38), (0.22, 0.26), (0.2, 0.24)),
            ((180, 180, 185),) + _DARK[:1],
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "keyboard",
            "slab",
            ((0.42, 0.46), (0.13, 0.16), (0.025, 0.035)),
            _DARK + _WHITE[:1],
            ("checker",),
            "on_top",
            pattern_scale=0.03,
        ),
        ClassSpec(
            "cup",
            "cup",
            ((0.07, 0.09), (0.07, 0.09), (0.09, 0.11)),
            _BRIGHT + _WHITE[:1],
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "bottle",
            "bottle",
            ((0.07, 0.08), (0.07, 0.08), (0.22, 0.3)),
            ((40, 120, 60), (60, 90, 160)),
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "bowl",
            "bowl",
            ((0.16, 0.2), (0.16, 0.2), (0.06, 0.08)),
            _BRIGHT + _WHITE[:1],
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "table lamp",
            "table_lamp",
            ((0.25, 0.35), (0.25, 0.35), (0.4, 0.55)),
            _WHITE + _BRIGHT[2:3],
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "microwave",
            "microwave",
            ((0.45, 0.52), (0.33, 0.38), (0.26, 0.3)),
            _WHITE[:1] + _DARK[:1],
            ("solid",),
            "on_top",
        ),
        ClassSpec(
            "tv",
            "screen",
            ((1.0, 1.4), (0.05, 0.07), (0.6, 0.8)),
            _DARK,
            ("solid",),
            "wall_mount",
            ("tv", "tv screen"),
            mount_height=(1.0, 1.3),
        ),
        ClassSpec(
            "whiteboard",
            "framed_panel",
            ((1.2, 2.0), (0.03, 0.04), (0.9, 1.2)),
            _WHITE[:1],
            ("solid",),
            "wall_mount",
            mount_height=(0.9, 1.1),
        ),
        ClassSpec(
            "picture",
            "framed_panel",
            ((0.4, 0.8), (0.03, 0.04), (0.3, 0.6)),
            _BRIGHT,
            ("checker", "blotches", "stripes"),
            "wall_mount",
            mount_height=(1.3, 1.6),
            pattern_scale=0.1,
        ),
        ClassSpec(
            "poster",
            "panel",
            ((0.5, 0.7), (0.01, 0.015), (0.7, 0.9)),
            _BRIGHT,
            ("stripes", "blotches"),
            "wall_mount",
            mount_height=(1.1, 1.4),
            pattern_scale=0.12,
        ),
        ClassSpec(
            "clock",
            "clock",
            ((0.25, 0.35), (0.04, 0.05), (0.25, 0.35)),
            _WHITE[:1] + _DARK[:1],
            ("solid",),
            "wall_mount",
            mount_height=(1.8, 2.0),
        ),
        ClassSpec(
            "heater",
            "panel",
            ((0.8, 1.2), (0.08, 0.1), (0.5, 0.6)),
            _WHITE,
            ("panels",),
            "wall_mount",
            mount_height=(0.12, 0.18),
            pattern_scale=0.06,
        ),
        ClassSpec(
            "ceiling lamp",
            "ceiling_lamp",
            ((0.4, 0.7), (0.4, 0.7), (0.06, 0.1)),
            _WHITE,
            ("solid",),
            "ceiling",
        ),
        ClassSpec(
            "door",
            "panel",
            ((0.8, 0.95), (0.04, 0.05), (2.0, 2.1)),
            _WOOD + _WHITE[:1],
            ("wood", "panels"),
            "door",
            pattern_scale=0.25,
        ),
        ClassSpec(
            "window",
            "panel",
            ((0.8, 1.6), (0.02, 0.03), (1.0, 1.4)),
            ((150, 190, 225), (170, 205, 230)),
            ("blotches",),
            "window",
            mount_height=(0.85, 1.0),
            pattern_scale=0.4,
        ),
        ClassSpec(
            "pillow",
            "pillow",
            ((0.45, 0.6), (0.3, 0.4), (0.12, 0.16)),
            _FABRIC + _WHITE[:1],
            ("solid", "checker"),
            "on_soft",
            pattern_scale=0.08,
        ),
        ClassSpec(
            "computer tower", "box", ((0.18, 0.22), (0.42, 0.48), (0.42, 0.48)), _DARK, ("solid",), "center"
        ),
        ClassSpec("book", "book", ((0.15, 0.22), (0.22, 0.3), (0.03, 0.05)), _BRIGHT, ("solid",), "on_top"),
    )
}

# Stuff that comes with other objects: frames around doors and windows, window sills, room surfaces.
STUFF_SPECS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "wall": ((225, 220, 210), (200, 210, 215), (235, 225, 200), (190, 200, 185), (215, 200, 200)),
    "floor": ((150, 110, 70), (120, 120, 125), (180, 150, 110), (90, 70, 55)),
    "ceiling": ((240, 240, 238), (230, 232, 235)),
    "doorframe": ((240, 240, 235), (120, 85, 50)),
    "window frame": ((245, 245, 245), (70, 70, 75)),
    "windowsill": ((235, 235, 230), (200, 195, 185)),
}
