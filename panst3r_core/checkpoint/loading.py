"""One entry point for every supported checkpoint: our directory format or an official .pth file."""

from __future__ import annotations

from pathlib import Path

from panst3r_core.checkpoint.official import LoadedModel, load_official_checkpoint
from panst3r_core.checkpoint.ours import CONFIG_FILE, load_checkpoint


def load_any_checkpoint(path: str | Path, dino_config_json: str | Path | None = None) -> LoadedModel:
    """A directory with config.json + model.safetensors, or an official `.pth` file."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is a directory without {CONFIG_FILE}; pass a converted checkpoint"
            )
        return load_checkpoint(path)
    return load_official_checkpoint(path, dino_config_json)
