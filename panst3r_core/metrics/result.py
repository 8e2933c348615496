"""The result of a PQ evaluation, shaped like panopticapi's `pq_compute` output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GroupScore:
    """Mean scores of a group of classes (All, Things or Stuff); None when the group is empty (n = 0)."""

    pq: float | None
    sq: float | None
    rq: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"pq": self.pq, "sq": self.sq, "rq": self.rq, "n": self.n}


@dataclass(frozen=True)
class ClassScore:
    pq: float
    sq: float
    rq: float

    def to_dict(self) -> dict[str, float]:
        return {"pq": self.pq, "sq": self.sq, "rq": self.rq}


@dataclass
class PQResult:
    """PQ/SQ/RQ overall, for things, for stuff, and per class (values in [0, 1], not x100).

    coco mode: `n` counts the classes averaged (those with TP + FP + FN > 0), as panopticapi.
    scene mode: each group is the mean over scenes of the per-scene class mean, and `n` counts the scenes
    that entered that mean; per-class scores are averaged over the scenes where the class was kept, and
    `per_scene` holds each scene's own result.
    """

    all: GroupScore
    things: GroupScore
    stuff: GroupScore
    per_class: dict[int, ClassScore]
    per_scene: dict[str, PQResult] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """{"All", "Things", "Stuff": {pq, sq, rq, n}, "per_class": {category_id: {pq, sq, rq}}} (+ per_scene)."""
        data: dict[str, Any] = {
            "All": self.all.to_dict(),
            "Things": self.things.to_dict(),
            "Stuff": self.stuff.to_dict(),
            "per_class": {category: score.to_dict() for category, score in self.per_class.items()},
        }
        if self.per_scene is not None:
            data["per_scene"] = {scene: result.to_dict() for scene, result in self.per_scene.items()}
        return data
