"""Whether a committed scene is what preprocess would make now, and if not, why.

A committed scene records what it was made from: its inputs (`source_hash`), settings (`config_hash`)
and preprocessing code (`code_version`). Each comparison below leaves out what the caller does not know
(None), so `panst3r status --root` can compare inputs and code without guessing the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.store.backend import StoreRef, backend_for


@dataclass(frozen=True)
class CurrentVersion:
    """What a scene would be produced with now; a committed scene that differs is `stale`.

    `config_hash` None: settings are not compared, except for the scenes `config_hashes` names.
    `source_hashes` may cover only some scenes (those whose inputs were hashed)."""

    config_hash: str | None
    code_version: str
    source_hashes: dict[str, str] | None = None
    config_hashes: dict[str, str] | None = None

    def stale_reasons(self, scene_id: str, attrs: dict) -> list[str]:
        """What changed since the scene's commit, e.g. `["inputs changed", "preprocessing code changed"]`."""
        reasons = []
        source = (self.source_hashes or {}).get(scene_id)
        if source is not None and source != attrs.get("source_hash"):
            reasons.append("inputs unreadable" if source == UNREADABLE else "inputs changed")
        config_hash = (self.config_hashes or {}).get(scene_id, self.config_hash)
        if config_hash is not None and config_hash != attrs.get("config_hash"):
            reasons.append("settings differ")
        if self.code_version != attrs.get("code_version"):
            reasons.append(f"preprocessing code changed ({attrs.get('code_version')} -> {self.code_version})")
        return reasons

    def is_stale(self, scene_id: str, attrs: dict) -> bool:
        return bool(self.stale_reasons(scene_id, attrs))


UNREADABLE = "unreadable"
"""The source hash given for a scene whose inputs could not be read."""


def committed_by_this_run(store: StoreRef, scene_id: str, current: CurrentVersion, started_at: str) -> bool:
    """True when `scene_id` has a commit made since `started_at` (ISO UTC) that matches `current`: the
    scene is done whatever else went wrong after its commit."""
    backend = backend_for(store)
    backend.refresh()
    try:
        if not backend.has_scene(scene_id):
            return False
        attrs = backend.scene_attrs(scene_id)
    except (OSError, ValueError):
        return False
    return str(attrs.get("committed_at", "")) >= started_at and not current.is_stale(scene_id, attrs)
