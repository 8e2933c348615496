"""Typed configs from plain values: a value of the wrong type is one ValueError naming its key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from panst3r_core.config import from_dict


@dataclass
class Section:
    count: int = 1
    rate: float = 0.5
    limit: int | None = None
    flag: bool = False


@pytest.mark.parametrize(
    "data,message",
    [
        ({"count": "abc"}, "s.count: expected an integer, got 'abc'"),
        ({"count": [1]}, r"s.count: expected an integer, got \[1\]"),
        ({"count": 1.5}, "s.count: expected an integer, got 1.5"),
        ({"count": True}, "s.count: expected an integer, got True"),
        ({"rate": "fast"}, "s.rate: expected a number, got 'fast'"),
        ({"rate": {"a": 1}}, "s.rate: expected a number"),
        ({"limit": "x"}, r"s.limit: expected an integer, got 'x' \(or null\)"),
        ({"flag": "maybe"}, "s.flag: expected true/false"),
    ],
)
def test_wrong_types_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        from_dict(Section, data, where="s")


def test_numbers_and_numeric_strings_are_converted():
    assert from_dict(Section, {"count": "3", "rate": "1e-3", "limit": 2.0}) == Section(3, 1e-3, 2, False)
    assert from_dict(Section, {"limit": None}).limit is None
