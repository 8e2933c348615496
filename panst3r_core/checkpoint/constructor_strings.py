"""Parse the constructor strings stored in official checkpoints, without `eval`, into our config dataclasses.

Grammar (a small subset of Python expressions):
    value  := call | list | tuple | string | number | None | True | False | name
    call   := name '(' [arg (',' arg)*] [','] ')'      arg := IDENT '=' value | value
    name   := IDENT ('.' IDENT)*
Example: `PanopticDecoder(input_mixer=None, upscaler=PixelShuffleUpscaler(2816), label_mode='sigmoid')`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from panst3r_core.model.config import (
    DecoderConfig,
    EncoderConfig,
    InputMixerConfig,
    LoftUpConfig,
    PanopticDecoderConfig,
    PixelShuffleConfig,
)


@dataclass
class Call:
    """A parsed constructor call: class name, positional and keyword arguments."""

    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Name:
    """A bare (possibly dotted) identifier such as `nn.GELU`."""

    dotted: str


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)
      | (?P<punct>[()\[\],=])
    )""",
    re.VERBOSE,
)


class ConstructorStringError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ConstructorStringError(
                    f"cannot parse {text!r} at position {pos}: {text[pos : pos + 20]!r}"
                )
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.index = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ConstructorStringError(f"unexpected end of {self.text!r}")
        self.index += 1
        return token

    def _expect(self, value: str) -> None:
        kind, text, at = self._next()
        if text != value or kind != "punct":
            raise ConstructorStringError(
                f"expected {value!r} at position {at} of {self.text!r}, found {text!r}"
            )

    def _is(self, value: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == "punct" and token[1] == value

    def parse(self) -> Any:
        value = self.value()
        if self._peek() is not None:
            _, text, at = self._peek()
            raise ConstructorStringError(f"unexpected {text!r} at position {at} of {self.text!r}")
        return value

    def _sequence(self, closing: str) -> tuple[list[Any], bool]:
        items, trailing_comma = [], False
        while not self._is(closing):
            items.append(self.value())
            trailing_comma = False
            if self._is(","):
                self._next()
                trailing_comma = True
            elif not self._is(closing):
                _, text, at = self._next()
                raise ConstructorStringError(f"expected ',' or {closing!r} at position {at}, found {text!r}")
        self._next()
        return items, trailing_comma

    def value(self) -> Any:
        kind, text, at = self._next()
        if kind == "number":
            return ast.literal_eval(text.lstrip("+"))
        if kind == "string":
            return ast.literal_eval(text)  # literal_eval only decodes literals; it never runs code
        if kind == "punct":
            if text == "[":
                return self._sequence("]")[0]
            if text == "(":
                items, trailing = self._sequence(")")
                return items[0] if len(items) == 1 and not trailing else tuple(items)
            raise ConstructorStringError(f"unexpected {text!r} at position {at} of {self.text!r}")
        if text in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[text]
        if self._is("("):
            self._next()
            return self._call(text)
        return Name(text)

    def _call(self, name: str) -> Call:
        call = Call(name)
        while not self._is(")"):
            token = self._peek()
            following = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
            if token and token[0] == "name" and following and following[:2] == ("punct", "="):
                self.index += 2
                if token[1] in call.kwargs:
                    raise ConstructorStringError(f"{name}: keyword {token[1]!r} given twice in {self.text!r}")
                call.kwargs[token[1]] = self.value()
            else:
                if call.kwargs:
                    raise ConstructorStringError(
                        f"{name}: positional argument after keyword in {self.text!r}"
                    )
                call.args.append(self.value())
            if self._is(","):
                self._next()
            elif not self._is(")"):
                _, text, at = self._next()
                raise ConstructorStringError(
                    f"expected ',' or ')' at position {at} of {self.text!r}, found {text!r}"
                )
        self._next()
        return call


def parse_constructor_string(text: str) -> Any:
    """Parse one constructor string into a tree of `Call` / lists / tuples / literals / `Name`."""
    if not isinstance(text, str):
        raise ConstructorStringError(f"expected a constructor string, got {type(text).__name__}")
    return _Parser(text).parse()


# ----------------------------------------------------------------------------- mapping onto configs
# Official signatures: (parameter name, our config field or None when it is accepted but has no effect).
_SIGNATURES: dict[str, list[tuple[str, str | None]]] = {
    "Dust3rEncoder": [
        ("img_size", "img_size"),
        ("patch_size", "patch_size"),
        ("embed_dim", "embed_dim"),
        ("depth", "depth"),
        ("num_heads", "num_heads"),
        ("mlp_ratio", "mlp_ratio"),
        ("norm_layer", None),
        ("patch_embed", "patch_embed"),
        ("pos_embed", "pos_embed"),
    ],
    "MUSt3R": [
        ("img_size", "img_size"),
        ("enc_embed_dim", "enc_embed_dim"),
        ("patch_size", "patch_size"),
        ("embed_dim", "embed_dim"),
        ("output_dim", "output_dim"),
        ("depth", "depth"),
        ("num_heads", "num_heads"),
        ("mlp_ratio", "mlp_ratio"),
        ("norm_layer", None),
        ("act_layer", None),
        ("pos_embed", "pos_embed"),
        ("landscape_only", "landscape_only"),
        ("head", "head"),
        ("feedback_type", "feedback_type"),
        ("memory_mode", "memory_mode"),
        ("pointmaps_activation", None),
        ("block_type", None),
    ],
    "DinoV2Encoder": [
        ("dino_model", "model_id"),
        ("output_stride", "output_stride"),
        ("landscape_only", "landscape_only"),
    ],
    "PixelShuffleUpscaler": [
        ("input_dim", "input_dim"),
        ("patch_size", "patch_size"),
        ("hidden_dim_factor", "hidden_dim_factor"),
        ("fp_dim", "fp_dim"),
        ("fp_activation", None),
    ],
    "InputMixer": [
        ("img_size", "img_size"),
        ("patch_size", "patch_size"),
        ("in_dim", "in_dim"),
        ("hidden_dim", "hidden_dim"),
        ("num_heads", "num_heads"),
        ("num_layers", "num_layers"),
        ("ff_dim_mult", "ff_dim_mult"),
    ],
    "LoftUpUpscaler": [
        ("input_dim", "input_dim"),
        ("dim", "dim"),
        ("output_stride", "output_stride"),
        ("patch_size", "patch_size"),
        ("color_feats", "color_feats"),
        ("n_freqs", "n_freqs"),
        ("num_heads", "num_heads"),
        ("num_layers", "num_layers"),
        ("lr_pe_type", "lr_pe_type"),
    ],
    "PanopticDecoder": [
        ("input_mixer", "input_mixer"),
        ("upscaler", "upscaler"),
        ("fpn_dim", "fpn_dim"),
        ("hidden_dim", "hidden_dim"),
        ("mask_dim", "mask_dim"),
        ("ff_dim", "ff_dim"),
        ("num_queries", "num_queries"),
        ("num_heads", "num_heads"),
        ("dec_layers", "dec_layers"),
        ("text_encoder", "text_encoder"),
        ("fixed_vocab", "fixed_vocab"),
        ("label_mode", "label_mode"),
        ("two_stage", "two_stage"),
        ("landscape_only", "landscape_only"),
        ("deep_supervision", "deep_supervision"),
    ],
}
# Arguments that only make sense with their default value (they name code, not sizes).
_ONLY_DEFAULT = {
    "norm_layer": None,
    "act_layer": {"nn.GELU", "torch.nn.GELU"},
    "fp_activation": {"nn.GELU", "torch.nn.GELU"},
    "pointmaps_activation": {"ActivationType.NORM_EXP"},
    "block_type": {"CachedDecoderBlock", "'CachedDecoderBlock'"},
}
_ALIASES = {"CausalMUSt3R": "MUSt3R"}
_TRAINING_ONLY = {"MUSt3R": {"protected_imgs", "mem_dropout", "dropout_mode", "use_mem_mask", "freeze"}}


def bind_arguments(call: Call, where: str) -> dict[str, Any]:
    """Map a call's positional and keyword arguments onto our config field names (unknown -> ValueError)."""
    if not isinstance(call, Call):
        raise ValueError(f"{where}: expected a constructor call, got {call!r}")
    cls = _ALIASES.get(call.name, call.name)
    if cls not in _SIGNATURES:
        raise ValueError(f"{where}: unknown class {call.name!r}; supported: {', '.join(sorted(_SIGNATURES))}")
    signature = _SIGNATURES[cls]
    if len(call.args) > len(signature):
        raise ValueError(
            f"{where}: {call.name} takes at most {len(signature)} positional arguments, got {len(call.args)}"
        )
    given = dict(zip([p for p, _ in signature], call.args))
    for key, value in call.kwargs.items():
        if key in given:
            raise ValueError(f"{where}: {call.name} got argument {key!r} twice")
        given[key] = value
    known = {p: f for p, f in signature}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key in _TRAINING_ONLY.get(cls, set()):
            continue
        if key not in known:
            raise ValueError(
                f"{where}: {call.name} has no argument {key!r}; valid: {', '.join(p for p, _ in signature)}"
            )
        if key in _ONLY_DEFAULT:
            text = value.dotted if isinstance(value, Name) else value
            allowed = _ONLY_DEFAULT[key]
            if not (text is None or (allowed and text in allowed)):
                raise ValueError(f"{where}: {call.name}({key}={text!r}) is not supported (only the default)")
            continue
        out[known[key]] = list(value) if isinstance(value, tuple) else value
    return out


def encoder_config(text: str) -> EncoderConfig:
    return EncoderConfig(**bind_arguments(parse_constructor_string(text), "args.must3r_encoder"))


def decoder_config(text: str) -> DecoderConfig:
    return DecoderConfig(**bind_arguments(parse_constructor_string(text), "args.must3r_decoder"))


def dino_wrapper_settings(text: str) -> dict[str, Any]:
    """`DinoV2Encoder(...)` -> the wrapper fields of DinoConfig (sizes come from the weights or a JSON file)."""
    return bind_arguments(parse_constructor_string(text), "args.dino_encoder")


def panoptic_config(text: str) -> PanopticDecoderConfig:
    where = "args.panoptic_decoder"
    fields = bind_arguments(parse_constructor_string(text), where)
    upscaler = fields.pop("upscaler", None)
    mixer = fields.pop("input_mixer", None)
    if not isinstance(upscaler, Call):
        raise ValueError(f"{where}: an upscaler=PixelShuffleUpscaler(...) or LoftUpUpscaler(...) is required")
    config = PanopticDecoderConfig(pixel_shuffle=None, **fields)
    up_fields = bind_arguments(upscaler, f"{where}.upscaler")
    if upscaler.name == "PixelShuffleUpscaler":
        config.pixel_shuffle = PixelShuffleConfig(**up_fields)
    elif upscaler.name == "LoftUpUpscaler":
        config.loftup = LoftUpConfig(**up_fields)
    else:
        raise ValueError(f"{where}: {upscaler.name} is not an upscaler")
    if mixer is not None:
        if not isinstance(mixer, Call) or mixer.name != "InputMixer":
            raise ValueError(f"{where}: input_mixer must be None or InputMixer(...), got {mixer!r}")
        config.input_mixer = InputMixerConfig(**bind_arguments(mixer, f"{where}.input_mixer"))
    return config
