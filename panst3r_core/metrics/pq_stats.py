"""Per-class PQ accumulators and the two averaging rules.

coco (panopticapi `PQStat.pq_average`): the mean runs over the classes with TP + FP + FN > 0; the others
are reported as 0 and left out. scene (Panoptic Lifting): the mean runs over every kept class, a class
with nothing to count adding 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from panst3r_core.metrics.result import ClassScore, GroupScore, PQResult


@dataclass
class ClassStats:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou: float = 0.0
    """Sum of the IoUs of the true positives."""

    @property
    def counted(self) -> bool:
        return self.tp + self.fp + self.fn > 0

    def score(self) -> ClassScore:
        """PQ = sum IoU / (TP + FP/2 + FN/2), SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2); 0 if undefined."""
        denominator = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return ClassScore(
            pq=self.iou / denominator if denominator > 0 else 0.0,
            sq=self.iou / self.tp if self.tp > 0 else 0.0,
            rq=self.tp / denominator if denominator > 0 else 0.0,
        )


class PQStats:
    """tp / fp / fn / IoU sum per category id, summed over images (coco) or over one scene."""

    def __init__(self) -> None:
        self.per_class: dict[int, ClassStats] = {}

    def __getitem__(self, category: int) -> ClassStats:
        return self.per_class.setdefault(int(category), ClassStats())

    def __iadd__(self, other: PQStats) -> PQStats:
        for category, stats in other.per_class.items():
            mine = self[category]
            mine.tp += stats.tp
            mine.fp += stats.fp
            mine.fn += stats.fn
            mine.iou += stats.iou
        return self

    def add_true_positives(self, categories: Iterable[int], ious: Iterable[float]) -> None:
        for category, iou in zip(categories, ious):
            stats = self[category]
            stats.tp += 1
            stats.iou += float(iou)

    def add_false_positives(self, categories: Iterable[int]) -> None:
        for category in categories:
            self[category].fp += 1

    def add_false_negatives(self, categories: Iterable[int]) -> None:
        for category in categories:
            self[category].fn += 1


def _mean(scores: list[ClassScore]) -> GroupScore:
    n = len(scores)
    if n == 0:
        return GroupScore(None, None, None, 0)
    return GroupScore(
        pq=sum(s.pq for s in scores) / n,
        sq=sum(s.sq for s in scores) / n,
        rq=sum(s.rq for s in scores) / n,
        n=n,
    )


def average_coco(stats: PQStats, categories: Mapping[int, bool]) -> PQResult:
    """panopticapi averaging over `categories` (id -> isthing, in report order)."""
    per_class: dict[int, ClassScore] = {}
    groups: dict[str, list[ClassScore]] = {"all": [], "things": [], "stuff": []}
    for category, isthing in categories.items():
        class_stats = stats.per_class.get(int(category), ClassStats())
        if not class_stats.counted:
            per_class[int(category)] = ClassScore(0.0, 0.0, 0.0)
            continue
        score = class_stats.score()
        per_class[int(category)] = score
        groups["all"].append(score)
        groups["things" if isthing else "stuff"].append(score)
    return PQResult(
        all=_mean(groups["all"]),
        things=_mean(groups["things"]),
        stuff=_mean(groups["stuff"]),
        per_class=per_class,
    )


def average_all_kept(
    stats: PQStats, things: Iterable[int], stuff: Iterable[int], only_counted: bool = False
) -> PQResult:
    """Mean over every kept class (Panoptic Lifting), or over the counted ones when `only_counted`."""
    per_class: dict[int, ClassScore] = {}
    thing_scores, stuff_scores = [], []
    for members, scores in ((sorted(things), thing_scores), (sorted(stuff), stuff_scores)):
        for category in members:
            class_stats = stats.per_class.get(int(category), ClassStats())
            score = class_stats.score()
            per_class[int(category)] = score
            if class_stats.counted or not only_counted:
                scores.append(score)
    return PQResult(
        all=_mean(thing_scores + stuff_scores),
        things=_mean(thing_scores),
        stuff=_mean(stuff_scores),
        per_class=per_class,
    )
