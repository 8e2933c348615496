import pytest

from panst3r_core.classes import (
    COCO_NUM_THINGS,
    SCANNETPP_STUFF,
    class_set_names,
    dedup_preserving_order,
    load_class_set,
    thing_flags,
    union_class_sets,
)


def test_scannetpp_is_top100_in_benchmark_order():
    names = load_class_set("scannetpp")
    assert len(names) == 100 == len(set(names))
    assert names[:6] == ["wall", "ceiling", "floor", "table", "door", "ceiling lamp"]
    assert names[16] == "window frame"
    assert names[99] == "marker"


def test_coco_has_80_things_then_53_stuff():
    names = load_class_set("coco")
    assert len(names) == 133 == len(set(names))
    assert COCO_NUM_THINGS == 80
    assert names[0] == "person" and names[79] == "toothbrush"
    assert names[80] == "banner" and names[-1] == "rug-merged"
    assert "wall-other-merged" in names[80:]


def test_ade20k_keeps_official_spellings():
    names = load_class_set("ade20k")
    assert len(names) == 150 == len(set(names))
    assert names[:3] == ["wall", "building", "sky"]
    assert "toilet, can, commode, crapper, pot, potty, stool, throne" in names
    # the demo's string has a trailing space; it is a distinct vocabulary entry
    assert "window " in names and "window" not in names


def test_union_of_all_three_matches_official_count_and_keeps_first_occurrence():
    union = union_class_sets(["scannetpp", "coco", "ade20k"])
    assert len(union) == 316 == len(set(union))
    assert union[:100] == load_class_set("scannetpp")
    # 'backpack' is in scannetpp and coco: kept once, at its scannetpp position
    assert union.index("backpack") == load_class_set("scannetpp").index("backpack")
    assert union_class_sets(["coco", "coco"]) == load_class_set("coco")


def test_aliases_and_unknown_name():
    assert load_class_set("scannet") == load_class_set("scannetpp")
    assert load_class_set("ADE20K") == load_class_set("ade20k")
    with pytest.raises(ValueError, match="scannetpp, coco, ade20k"):
        load_class_set("pascal")
    with pytest.raises(ValueError, match="no class set"):
        union_class_sets([])
    assert class_set_names() == ["scannetpp", "coco", "ade20k"]


def test_dedup_preserving_order():
    assert dedup_preserving_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_scannetpp_stuff_are_the_16_top100_names_outside_the_instance_list():
    names = load_class_set("scannetpp")
    stuff_at = [names.index(name) for name in SCANNETPP_STUFF]
    assert stuff_at == [0, 1, 2, 16, 19, 20, 24, 26, 33, 36, 48, 53, 63, 64, 73, 74]


def test_thing_flags_follow_the_set_a_name_came_from():
    assert thing_flags(["wall", "chair", "person", "sky-other-merged", "a name of my own"]) == [
        False,
        True,
        True,
        False,
        True,
    ]
    # `pillow` is a ScanNet++ thing and a COCO stuff class: the first set of the union decides.
    assert thing_flags(["pillow"], ["scannetpp", "coco"]) == [True]
    assert thing_flags(["pillow"], ["coco", "scannetpp"]) == [False]
    # ADE20k ships no thing/stuff split here: its names count as things unless another set knows them.
    assert thing_flags(["wall", "sky"], ["ade20k"]) == [True, True]
