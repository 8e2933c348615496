"""Scene -> split name from a ScanNet++ root's `splits/*.txt` (one scene id per line)."""

from __future__ import annotations

from pathlib import Path

# The semantic benchmark's files name the training/validation scenes; other lists keep their file stem.
_SPLIT_ALIASES = {"nvs_sem_train": "train", "nvs_sem_val": "val"}


def scene_splits(root: str | Path) -> dict[str, str]:
    """`{scene_id: split}`; empty when the root has no `splits/` folder. The semantic train/val lists win
    over other lists that mention the same scene."""
    splits_dir = Path(root) / "splits"
    if not splits_dir.is_dir():
        return {}
    found: dict[str, str] = {}
    files = sorted(splits_dir.glob("*.txt"), key=lambda p: (p.stem in _SPLIT_ALIASES, p.stem))
    for path in files:  # aliased files come last so that they overwrite
        split = _SPLIT_ALIASES.get(path.stem, path.stem)
        for line in path.read_text().splitlines():
            scene_id = line.strip()
            if scene_id:
                found[scene_id] = split
    return found
