"""A post-processing configuration as one string: a post-processor's name, optionally with overrides of its
options, e.g. `standard_v2:mask_threshold=0.0,cls_threshold=0.3`.

One string names the configuration wherever a sweep records it (the MLflow param, the comparison table, the
sweep's key) and is what a user types after `--postprocess`. Values are YAML scalars, as
`--postprocess-option KEY=VALUE` takes them; the canonical form sorts the options and writes JSON scalars.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NAME_SEPARATOR = ":"
OPTION_SEPARATOR = ","


def parse_option_items(items: Iterable[str], source: str) -> dict[str, Any]:
    """`KEY=VALUE` items -> {key: YAML value}; `source` names where they came from in the error."""
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{source} {item!r}: expected KEY=VALUE, e.g. cls_threshold=0.2")
        options[key.strip()] = yaml.safe_load(value)
    return options


@dataclass(frozen=True)
class PostprocessSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()
    """(option, value) pairs sorted by option name."""

    @classmethod
    def parse(cls, text: str) -> PostprocessSpec:
        name, _, rest = text.partition(NAME_SEPARATOR)
        if not name.strip():
            raise ValueError(f"post-processing {text!r}: give a post-processor name, e.g. standard_v2")
        items = [item for item in rest.split(OPTION_SEPARATOR) if item.strip()]
        options = parse_option_items(items, f"post-processing {text!r}:")
        return cls(name.strip(), tuple(sorted(options.items())))

    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)

    def check(self) -> None:
        """Raise ValueError naming the unknown post-processor or option (and the valid ones)."""
        from panst3r_core.postprocess import POSTPROCESSORS

        POSTPROCESSORS.get(self.name).options(self.option_dict())

    def __str__(self) -> str:
        if not self.options:
            return self.name
        written = OPTION_SEPARATOR.join(f"{key}={json.dumps(value)}" for key, value in self.options)
        return f"{self.name}{NAME_SEPARATOR}{written}"


def canonical_spec(text: str) -> str:
    """The checked, canonical form of a post-processing string (sorted options, JSON scalars)."""
    spec = PostprocessSpec.parse(text)
    spec.check()
    return str(spec)
