"""The vectorised implementations against direct, one-pair-at-a-time statements of the same rules,
on seeded random cases (crowd, void, unknown classes, repeated ids across views)."""

import numpy as np
import pytest

from panst3r_core.metrics.coco_pq import PanopticImage, Segment, coco_pq
from panst3r_core.metrics.pq_stats import ClassStats
from panst3r_core.metrics.scene_pq import SceneInput, ScenePQOptions, scene_pq_single

CATEGORIES = {1: True, 2: True, 3: False, 4: False}


def literal_coco(pairs, categories):
    stats = {c: ClassStats() for c in categories}
    for gt, pred in pairs:
        gt_segments = {s.id: s for s in gt.segments}
        pred_segments = {s.id: s for s in pred.segments}
        pred_area = {s.id: int((pred.ids == s.id).sum()) for s in pred.segments}
        overlap = {}
        for g, p in zip(gt.ids.ravel().tolist(), pred.ids.ravel().tolist()):
            overlap[(g, p)] = overlap.get((g, p), 0) + 1
        gt_hit, pred_hit = set(), set()
        for (g, p), inter in overlap.items():
            if g not in gt_segments or p not in pred_segments or gt_segments[g].iscrowd:
                continue
            if gt_segments[g].category_id != pred_segments[p].category_id:
                continue
            iou = inter / (pred_area[p] + gt_segments[g].area - inter - overlap.get((0, p), 0))
            if iou > 0.5:
                stats[gt_segments[g].category_id].tp += 1
                stats[gt_segments[g].category_id].iou += iou
                gt_hit.add(g)
                pred_hit.add(p)
        crowd = {}
        for g, s in gt_segments.items():
            if g in gt_hit:
                continue
            if s.iscrowd:
                crowd[s.category_id] = g
            else:
                stats[s.category_id].fn += 1
        for p, s in pred_segments.items():
            if p in pred_hit:
                continue
            ignored = overlap.get((0, p), 0) + overlap.get((crowd.get(s.category_id, -1), p), 0)
            if ignored / pred_area[p] <= 0.5:
                stats[s.category_id].fp += 1
    scores = [stats[c].score().pq for c in categories if stats[c].counted]
    return sum(scores) / len(scores) if scores else None


def random_pair(rng, size=60):
    gt_ids = rng.integers(0, 6, size=(1, size)).repeat(2, axis=1)
    pred_ids = np.where(
        rng.random((1, 2 * size)) < 0.2, rng.integers(0, 8, (1, 2 * size)), gt_ids + 10 * (gt_ids > 0)
    )
    gt_segments = [
        Segment(int(i), int(rng.integers(1, 5)), bool(rng.random() < 0.2), int((gt_ids == i).sum()))
        for i in np.unique(gt_ids)
        if i != 0
    ]
    pred_segments = [Segment(int(i), int(rng.integers(1, 5))) for i in np.unique(pred_ids) if i != 0]
    # half the predictions copy the GT category so that matches happen
    by_gt = {s.id + 10: s.category_id for s in gt_segments}
    pred_segments = [Segment(s.id, by_gt.get(s.id, s.category_id)) for s in pred_segments]
    return PanopticImage(gt_ids, gt_segments), PanopticImage(pred_ids, pred_segments)


@pytest.mark.parametrize("seed", range(20))
def test_coco_mode_equals_the_literal_rules(seed):
    rng = np.random.default_rng(seed)
    pairs = [random_pair(rng) for _ in range(3)]
    expected = literal_coco(pairs, CATEGORIES)
    got = coco_pq(pairs, CATEGORIES).all.pq
    assert (got is None and expected is None) or got == pytest.approx(expected, abs=1e-12)


def literal_scene(pred, gt, things, stuff, robust):
    """One matching over flat (N, 2) (class, instance) arrays with the Panoptic Lifting rules."""
    present = set(pred[:, 0].tolist()) | set(gt[:, 0].tolist())
    removed = (things | stuff) - present
    for side in (pred, gt):
        classes, counts = np.unique(side[:, 0], return_counts=True)
        removed |= {
            int(c)
            for c, n in zip(classes, counts)
            if np.float32(n) / np.float32(len(side)) < np.float32(robust)
        }
    things, stuff = things - removed, stuff - removed
    void = (1 + max([0, *things, *stuff]), 0)

    def colour(c, i):
        if c in stuff:
            return (c, 0)
        return (c, i) if c in things else void

    pc = [colour(c, i) for c, i in pred.tolist()]
    gc = [colour(c, i) for c, i in gt.tolist()]
    area_p, area_g, inter = {}, {}, {}
    for p, g in zip(pc, gc):
        area_p[p] = area_p.get(p, 0) + 1
        area_g[g] = area_g.get(g, 0) + 1
        inter[(p, g)] = inter.get((p, g), 0) + 1
    stats = {c: ClassStats() for c in things | stuff}
    hit_p, hit_g = set(), set()
    for (p, g), n in inter.items():
        if g == void or p[0] != g[0]:
            continue
        union = area_p[p] - inter.get((p, void), 0) + area_g[g] - inter.get((void, g), 0) - n
        iou = float(np.float32(n) / np.float32(union))
        if iou > 0.5:
            stats[p[0]].tp += 1
            stats[p[0]].iou += iou
            hit_p.add(p)
            hit_g.add(g)
    for g in area_g:
        if g != void and g not in hit_g and inter.get((void, g), 0) / area_g[g] <= 0.5:
            stats[g[0]].fn += 1
    for p in area_p:
        if p != void and p not in hit_p and inter.get((p, void), 0) / area_p[p] <= 0.5:
            stats[p[0]].fp += 1
    scores = [stats[c].score().pq for c in things | stuff]
    return sum(scores) / len(scores) if scores else None


@pytest.mark.parametrize("seed", range(20))
def test_scene_mode_equals_the_literal_rules(seed):
    rng = np.random.default_rng(100 + seed)
    things, stuff = {1, 2}, {0, 3, 4}
    views = 3
    gt_class = [rng.integers(0, 6, size=(4, 50)) for _ in range(views)]  # 5 is unknown
    gt_instance = [rng.integers(0, 3, size=(4, 50)) for _ in range(views)]
    pred_class = [np.where(rng.random((4, 50)) < 0.7, g, rng.integers(0, 7, (4, 50))) for g in gt_class]
    pred_instance = [np.where(rng.random((4, 50)) < 0.8, i, rng.integers(0, 3, (4, 50))) for i in gt_instance]
    scene = SceneInput(gt_class, gt_instance, pred_class, pred_instance)
    options = ScenePQOptions(resize_to=None, robust_threshold=0.02 if seed % 2 else 0.005)
    got = scene_pq_single(scene, things, stuff, options).all.pq
    keep = [g.ravel() != 0 for g in gt_class]
    pred = np.stack(
        [np.concatenate([p.ravel()[k] for p, k in zip(m, keep)]) for m in (pred_class, pred_instance)], 1
    )
    gt = np.stack(
        [np.concatenate([g.ravel()[k] for g, k in zip(m, keep)]) for m in (gt_class, gt_instance)], 1
    )
    expected = literal_scene(pred, gt, set(things), set(stuff), options.robust_threshold)
    assert (got is None and expected is None) or got == pytest.approx(expected, abs=1e-12)
