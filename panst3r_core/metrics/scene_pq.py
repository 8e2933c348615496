"""Scene-level PQ (PQ^scene) with the Panoptic Lifting protocol, each difference from COCO an option.

Per scene: every view's class and instance maps are resized to 512 x 512 (PIL NEAREST index rule), pixels
whose GT class is 0 are deleted from both sides, all views are concatenated into one list of
(class, instance) pairs (so a segment is one instance across the whole scene and predicted ids must be
consistent between views), classes are filtered (unused ones and "non-robust" ones under 0.5 % of the
predicted or of the GT pixels), stuff instances are merged, every other class becomes the void colour,
and one matching runs (IoU > 0.5 with both void sides removed from the union). Per-class scores are
averaged over every kept class; the dataset score is the mean over scenes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from panst3r_core.metrics.pairs import dense_labels, pair_counts
from panst3r_core.metrics.pq_stats import PQStats, average_all_kept
from panst3r_core.metrics.result import ClassScore, GroupScore, PQResult


@dataclass(frozen=True)
class ScenePQOptions:
    """The Panoptic Lifting protocol (defaults); each field is one difference from COCO panopticapi."""

    resize_to: tuple[int, int] | None = (512, 512)
    """(width, height) every view is resized to with nearest neighbour, so views weigh the same; None
    keeps native sizes (COCO)."""
    drop_gt_classes: tuple[int, ...] = (0,)
    """Pixels whose GT class is one of these are deleted from GT and prediction (COCO: kept as void)."""
    concatenate_views: bool = True
    """One matching over all views of a scene; False scores each view alone and averages the views."""
    remove_unused_classes: bool = True
    """Classes absent from both GT and prediction leave the class list."""
    robust_threshold: float = 0.005
    """Classes under this share of the predicted pixels or of the GT pixels are removed (only classes that
    occur on that side are tested); 0 disables."""
    merge_stuff_instances: bool = True
    """Instance ids of stuff classes are zeroed: one segment per stuff class (COCO keeps each segment)."""
    iou_removes_pred_void: bool = True
    """The union also loses |predicted void on the GT segment| (COCO removes only the GT-void side)."""
    fn_ignores_void_predictions: bool = True
    """An unmatched GT segment more than half predicted as void is not a false negative (COCO: it is)."""
    mean_over_all_kept_classes: bool = True
    """Average over every kept class, 0 for a class with nothing counted (COCO: only TP + FP + FN > 0)."""
    allow_unknown_pred_classes: bool = True
    """Predicted classes outside things and stuff become void (False: an error)."""
    float32_ratios: bool = True
    """IoU and void shares computed in float32 as the reference does (matters for IoU a hair above 0.5)."""


@dataclass
class SceneInput:
    """One scene: per view (H_v, W_v) integer maps of GT and predicted classes and instance ids."""

    gt_class: list[np.ndarray]
    gt_instance: list[np.ndarray]
    pred_class: list[np.ndarray]
    pred_instance: list[np.ndarray]
    name: str = ""
    extra_stuff: frozenset[int] = field(default_factory=frozenset)
    """Classes to treat as stuff in this scene on top of the given ones (used by format adapters)."""


def nearest_source_indices(src_len: int, dst_len: int) -> np.ndarray:
    """PIL NEAREST index table: src = floor((dst + 0.5) * src_len / dst_len), in exact integer arithmetic."""
    dst = np.arange(dst_len, dtype=np.int64)
    return np.minimum(((2 * dst + 1) * src_len) // (2 * dst_len), src_len - 1)


def resize_nearest(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) labels -> (height, width) with PIL's nearest rule; `size` is (width, height) as PIL takes it."""
    width, height = size
    rows = nearest_source_indices(label_map.shape[0], height)
    cols = nearest_source_indices(label_map.shape[1], width)
    return label_map[rows[:, None], cols[None, :]]


def _ratio(numerator: np.ndarray, denominator: np.ndarray, float32: bool) -> np.ndarray:
    if float32:  # torch int64 / int64 -> float32, exactly as the reference divides its area tensors
        return (
            torch.from_numpy(numerator.astype(np.int64)) / torch.from_numpy(denominator.astype(np.int64))
        ).numpy()
    return numerator.astype(np.float64) / denominator.astype(np.float64)


def _share_below(classes: np.ndarray, counts: np.ndarray, threshold: float, float32: bool) -> set[int]:
    total = np.full_like(counts, counts.sum())
    shares = _ratio(counts, total, float32)
    below = shares < (np.float32(threshold) if float32 else threshold)
    return set(classes[below].tolist())


def _kept_classes(
    pred_class: np.ndarray, gt_class: np.ndarray, things: set[int], stuff: set[int], options: ScenePQOptions
) -> tuple[set[int], set[int]]:
    pred_classes, _, pred_counts = dense_labels(pred_class)
    gt_classes, _, gt_counts = dense_labels(gt_class)
    removed: set[int] = set()
    if options.remove_unused_classes:
        removed |= (things | stuff) - set(pred_classes.tolist()) - set(gt_classes.tolist())
    if options.robust_threshold > 0:
        # a class is tested only on a side where it occurs: absent from the prediction is no reason to go
        removed |= _share_below(pred_classes, pred_counts, options.robust_threshold, options.float32_ratios)
        removed |= _share_below(gt_classes, gt_counts, options.robust_threshold, options.float32_ratios)
    return things - removed, stuff - removed


def _colors(
    classes: np.ndarray,
    instances: np.ndarray,
    things: set[int],
    stuff: set[int],
    void_class: int,
    merge: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply stuff merging and the void colour; returns (class, instance) per pixel."""
    classes = classes.astype(np.int64)
    instances = instances.astype(np.int64).copy()
    is_stuff = np.isin(classes, list(stuff))
    known = is_stuff | np.isin(classes, list(things))
    if merge:
        instances[is_stuff] = 0
    classes = np.where(known, classes, void_class)
    instances[~known] = 0
    return classes, instances


def _segments(
    classes: np.ndarray, instances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense segment index per pixel -> (segment class, segment instance, pixel index, area)."""
    class_labels, class_index, _ = dense_labels(classes)
    instance_labels, instance_index, _ = dense_labels(instances)
    codes, segment_index, areas = dense_labels(class_index * len(instance_labels) + instance_index)
    return (
        class_labels[codes // len(instance_labels)],
        instance_labels[codes % len(instance_labels)],
        segment_index,
        areas,
    )


def scene_stats(
    pred_class: np.ndarray,
    pred_instance: np.ndarray,
    gt_class: np.ndarray,
    gt_instance: np.ndarray,
    things: set[int],
    stuff: set[int],
    options: ScenePQOptions = ScenePQOptions(),
) -> tuple[PQStats, set[int], set[int]]:
    """Match flat (N,) prediction and GT (class, instance) arrays once; returns stats and kept classes."""
    if set(things) & set(stuff):
        raise ValueError(f"things and stuff share class ids {sorted(set(things) & set(stuff))}")
    things, stuff = _kept_classes(pred_class, gt_class, set(things), set(stuff), options)
    void_class = 1 + max([0, *things, *stuff])
    if not options.allow_unknown_pred_classes:
        unknown = set(np.unique(pred_class).tolist()) - things - stuff
        if unknown:
            raise ValueError(f"predicted classes {sorted(unknown)} are neither things nor stuff")
    p_cls, p_inst = _colors(
        pred_class, pred_instance, things, stuff, void_class, options.merge_stuff_instances
    )
    g_cls, g_inst = _colors(gt_class, gt_instance, things, stuff, void_class, options.merge_stuff_instances)
    p_seg_class, _, p_index, p_area = _segments(p_cls, p_inst)
    g_seg_class, _, g_index, g_area = _segments(g_cls, g_inst)
    p_void = p_seg_class == void_class  # the void colour is (void_class, 0): the only segment of its class
    g_void = g_seg_class == void_class
    pp, gg, inter = pair_counts(p_index, len(p_area), g_index, len(g_area))

    # |pred segment on GT void| and |predicted void on GT segment|
    pred_on_void = np.zeros(len(p_area), dtype=np.int64)
    np.add.at(pred_on_void, pp[g_void[gg]], inter[g_void[gg]])
    void_on_gt = np.zeros(len(g_area), dtype=np.int64)
    np.add.at(void_on_gt, gg[p_void[pp]], inter[p_void[pp]])

    candidate = ~g_void[gg] & (p_seg_class[pp] == g_seg_class[gg])
    cp, cg, ci = pp[candidate], gg[candidate], inter[candidate]
    union = p_area[cp] - pred_on_void[cp] + g_area[cg] - ci
    if options.iou_removes_pred_void:
        union = union - void_on_gt[cg]
    iou = _ratio(ci, union, options.float32_ratios)
    matched = iou > 0.5
    stats = PQStats()
    stats.add_true_positives(g_seg_class[cg[matched]].tolist(), iou[matched].astype(np.float64).tolist())

    gt_unmatched = np.ones(len(g_area), dtype=bool)
    gt_unmatched[cg[matched]] = False
    gt_unmatched &= ~g_void
    if options.fn_ignores_void_predictions:
        mostly_void = _ratio(void_on_gt, g_area, options.float32_ratios) > 0.5
        gt_unmatched &= ~mostly_void
    stats.add_false_negatives(g_seg_class[gt_unmatched].tolist())

    pred_unmatched = np.ones(len(p_area), dtype=bool)
    pred_unmatched[cp[matched]] = False
    pred_unmatched &= ~p_void
    pred_unmatched &= ~(_ratio(pred_on_void, p_area, options.float32_ratios) > 0.5)
    stats.add_false_positives(p_seg_class[pred_unmatched].tolist())
    return stats, things, stuff


def _flatten_views(scene: SceneInput, options: ScenePQOptions) -> list[tuple[np.ndarray, ...]]:
    """Resized, GT-class-filtered (pred_class, pred_instance, gt_class, gt_instance) per view."""
    views = []
    maps = zip(scene.pred_class, scene.pred_instance, scene.gt_class, scene.gt_instance)
    for index, view_maps in enumerate(maps):
        shapes = {np.asarray(m).shape for m in view_maps}
        if len(shapes) != 1:
            raise ValueError(f"scene {scene.name!r} view {index}: maps of different shapes {sorted(shapes)}")
        arrays = [np.asarray(m) for m in view_maps]
        if options.resize_to is not None:
            arrays = [resize_nearest(a, options.resize_to) for a in arrays]
        arrays = [a.ravel().astype(np.int64) for a in arrays]
        keep = ~np.isin(arrays[2], list(options.drop_gt_classes))
        views.append(tuple(a[keep] for a in arrays))
    return views


def scene_pq_single(
    scene: SceneInput, things: Iterable[int], stuff: Iterable[int], options: ScenePQOptions = ScenePQOptions()
) -> PQResult:
    """PQ of one scene (per-class scores over the kept classes)."""
    things, stuff = set(things), set(stuff) | set(scene.extra_stuff)
    views = _flatten_views(scene, options)
    if not views:
        raise ValueError(f"scene {scene.name!r} has no views")
    groups = [views] if options.concatenate_views else [[view] for view in views]
    results = []
    for group in groups:
        flat = [np.concatenate([view[k] for view in group]) for k in range(4)]
        stats, kept_things, kept_stuff = scene_stats(
            flat[0], flat[1], flat[2], flat[3], things, stuff, options
        )
        results.append(
            average_all_kept(
                stats, kept_things, kept_stuff, only_counted=not options.mean_over_all_kept_classes
            )
        )
    return results[0] if len(results) == 1 else mean_of_results(results)


def _mean_group(groups: list[GroupScore]) -> GroupScore:
    defined = [g for g in groups if g.n > 0]
    if not defined:
        return GroupScore(None, None, None, 0)
    n = len(defined)
    return GroupScore(
        pq=sum(g.pq for g in defined) / n,
        sq=sum(g.sq for g in defined) / n,
        rq=sum(g.rq for g in defined) / n,
        n=n,
    )


def mean_of_results(results: Sequence[PQResult], per_scene: dict[str, PQResult] | None = None) -> PQResult:
    """Mean of several results: each group over the results where it is defined, each class over the
    results that kept it; `per_scene` is stored as given."""
    per_class: dict[int, list[ClassScore]] = {}
    for result in results:
        for category, score in result.per_class.items():
            per_class.setdefault(category, []).append(score)
    return PQResult(
        all=_mean_group([r.all for r in results]),
        things=_mean_group([r.things for r in results]),
        stuff=_mean_group([r.stuff for r in results]),
        per_class={
            category: ClassScore(
                pq=sum(s.pq for s in scores) / len(scores),
                sq=sum(s.sq for s in scores) / len(scores),
                rq=sum(s.rq for s in scores) / len(scores),
            )
            for category, scores in sorted(per_class.items())
        },
        per_scene=per_scene,
    )


def scene_pq(
    scenes: Iterable[SceneInput] | Mapping[str, SceneInput],
    things: Iterable[int],
    stuff: Iterable[int],
    options: ScenePQOptions = ScenePQOptions(),
) -> PQResult:
    """Dataset score: the mean over scenes of each scene's PQ / SQ / RQ (scenes with no kept class skipped)."""
    items = list(scenes.values()) if isinstance(scenes, Mapping) else list(scenes)
    things, stuff = set(things), set(stuff)
    per_scene = {}
    for index, scene in enumerate(items):
        per_scene[scene.name or str(index)] = scene_pq_single(scene, things, stuff, options)
    return mean_of_results(list(per_scene.values()), per_scene)
