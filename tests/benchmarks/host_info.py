"""What the benchmark scripts of this folder share about the host they run on, and how they start processes:
imported by its file's name (a sibling import), so it has a name no test package has."""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from pathlib import Path


def cpu_description() -> str:
    """CPU model and physical cores from /proc/cpuinfo: two lent hosts with 16 CPUs ran the same frames 1.8x
    apart, and workers on two hyperthreads of one core slow each other, so the rows need both."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown model"
    model, cores = "", set()
    for block in text.split("\n\n"):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
        model = model or fields.get("model name", "")
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return f"{model or 'unknown model'}, {len(cores) or '?'} physical cores"


@contextmanager
def environment(values: dict[str, str]):
    """os.environ with `values` set (what a process spawned meanwhile starts with), restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
