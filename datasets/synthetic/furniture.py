"""Shape families of the synthetic objects, built from boxes, frustums and ellipsoids.

Every builder returns parts in the object frame: footprint x in [-w/2, w/2], y in [-d/2, d/2] (the front
faces -y), z from 0 (floor contact) to h. Each part carries a role ("main" or "accent") that picks the
palette colour it is painted with. Parts of one object may touch or overlap (like real furniture); they
still form one vertex set and one annotation.
"""

from __future__ import annotations

import numpy as np

from datasets.synthetic.geometry import box, ellipsoid, frustum

Parts = list[tuple[np.ndarray, np.ndarray, str]]


def _box(x0, y0, z0, x1, y1, z1, resolution, role="main"):
    vertices, faces = box((x1 - x0, y1 - y0, z1 - z0), resolution)
    return vertices + np.array([x0, y0, z0]), faces, role


def _frustum(r0, r1, height, resolution, z0=0.0, role="main", scale_y=1.0, at=(0.0, 0.0)):
    vertices, faces = frustum(r0, r1, height, resolution)
    vertices = vertices * np.array([1.0, scale_y, 1.0]) + np.array([at[0], at[1], z0])
    return vertices, faces, role


def _ellipsoid(radii, centre, resolution, role="main"):
    vertices, faces = ellipsoid(radii, resolution)
    return vertices + np.asarray(centre, dtype=float), faces, role


def build(shape: str, size, rng: np.random.Generator, resolution: float) -> Parts:
    """Parts of one object of the given shape family and size (w, d, h)."""
    return _BUILDERS[shape](*size, rng=rng, res=resolution)


def _table(w, d, h, rng, res):
    top = rng.uniform(0.03, 0.05)
    leg = rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.03, 0.1)
    parts = [_box(-w / 2, -d / 2, h - top, w / 2, d / 2, h, res)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            x = sx * (w / 2 - inset - leg / 2)
            y = sy * (d / 2 - inset - leg / 2)
            parts.append(_box(x - leg / 2, y - leg / 2, 0, x + leg / 2, y + leg / 2, h - top, res, "accent"))
    return parts


def _chair(w, d, h, rng, res):
    seat_h = rng.uniform(0.42, 0.48)
    seat_t = 0.05
    leg = 0.035
    back_t = rng.uniform(0.03, 0.06)
    parts = [_box(-w / 2, -d / 2, seat_h - seat_t, w / 2, d / 2, seat_h, res)]
    parts.append(_box(-w / 2, d / 2 - back_t, seat_h, w / 2, d / 2, h, res))
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - leg), sy * (d / 2 - leg)
            parts.append(
                _box(x - leg / 2, y - leg / 2, 0, x + leg / 2, y + leg / 2, seat_h - seat_t, res, "accent")
            )
    return parts


def _office_chair(w, d, h, rng, res):
    seat_h = rng.uniform(0.45, 0.52)
    parts = [_frustum(w * 0.45, w * 0.45, 0.05, res, role="accent", scale_y=d / w)]
    parts.append(_frustum(0.03, 0.03, seat_h - 0.13, res, z0=0.05, role="accent"))
    parts.append(_box(-w / 2 + 0.03, -d / 2 + 0.03, seat_h - 0.08, w / 2 - 0.03, d / 2 - 0.03, seat_h, res))
    parts.append(_box(-w / 2 + 0.06, d / 2 - 0.09, seat_h, w / 2 - 0.06, d / 2 - 0.03, h, res))
    return parts


def _sofa(w, d, h, rng, res):
    seat_h = rng.uniform(0.38, 0.45)
    arm = rng.uniform(0.12, 0.2)
    back = rng.uniform(0.18, 0.25)
    arm_h = rng.uniform(0.55, 0.65)
    return [
        _box(-w / 2 + arm, -d / 2, 0.0, w / 2 - arm, d / 2 - back, seat_h, res),
        _box(-w / 2, d / 2 - back, 0.0, w / 2, d / 2, h, res),
        _box(-w / 2, -d / 2, 0.0, -w / 2 + arm, d / 2 - back, arm_h, res, "accent"),
        _box(w / 2 - arm, -d / 2, 0.0, w / 2, d / 2 - back, arm_h, res, "accent"),
    ]


def _bed(w, d, h, rng, res):
    frame = rng.uniform(0.25, 0.32)
    head = rng.uniform(0.9, 1.1)
    # The head end is at +y (against the wall); the mattress (main colour) sits on an accent frame.
    return [
        _box(-w / 2, -d / 2, 0.0, w / 2, d / 2 - 0.06, frame, res, "accent"),
        _box(-w / 2 + 0.03, -d / 2 + 0.03, frame, w / 2 - 0.03, d / 2 - 0.06, h, res),
        _box(-w / 2, d / 2 - 0.06, 0.0, w / 2, d / 2, head, res, "accent"),
    ]


def _cabinet(w, d, h, rng, res):
    parts = [_box(-w / 2, -d / 2 + 0.02, 0.0, w / 2, d / 2, h, res)]
    handle_z = h * rng.uniform(0.45, 0.75)
    for sx in (-1, 1) if w > 0.7 else (1,):
        x = sx * 0.06
        parts.append(
            _box(x - 0.01, -d / 2, handle_z - 0.08, x + 0.01, -d / 2 + 0.02, handle_z + 0.08, res, "accent")
        )
    return parts


def _bookshelf(w, d, h, rng, res):
    t = 0.025
    parts = [
        _box(-w / 2, -d / 2, 0.0, -w / 2 + t, d / 2, h, res),
        _box(w / 2 - t, -d / 2, 0.0, w / 2, d / 2, h, res),
        _box(-w / 2 + t, d / 2 - 0.01, 0.0, w / 2 - t, d / 2, h, res, "accent"),
    ]
    for z in shelf_heights(h):
        parts.append(_box(-w / 2 + t, -d / 2, z, w / 2 - t, d / 2 - 0.01, z + t, res))
    parts.append(_box(-w / 2 + t, -d / 2, h - t, w / 2 - t, d / 2 - 0.01, h, res))
    return parts


def shelf_heights(h: float) -> list[float]:
    """Bottom z of each shelf board of a bookshelf of height h (the books stand on z + 0.025)."""
    count = max(2, int(h / 0.38))
    return [float(z) for z in np.linspace(0.05, h - 0.35, count)]


def _fridge(w, d, h, rng, res):
    split = h * rng.uniform(0.6, 0.7)
    return [
        _box(-w / 2, -d / 2 + 0.02, 0.0, w / 2, d / 2, h, res),
        _box(w / 2 - 0.1, -d / 2, split - 0.35, w / 2 - 0.07, -d / 2 + 0.02, split - 0.05, res, "accent"),
        _box(w / 2 - 0.1, -d / 2, split + 0.05, w / 2 - 0.07, -d / 2 + 0.02, split + 0.35, res, "accent"),
    ]


def _cylinder(w, d, h, rng, res):
    return [_frustum(w / 2 * 0.9, w / 2, h, res, scale_y=d / w)]


def _box_shape(w, d, h, rng, res):
    return [_box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res)]


def _suitcase(w, d, h, rng, res):
    return [
        _box(-w / 2, -d / 2, 0.03, w / 2, d / 2, h, res),
        _box(-0.08, -0.015, h, 0.08, 0.015, h + 0.03, res, "accent"),
        _box(-w / 2 + 0.03, -d / 2 + 0.03, 0.0, w / 2 - 0.03, d / 2 - 0.03, 0.03, res, "accent"),
    ]


def _ellipsoid_shape(w, d, h, rng, res):
    return [_ellipsoid((w / 2, d / 2, h / 2), (0, 0, h / 2), res)]


def _bucket(w, d, h, rng, res):
    return [
        _frustum(w / 2 * 0.8, w / 2, h, res),
        _frustum(w / 2 + 0.005, w / 2 + 0.005, 0.02, res, h - 0.02, "accent"),
    ]


def _plant(w, d, h, rng, res):
    stem = 0.25 * h
    parts = [_frustum(0.015, 0.015, stem, res, role="accent")]
    for _ in range(int(rng.integers(2, 4))):
        offset = rng.uniform(-0.25, 0.25, 2) * np.array([w, d])
        radii = (
            w / 2 * rng.uniform(0.6, 0.9),
            d / 2 * rng.uniform(0.6, 0.9),
            (h - stem) / 2 * rng.uniform(0.7, 1),
        )
        parts.append(_ellipsoid(radii, (offset[0], offset[1], stem + radii[2]), res))
    return parts


def _monitor(w, d, h, rng, res):
    return [
        _box(-0.1, -0.08, 0.0, 0.1, 0.08, 0.015, res, "accent"),
        _box(-0.02, 0.0, 0.015, 0.02, 0.03, h * 0.35, res, "accent"),
        _box(-w / 2, -0.03, h * 0.3, w / 2, 0.0, h, res),
    ]


def _laptop(w, d, h, rng, res):
    tilt = rng.uniform(0.2, 0.35)
    base = _box(-w / 2, -d / 2, 0.0, w / 2, d / 2, 0.02, res)
    vertices, faces = box((w, 0.01, h - 0.02), res)
    vertices = vertices + np.array([-w / 2, 0.0, 0.0])
    c, s = np.cos(tilt), np.sin(tilt)
    rotation = np.array([[1, 0, 0], [0, c, s], [0, -s, c]])  # lean the lid backwards (towards +y)
    vertices = vertices @ rotation.T + np.array([0.0, d / 2 - 0.01, 0.02])
    return [base, (vertices, faces, "accent")]


def _slab(w, d, h, rng, res):
    return [_box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res)]


def _cup(w, d, h, rng, res):
    return [_frustum(w / 2 * 0.85, w / 2, h, res)]


def _bottle(w, d, h, rng, res):
    body = h * 0.65
    return [
        _frustum(w / 2, w / 2, body, res),
        _frustum(w / 2, 0.014, h * 0.2, res, body),
        _frustum(0.014, 0.014, h * 0.15, res, body + h * 0.2, "accent"),
    ]


def _bowl(w, d, h, rng, res):
    return [_frustum(w / 2 * 0.55, w / 2, h, res)]


def _table_lamp(w, d, h, rng, res):
    return [
        _frustum(w * 0.3, w * 0.25, 0.03, res, role="accent"),
        _frustum(0.012, 0.012, h * 0.55, res, 0.03, "accent"),
        _frustum(w / 2, w * 0.3, h * 0.42, res, h * 0.58),
    ]


def _microwave(w, d, h, rng, res):
    return [
        _box(-w / 2, -d / 2 + 0.01, 0.0, w / 2, d / 2, h, res),
        _box(-w / 2 + 0.03, -d / 2, 0.04, w / 2 - 0.15, -d / 2 + 0.01, h - 0.04, res, "accent"),
    ]


def _screen(w, d, h, rng, res):
    return [
        _box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res, "accent"),
        _box(-w / 2 + 0.02, -d / 2 - 0.004, 0.02, w / 2 - 0.02, -d / 2, h - 0.02, res),
    ]


def _framed_panel(w, d, h, rng, res):
    frame = rng.uniform(0.02, 0.04)
    return [
        _box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res, "accent"),
        _box(-w / 2 + frame, -d / 2 - 0.004, frame, w / 2 - frame, -d / 2, h - frame, res),
    ]


def _panel(w, d, h, rng, res):
    return [_box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res)]


def _clock(w, d, h, rng, res):
    # A disc facing -y: build a frustum along z, then turn z into -y.
    vertices, faces = frustum(w / 2, w / 2, d, res)
    vertices = vertices @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]) + np.array([0.0, d / 2, w / 2])
    hand_v, hand_f = box((0.01, 0.004, w * 0.35), res)
    hand_v = hand_v + np.array([-0.005, -d / 2 - 0.004, w / 2])
    return [(vertices, faces, "main"), (hand_v, hand_f, "accent")]


def _ceiling_lamp(w, d, h, rng, res):
    # Hangs from z = h down to 0 in the object frame; the layout puts z = h at the ceiling.
    return [_frustum(w / 2 * 0.7, w / 2, h, res, scale_y=d / w)]


def _pillow(w, d, h, rng, res):
    return [_ellipsoid((w / 2, d / 2, h / 2), (0, 0, h / 2), res)]


def _book(w, d, h, rng, res):
    return [_box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, res)]


_BUILDERS = {
    "table": _table,
    "chair": _chair,
    "office_chair": _office_chair,
    "sofa": _sofa,
    "bed": _bed,
    "cabinet": _cabinet,
    "bookshelf": _bookshelf,
    "fridge": _fridge,
    "cylinder": _cylinder,
    "box": _box_shape,
    "suitcase": _suitcase,
    "ellipsoid": _ellipsoid_shape,
    "bucket": _bucket,
    "plant": _plant,
    "monitor": _monitor,
    "laptop": _laptop,
    "slab": _slab,
    "cup": _cup,
    "bottle": _bottle,
    "bowl": _bowl,
    "table_lamp": _table_lamp,
    "microwave": _microwave,
    "screen": _screen,
    "framed_panel": _framed_panel,
    "panel": _panel,
    "clock": _clock,
    "ceiling_lamp": _ceiling_lamp,
    "pillow": _pillow,
    "book": _book,
}
SHAPES = tuple(_BUILDERS)
