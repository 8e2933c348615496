"""Official PanSt3R checkpoints (`{'weights', 'args', ...}`) and MUSt3R backbone checkpoints.

Unpickling goes through torch's weights-only unpickler with exactly one extra allowed class,
`argparse.Namespace`: only tensors/storages, plain containers and OrderedDict are rebuilt; any other global
(e.g. `os.system` in a malicious file) is refused before anything runs. Constructor strings are parsed,
never evaluated. Loading is strict and lists every missing or unexpected key.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from panst3r_core.checkpoint.constructor_strings import (
    decoder_config,
    dino_wrapper_settings,
    encoder_config,
    panoptic_config,
)
from panst3r_core.checkpoint.file_kinds import (
    FileKind,
    describe_start,
    is_torch_pickle,
    pickle_globals,
    sniff,
    zip_problem,
)
from panst3r_core.config import from_dict
from panst3r_core.model.config import DinoConfig, PanSt3RConfig
from panst3r_core.model.panst3r import PanSt3R

log = logging.getLogger(__name__)

DINO_PREFIX = "dino_encoder.dinov2."
# transformers 4 (released checkpoints) -> transformers 5 (our model) DINOv2 attention parameter names.
_T4_TO_T5 = {
    ".attention.attention.query.": ".attention.q_proj.",
    ".attention.attention.key.": ".attention.k_proj.",
    ".attention.attention.value.": ".attention.v_proj.",
    ".attention.output.dense.": ".attention.o_proj.",
}
# Standard DINOv2 sizes: head dimension 64 (not inferable from weight shapes).
_HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1536: 24}


@dataclass
class OfficialCheckpoint:
    """What an official file holds, as plain data."""

    weights: dict[str, torch.Tensor]
    args: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def safe_torch_load(path: str | Path) -> Any:
    """torch.load with the weights-only allow-list (+ argparse.Namespace). ValueError, by kind, for a file
    that is empty, not a format we know, a safetensors file, a damaged zip or pickle, or a refused global."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass the path of a .pth file")
    kind = sniff(path)
    problem = _format_problem(path, kind)
    if problem is not None:
        raise ValueError(f"checkpoint {path}: {problem}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))  # torch names it `GLOBAL module.name`, then prose
        if found is None:
            raise ValueError(f"checkpoint {path}: {_damaged(kind, exc)}") from None
        raise ValueError(
            f"checkpoint {path} was refused: it asks to rebuild {found.group(1)}, which is not allowed (only "
            "tensors, plain containers and argparse.Namespace are). Nothing from the file was executed. Only "
            "load checkpoints from a source you trust, or convert them where that code can safely run."
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged stream fails anywhere in the unpickler (IndexError, ...)
        raise ValueError(f"checkpoint {path}: {_damaged(kind, exc)}") from None


def _damaged(kind: FileKind, exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"its {kind.value} content ends early (truncated); fetch or copy it again"
    # torch wraps the reason between paragraphs of advice about weights_only; keep only the reason.
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith(boilerplate)), type(exc).__name__)
    return f"its {kind.value} content is damaged ({type(exc).__name__}: {reason}); fetch or copy it again"


def _format_problem(path: Path, kind: FileKind) -> str | None:
    """Why `path` cannot be a torch checkpoint, judged before unpickling anything; None if it may be one."""
    if kind is FileKind.EMPTY:
        return "the file is empty (0 bytes); the download or copy did not finish: fetch or copy it again"
    if kind is FileKind.SAFETENSORS:
        return (
            "this is a safetensors weights file; pass the folder that holds it with its config.json "
            "(written by `panst3r convert` or training), or an official .pth file"
        )
    if kind is FileKind.UNKNOWN:
        return (
            f"not a checkpoint format we know: neither a torch checkpoint (a zip archive or a pickle) nor "
            f"safetensors; it starts with {describe_start(path)}. Pass an official PanSt3R .pth file or a "
            "folder written by `panst3r convert` or training (model-final)"
        )
    if kind is FileKind.PICKLE and not is_torch_pickle(path):
        # Never unpickled: torch.save's legacy format starts with its magic number, this does not.
        imports = pickle_globals(path)
        return "it is a plain pickle, not a torch checkpoint (torch.save writes a zip archive)" + (
            f"; nothing was loaded, and it would have rebuilt {', '.join(imports)}" if imports else ""
        )
    return zip_problem(path) if kind is FileKind.ZIP else None


def read_official_checkpoint(path: str | Path) -> OfficialCheckpoint:
    data = safe_torch_load(path)
    if not isinstance(data, dict) or "weights" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"checkpoint {path}: expected a dict with 'weights' and 'args' (official PanSt3R), got {keys}"
        )
    args = data.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    extra = {k: v for k, v in data.items() if k not in ("weights", "args")}
    return OfficialCheckpoint(dict(data["weights"]), args, extra)


def rename_transformers4_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2 parameter names of transformers 4 -> transformers 5 (other keys untouched)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(DINO_PREFIX):
            for old, new in _T4_TO_T5.items():
                key = key.replace(old, new)
        out[key] = value
    return out


def rename_transformers5_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2 parameter names of transformers 5 -> transformers 4 (other keys untouched)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(DINO_PREFIX):
            for old, new in _T4_TO_T5.items():
                key = key.replace(new, old)
        out[key] = value
    return out


def match_dino_key_names(state_dict: dict[str, torch.Tensor], model_keys) -> dict[str, torch.Tensor]:
    """Rename DINOv2 keys to the convention of the installed transformers (which names the model's own keys):
    the same Dinov2Model is `attention.q_proj` in some releases and `attention.attention.query` in others."""
    model_uses_t4 = any(".attention.attention.query." in k for k in model_keys)
    return rename_transformers5_keys(state_dict) if model_uses_t4 else rename_transformers4_keys(state_dict)


def infer_dino_config(
    state_dict: dict[str, torch.Tensor], dino_config_json: str | Path | None = None
) -> DinoConfig:
    """DINOv2 sizes from the weights (width, depth, MLP, patch, position grid); heads from the JSON file when
    given, else the standard head dimension 64 for the standard widths."""
    overrides: dict[str, Any] = {}
    if dino_config_json is not None:
        path = Path(dino_config_json)
        if not path.is_file():
            raise FileNotFoundError(
                f"DINOv2 config {path} does not exist; pass a transformers Dinov2Config JSON"
            )
        raw = json.loads(path.read_text())
        valid = {f for f in DinoConfig.__dataclass_fields__}
        ignored = sorted(
            set(raw)
            - valid
            - {
                "hidden_dropout_prob",
                "attention_probs_dropout_prob",
                "drop_path_rate",
                "initializer_range",
                "model_type",
                "architectures",
                "torch_dtype",
                "transformers_version",
                "out_features",
                "out_indices",
                "stage_names",
                "apply_layernorm",
                "reshape_hidden_states",
                "use_mask_token",
            }
        )
        if ignored:
            log.warning("DINOv2 config %s: ignoring unknown fields %s", path, ", ".join(ignored))
        overrides = {k: v for k, v in raw.items() if k in valid}
    cls_token = state_dict.get(DINO_PREFIX + "embeddings.cls_token")
    if cls_token is None:
        if not overrides:
            raise ValueError(
                "the checkpoint holds no DINOv2 weights (dino_encoder.dinov2.*) and no --dino-config was given; "
                "pass a Dinov2Config JSON and the DINOv2 weights"
            )
        return from_dict(DinoConfig, overrides, where=str(dino_config_json))
    hidden = cls_token.shape[-1]
    layer_ids = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(re.escape(DINO_PREFIX) + r"encoder\.layer\.(\d+)\.", k))
    }
    inferred: dict[str, Any] = {
        "hidden_size": hidden,
        "num_hidden_layers": max(layer_ids) + 1 if layer_ids else 0,
    }
    fc1 = state_dict.get(DINO_PREFIX + "encoder.layer.0.mlp.fc1.weight")
    if fc1 is not None:
        inferred["mlp_ratio"] = fc1.shape[0] // hidden
    else:
        inferred["use_swiglu_ffn"] = True
    proj = state_dict[DINO_PREFIX + "embeddings.patch_embeddings.projection.weight"]
    inferred["patch_size"] = proj.shape[-1]
    positions = state_dict[DINO_PREFIX + "embeddings.position_embeddings"].shape[1] - 1
    side = round(positions**0.5)
    inferred["image_size"] = side * proj.shape[-1]
    if "num_attention_heads" not in overrides:
        if hidden not in _HEADS_BY_WIDTH:
            raise ValueError(
                f"cannot infer the DINOv2 head count for width {hidden}; pass --dino-config with num_attention_heads"
            )
        inferred["num_attention_heads"] = _HEADS_BY_WIDTH[hidden]
    for key, value in inferred.items():
        if key in overrides and overrides[key] != value and key != "num_attention_heads":
            raise ValueError(
                f"DINOv2 config {dino_config_json}: {key}={overrides[key]} contradicts the weights ({value})"
            )
    return from_dict(DinoConfig, {**overrides, **inferred}, where="dino config")


def config_from_official_args(
    args: dict[str, Any], state_dict: dict[str, torch.Tensor], dino_config_json: str | Path | None = None
) -> PanSt3RConfig:
    missing = [
        k
        for k in ("must3r_encoder", "must3r_decoder", "panoptic_decoder")
        if not isinstance(args.get(k), str)
    ]
    if missing:
        raise ValueError(f"checkpoint args lack the constructor strings {', '.join(missing)}")
    dino = infer_dino_config(state_dict, dino_config_json)
    for key, value in dino_wrapper_settings(args.get("dino_encoder") or "DinoV2Encoder()").items():
        setattr(dino, key, value)
    config = PanSt3RConfig(
        encoder=encoder_config(args["must3r_encoder"]),
        decoder=decoder_config(args["must3r_decoder"]),
        dino=dino,
        panoptic=panoptic_config(args["panoptic_decoder"]),
    )
    config.validate()
    return config


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor or raise ValueError listing every missing, unexpected and mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mis_shaped = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mis_shaped:
        lines = [f"{source} does not match the model built from its configuration:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
            if keys:
                lines.append(f"  {len(keys)} {title} key(s):")
                lines.extend(f"    {k}" for k in keys)
        raise ValueError("\n".join(lines))
    module.load_state_dict(state_dict, strict=True)


@dataclass
class LoadedModel:
    model: PanSt3R
    config: PanSt3RConfig
    metadata: dict[str, Any]


def load_official_checkpoint(path: str | Path, dino_config_json: str | Path | None = None) -> LoadedModel:
    """An official PanSt3R .pth -> our model with every weight loaded strictly, in eval mode."""
    ckpt = read_official_checkpoint(path)
    weights = rename_transformers4_keys(ckpt.weights)
    config = config_from_official_args(ckpt.args, weights, dino_config_json)
    model = PanSt3R(config)
    load_state_dict_strict(model, match_dino_key_names(weights, model.state_dict()), f"checkpoint {path}")
    metadata = {
        "postprocess_default": ckpt.args.get("postprocess_default", "standard_v2"),
        "qubo_enabled": bool(ckpt.args.get("qubo_enabled", True)),
        "source": Path(path).name,
        "epoch": ckpt.extra.get("epoch") if isinstance(ckpt.extra.get("epoch"), int) else None,
    }
    return LoadedModel(model.eval(), config, metadata)


def load_must3r_backbone(model: PanSt3R, path: str | Path) -> None:
    """Initialise the MUSt3R encoder/decoder from a MUSt3R checkpoint (`encoder` / `decoder` entries), strictly."""
    data = safe_torch_load(path)
    if not isinstance(data, dict) or "encoder" not in data or "decoder" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"checkpoint {path}: expected a MUSt3R dict with 'encoder' and 'decoder', got {keys}"
        )
    load_state_dict_strict(model.must3r_encoder, dict(data["encoder"]), f"{path} ['encoder']")
    load_state_dict_strict(model.must3r_decoder, dict(data["decoder"]), f"{path} ['decoder']")
