"""Errors of the preprocessing that tell the orchestrator whether retrying can help."""

from __future__ import annotations


class BadSceneInput(ValueError):  # noqa: N818 (the name the pipeline contract uses)
    """The scene's files are wrong (missing, malformed, inconsistent): retrying cannot fix it.

    The message names the file, the field and what to change."""


class TransientSceneError(RuntimeError):
    """A failure outside the scene's data (renderer context lost, I/O hiccup): worth a retry."""
