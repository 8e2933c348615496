"""When training can be skipped: a finished run of the same store content with the same settings.

The run folder's name carries the identity, `<config label>-<key>` with `key` over the stores' content hash
(`datasets.training.store_fingerprint.stores_content_hash`, the one MLflow records as `store.content_hash`),
the resolved training settings, the files of the weights it starts from (`training.chkpt`,
`training.must3r_chkpt`: a replaced shipped model or an overwritten checkpoint under the same name is another
start) and the world size. Equal requests therefore meet in one folder: a finished run there is reused (`flows.run_folder.finished_result`), an unfinished one (killed, or stopped by its time
budget) is resumed from its checkpoint-last, and anything else gets a new folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets.training.store_fingerprint import stores_content_hash
from flows.run_config import MANAGED_KEYS, check_overrides, config_label, existing_stores
from flows.run_folder import checkpoint_digest
from panst3r_core.engine.config_files import config_to_dict
from panst3r_core.pretrained import resolve_weights

STARTING_WEIGHTS_KEYS = ("chkpt", "must3r_chkpt")
"""training.* settings naming the weights a run starts from."""


def _settings(config: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The resolved training settings without the keys the flow sets (run folder, store paths)."""
    resolved = config_to_dict(check_overrides(config, overrides))
    for key in MANAGED_KEYS:
        section, name = key.split(".", 1)
        resolved.get(section, {}).pop(name, None)
    return resolved


def _starting_weights(settings: dict[str, Any]) -> dict[str, str]:
    """Digest of each weights file or folder the settings start from (a missing one is left to the launch)."""
    digests = {}
    for key in STARTING_WEIGHTS_KEYS:
        value = settings.get("training", {}).get(key)
        if value:
            path = resolve_weights(value)
            digests[key] = checkpoint_digest(path) if path.exists() else "missing"
    return digests


def reuse_run_name(
    stores: Sequence[str | Path], config: str, overrides: Sequence[str], nproc_per_node: int
) -> str:
    """`<config label>-<16 hex digits>`, equal exactly when the store content, the settings and the starting
    weights' files are."""
    content = stores_content_hash(existing_stores(stores))
    settings = _settings(config, overrides)
    identity = {
        "stores": content,
        "settings": settings,
        "weights": _starting_weights(settings),
        "nproc_per_node": nproc_per_node,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{config_label(config)}-{key}"
