"""Errors of the preprocessing that tell the orchestrator whether retrying can help."""

from __future__ import annotations


class BadSceneInput(ValueError):  # noqa: N818 (the name the pipeline contract uses)
    """The scene's files are wrong (missing, malformed, inconsistent): retrying cannot fix it.

    The message names the file, the field and what to change."""


class WorkerSettingError(BadSceneInput):
    """A worker's own setting is wrong (e.g. PANST3R_FRAME_DEVICE): every scene it takes would fail alike, and a
    retry cannot fix it. A BadSceneInput so that the orchestrator treats it the same way: no retries, one
    message per scene; the message names the setting and its allowed values."""


class TransientSceneError(RuntimeError):
    """A failure outside the scene's data (renderer context lost, I/O hiccup): worth a retry."""
