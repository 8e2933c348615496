"""Class vocabularies of stores and the global vocabulary of several stores trained together."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def class_names_from_categories(categories: Sequence[dict], where: str | Path) -> list[str]:
    """Names indexed by local class id. The panoptic ids store `class_id = category id`, so ids must be
    exactly 0..K-1 (every local id needs a name)."""
    if not categories:
        raise ValueError(
            f"store {where} records no class categories (root attrs `categories`); re-run preprocess into it"
        )
    by_id = {int(category["id"]): str(category["name"]) for category in categories}
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(
            f"store {where}: category ids {sorted(by_id)[:10]}... are not 0..{len(by_id) - 1}; the training "
            "data needs one name per local class id"
        )
    return [by_id[index] for index in range(len(by_id))]


def global_vocabulary(class_lists: Iterable[Sequence[str]]) -> list[str]:
    """Union of the class names of every dataset, in order of first appearance (stores in the order given)."""
    vocabulary: list[str] = []
    seen: set[str] = set()
    for names in class_lists:
        for name in names:
            if name not in seen:
                seen.add(name)
                vocabulary.append(name)
    return vocabulary
