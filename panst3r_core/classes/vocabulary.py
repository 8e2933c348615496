"""Built-in class vocabularies (the three sets the official demo offers) and their union.

Each set is a text file next to this module, one class name per line, in a fixed documented order:

- `scannetpp.txt`: the ScanNet++ top-100 semantic benchmark classes, in `top100.txt` order (id = line index).
- `coco.txt`: the 133 COCO-panoptic categories in category-id order: 80 things, then 53 stuff
  (names such as `wall-other-merged`).
- `ade20k.txt`: the ADE20k-150 classes in benchmark index order, spelled as the official demo embeds them
  (e.g. `toilet, can, commode, ...`). The official string `"window "` keeps its trailing space on purpose:
  the model classifies by text embedding of the exact string, and the demo's 3-set union has 316 names
  only because `"window "` and `"window"` are distinct.

Only the line terminator is stripped when reading, so names are exactly the official strings.
The official demo deduplicates the union through a Python `set` (arbitrary order per process); we keep
first-occurrence order so category ids are reproducible.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent

# set name -> text file; aliases map the demo's names onto ours.
CLASS_SET_FILES: dict[str, str] = {
    "scannetpp": "scannetpp.txt",
    "coco": "coco.txt",
    "ade20k": "ade20k.txt",
}
CLASS_SET_ALIASES: dict[str, str] = {"scannet": "scannetpp", "scannet++": "scannetpp", "ade": "ade20k"}

# Number of leading "thing" categories in coco.txt (the remaining 53 are stuff).
COCO_NUM_THINGS = 80
# The ScanNet++ top-100 classes missing from top100_instance.txt: the benchmark's stuff.
SCANNETPP_STUFF = (
    "wall",
    "ceiling",
    "floor",
    "window frame",
    "doorframe",
    "pipe",
    "windowsill",
    "shower wall",
    "kitchen counter",
    "electrical duct",
    "paper",
    "board",
    "cloth",
    "blind rail",
    "air vent",
    "clothes hanger",
)
# Built-in sets whose thing/stuff split is known (ADE20k-150 ships none here).
SETS_WITH_STUFF = ("scannetpp", "coco")


def class_set_names() -> list[str]:
    """Names accepted by `load_class_set` (aliases excluded)."""
    return list(CLASS_SET_FILES)


@cache
def _read_class_file(filename: str) -> tuple[str, ...]:
    text = (_HERE / filename).read_text(encoding="utf-8")
    return tuple(line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r") != "")


def load_class_set(name: str) -> list[str]:
    """The class names of one built-in set, in file order.

    Raises ValueError naming the known sets when `name` is unknown.
    """
    key = CLASS_SET_ALIASES.get(name.lower(), name.lower())
    if key not in CLASS_SET_FILES:
        known = ", ".join(CLASS_SET_FILES)
        raise ValueError(f"unknown class set {name!r}; choose from: {known}")
    return list(_read_class_file(CLASS_SET_FILES[key]))


def union_class_sets(names: list[str] | tuple[str, ...]) -> list[str]:
    """Concatenate the given built-in sets, dropping repeated names and keeping first occurrences."""
    if not names:
        raise ValueError("no class set given; choose one or more of: " + ", ".join(CLASS_SET_FILES))
    return dedup_preserving_order(name for set_name in names for name in load_class_set(set_name))


def dedup_preserving_order(names) -> list[str]:
    """Drop repeated names, keep the first occurrence of each."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def stuff_names(set_name: str) -> frozenset[str]:
    """The stuff classes of a built-in set whose split is known (empty for the others)."""
    key = CLASS_SET_ALIASES.get(set_name.lower(), set_name.lower())
    if key == "coco":
        return frozenset(load_class_set("coco")[COCO_NUM_THINGS:])
    if key == "scannetpp":
        return frozenset(SCANNETPP_STUFF)
    return frozenset()


def thing_flags(names: list[str], class_sets: list[str] | tuple[str, ...] = SETS_WITH_STUFF) -> list[bool]:
    """isthing per name: the first of `class_sets` (in order) that lists the name decides, so a name two
    sets disagree on (`pillow`: a ScanNet++ thing, COCO stuff) follows the set it came from in a union.
    A name no set with a known split lists counts as a thing: one segment per instance, as predicted."""
    deciding = [(set(load_class_set(s)), stuff_names(s)) for s in class_sets if stuff_names(s)]
    flags = []
    for name in names:
        owner = next((stuff for members, stuff in deciding if name in members), frozenset())
        flags.append(name not in owner)
    return flags
