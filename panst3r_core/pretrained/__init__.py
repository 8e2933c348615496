"""Models shipped with the package, in our checkpoint format (data only: safetensors + JSON).

`compact_smooth_v2_synthetic`: compact_smooth_v2 trained with the two-stage synthetic recipe on one GPU (README,
"Shipped synthetic model": how it was made, what it scores, and that it knows only synthetic scenes). It is what
`make run` fine-tunes and evaluates; pass its folder as `--weights` or `training.chkpt=`.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent
SYNTHETIC_MODEL = "compact_smooth_v2_synthetic"
DENSE_POSTPROCESS = "standard_v2:mask_threshold=0.0"
"""standard_v2 that labels every pixel of an accepted query's region (no mask threshold), its class threshold
(0.1) kept: chosen for the shipped synthetic model on the 12 scenes of generator seed 7, which no model's
training, held-out set or `make run` (seed 0) uses (class thresholds 0.1-0.5 x overlap 0.3-0.7 x 4 or all
keyframes), and confirmed on the held-out scenes of seeds 1000-4000. Scene PQ (Panoptic Lifting's protocol)
counts predicted void as a stuff class of its own that never matches; labelling every pixel, as the methods
that protocol was made for do, removes that class (README, "Evaluate"). The weights shipped before schedule 5
were scored with class threshold 0.3 (`standard_v2:cls_threshold=0.3,mask_threshold=0.0`), chosen the same
way for them."""


def shipped_names() -> list[str]:
    from panst3r_core.checkpoint.ours import WEIGHTS_FILE  # imports torch: not at the CLI's start-up

    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / WEIGHTS_FILE).is_file())


def shipped_model(name: str = SYNTHETIC_MODEL) -> Path:
    """The folder of a shipped model; FileNotFoundError naming the shipped ones for another name (or for a
    checkout whose weights file did not come along, e.g. a partial copy)."""
    from panst3r_core.checkpoint.ours import CONFIG_FILE, WEIGHTS_FILE

    path = PRETRAINED_DIR / name
    if not (path / WEIGHTS_FILE).is_file() or not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"no shipped model {name!r} in {PRETRAINED_DIR} (shipped: {', '.join(shipped_names()) or 'none'})"
        )
    return path


SHIPPED_PREFIX = "shipped:"
"""`shipped:NAME` in a weights setting (e.g. `training.chkpt`) names a shipped model, so that a preset works
from a checkout and from an installed package alike."""


def resolve_weights(value: str | Path) -> Path:
    """A weights setting -> a path: `shipped:NAME` resolves to the shipped model's folder, anything else is
    taken as a path."""
    text = str(value)
    if text.startswith(SHIPPED_PREFIX):
        return shipped_model(text[len(SHIPPED_PREFIX) :])
    return Path(value)


def existing_weights(value: str | Path, setting: str) -> Path:
    """`resolve_weights`, checked: one error naming the setting (e.g. `training.chkpt`) when the weights are
    not there."""
    try:
        path = resolve_weights(value)
    except (ValueError, FileNotFoundError) as exc:
        raise type(exc)(f"{setting}: {exc}") from None
    if not path.exists():
        raise FileNotFoundError(
            f"{setting}: {path} does not exist; give a checkpoint file or folder, or shipped:NAME"
        )
    return path
