"""Pairs folders in the NAVER layout: `<pairs>/<scene>/selected_pairs.npz` with `selection` (a `<U` array of
image basenames without extension) and `pairs` ((P, >=2) array whose first two columns index `selection`,
usually followed by an overlap score).

DUSt3R lists scenes with `<pairs>/scene_list.json`, PanSt3R with `os.listdir(<pairs>)` (so it must hold
scene folders only). `list_pair_scenes` accepts both.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

PAIRS_FILE = "selected_pairs.npz"
SCENE_LIST_FILE = "scene_list.json"


def write_selected_pairs(path: str | Path, selection: list[str], pairs: np.ndarray) -> None:
    """Write selected_pairs.npz. selection: basenames without extension; pairs: (P, >=2) float or int."""
    path = Path(path)
    names = np.asarray([str(s) for s in selection])
    if names.size == 0:
        names = np.zeros((0,), dtype="<U1")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] < 2:
        raise ValueError(f"{path}: pairs must have shape (P, >=2), got {pairs.shape}")
    _check_pairs(path, names, pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    # np.savez stamps zip entries with the current time; write the members ourselves with a fixed date so
    # that the same inputs give byte-identical files.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in (("selection", names), ("pairs", pairs)):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def read_selected_pairs(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read selected_pairs.npz -> (selection names, pairs (P, >=2) as stored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "selection" not in data or "pairs" not in data:
                raise ValueError(f"{path}: needs arrays 'selection' and 'pairs', found {sorted(data.files)}")
            selection, pairs = data["selection"], data["pairs"]
    except (OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(
                f"{path}: field 'selection' is an object array; store it as a unicode ('<U') array"
            ) from exc
        raise
    if selection.dtype.kind != "U" or selection.ndim != 1:
        raise ValueError(
            f"{path}: field 'selection' must be a 1-D unicode ('<U') array of names, got {selection.dtype} "
            f"with shape {selection.shape}"
        )
    if pairs.ndim != 2 or (pairs.size and pairs.shape[1] < 2):
        raise ValueError(f"{path}: field 'pairs' must have shape (P, >=2), got {pairs.shape}")
    names = [str(s) for s in selection]
    _check_pairs(path, np.asarray(names), pairs)
    return names, pairs


def _check_pairs(path: Path, names: np.ndarray, pairs: np.ndarray) -> None:
    for name in names:
        if "." in Path(str(name)).name or not str(name):
            raise ValueError(f"{path}: selection entry {name!r} must be an image basename without extension")
    if len(set(names.tolist())) != len(names):
        raise ValueError(f"{path}: field 'selection' holds duplicate names")
    if pairs.size:
        index = pairs[:, :2]
        if not np.all(np.isfinite(index)) or np.any(index != np.round(index)):
            raise ValueError(f"{path}: the first two columns of 'pairs' must be integer indices")
        if index.min() < 0 or index.max() >= len(names):
            raise ValueError(
                f"{path}: 'pairs' indexes images outside the selection of {len(names)} (found "
                f"{int(index.min())}..{int(index.max())})"
            )


def list_pair_scenes(pairs_dir: str | Path) -> list[str]:
    """Scene ids of a pairs folder: from scene_list.json when present, else its sub-directories (sorted)."""
    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise FileNotFoundError(f"pairs folder not found: {pairs_dir}")
    scene_list = pairs_dir / SCENE_LIST_FILE
    if scene_list.is_file():
        try:
            scenes = json.loads(scene_list.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{scene_list}: not valid JSON ({exc})") from exc
        if not isinstance(scenes, list) or not all(isinstance(s, str) for s in scenes):
            raise ValueError(f"{scene_list}: must be a JSON list of scene id strings")
        return list(scenes)
    return sorted(p.name for p in pairs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def scene_pairs_path(pairs_dir: str | Path, scene_id: str) -> Path:
    return Path(pairs_dir) / scene_id / PAIRS_FILE
