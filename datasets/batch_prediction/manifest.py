"""A predicted scene's manifest (OUT/<scene>/manifest.json) and the decision it feeds: skip the scene,
or predict it and why.

The manifest records what the outputs were predicted from (checkpoint content hash, settings, input
digest, and their combined prediction key) and a few facts about the result. Manifests of another schema
version, or unreadable ones, count as missing: the scene is predicted again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from datasets.batch_prediction.output_folder import BatchOutput, check_scene_id
from datasets.batch_prediction.scenes import BatchScene, input_digest
from datasets.batch_prediction.settings import PredictionIdentity
from datasets.preprocess.error_kinds import failure_reason

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SceneManifest:
    """What OUT/<scene>/manifest.json holds."""

    scene_id: str
    source_kind: str
    source: str
    prediction_key: str
    """Hash of checkpoint_hash, settings and input_digest: equal keys, equal outputs."""
    checkpoint: str
    checkpoint_hash: str
    settings: dict[str, Any]
    input_digest: str
    num_views: int
    num_segments: int
    seconds: float
    """Reading the views, predicting and writing the files."""
    device: str
    predicted_at: str
    """UTC, ISO 8601."""
    schema_version: int = MANIFEST_SCHEMA_VERSION

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path


def read_manifest(scene_dir: Path) -> SceneManifest | None:
    """The manifest of a committed scene folder; None when absent, unreadable or of another schema."""
    path = scene_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        if values.get("schema_version") != MANIFEST_SCHEMA_VERSION:
            log.info(
                "%s has schema version %s; predicting the scene again", path, values.get("schema_version")
            )
            return None
        return SceneManifest(**values)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cannot read %s (%s); predicting the scene again", path, exc)
        return None


@dataclass(frozen=True)
class ScenePlan:
    """What a run does with one scene: `run` it (for the reason `why`) or skip it as up to date."""

    scene: BatchScene
    run: bool
    why: str
    prediction_key: str
    input_digest: str


def plan_scenes(
    output: BatchOutput, scenes: list[BatchScene], identity: PredictionIdentity, force: bool = False
) -> list[ScenePlan]:
    """The plan of every scene; `force` predicts up-to-date scenes too. A scene whose id cannot name a
    folder or whose input cannot even be listed is planned to run, so that its task fails with the reason
    and the others go on."""
    plans = []
    for scene in scenes:
        try:
            check_scene_id(scene.scene_id)
        except ValueError as exc:
            plans.append(ScenePlan(scene, True, f"invalid scene id: {exc}", "", ""))
            continue
        try:
            digest = input_digest(scene)
        except (OSError, ValueError, KeyError) as exc:
            plans.append(ScenePlan(scene, True, f"input unreadable: {failure_reason(exc)}", "", ""))
            continue
        plan = plan_scene(output, scene, identity, digest)
        plans.append(
            replace(plan, run=True, why="asked to redo (--force)") if force and not plan.run else plan
        )
    return plans


def plan_scene(
    output: BatchOutput, scene: BatchScene, identity: PredictionIdentity, input_digest: str
) -> ScenePlan:
    """Skip the scene when its manifest has this run's prediction key; else say what differs."""
    key = identity.key(input_digest)
    manifest = read_manifest(output.scene_dir(scene.scene_id))
    if manifest is not None and manifest.prediction_key == key:
        return ScenePlan(scene, False, "up to date", key, input_digest)
    return ScenePlan(
        scene, True, _why_predict(output, scene, manifest, identity, input_digest), key, input_digest
    )


def _why_predict(
    output: BatchOutput,
    scene: BatchScene,
    manifest: SceneManifest | None,
    identity: PredictionIdentity,
    input_digest: str,
) -> str:
    if manifest is None:
        failure = output.read_failure(scene.scene_id)
        if failure is not None:
            return f"last attempt failed: {failure.get('reason', 'unknown reason')}"
        return "not predicted yet"
    changes = []
    if manifest.checkpoint_hash != identity.checkpoint_hash:
        changes.append("checkpoint changed")
    changed_settings = sorted(
        name
        for name in set(manifest.settings) | set(identity.settings)
        if manifest.settings.get(name) != identity.settings.get(name)
    )
    if changed_settings:
        changes.append(f"settings changed: {', '.join(changed_settings)}")
    if manifest.input_digest != input_digest:
        changes.append("input changed")
    return "; ".join(changes) or "manifest key differs"
