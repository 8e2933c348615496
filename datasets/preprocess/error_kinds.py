"""Which per-scene failures a retry can fix, and the one line a failed scene gets in the tables.

Permanent, never retried: the scene's own files are bad (ValueError, BadSceneInput among them,
FileNotFoundError, KeyError), or the operating system refuses for a reason that stays until someone acts
(no space left, permission denied, read-only file system). Anything else (a lost renderer context, a
killed worker) may pass, so it is retried.
"""

from __future__ import annotations

import errno

BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, KeyError)
"""Errors the scene's own files cause (BadSceneInput is a ValueError): retrying cannot help."""

# errno -> (what happened, what to do); each stays until someone acts, so retrying only repeats it.
LASTING_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", "free space on that disk (or use another --store) and re-run"),
    errno.EDQUOT: ("disk quota exceeded", "free space within the quota (or use another --store) and re-run"),
    errno.EFBIG: ("file too large for the file system", "put the store on another file system and re-run"),
    errno.EACCES: (
        "permission denied",
        "make the scene's files readable and the store writable by the user running preprocess",
    ),
    errno.EPERM: (
        "operation not permitted",
        "make the scene's files readable and the store writable by the user running preprocess",
    ),
    errno.EROFS: ("read-only file system", "put the store on a writable file system and re-run"),
}
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Lasting errors only writing causes."""


def lasting_os_error(exc: BaseException) -> OSError | None:
    """The OSError with a lasting errno in `exc` or its causes (libraries wrap them), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in LASTING_OS_ERRORS:
            return current
        current = current.__cause__ or current.__context__
    return None


def is_bad_input(exc: BaseException) -> bool:
    return isinstance(exc, BAD_INPUT_ERRORS)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying the scene would fail the same way."""
    return is_bad_input(exc) or lasting_os_error(exc) is not None


def failure_reason(exc: BaseException) -> str:
    """One line for the failed row: the message itself for bad input, what happened to which file and
    what to do for a lasting OS error, the type and first line otherwise."""
    os_error = lasting_os_error(exc)
    if os_error is not None and not isinstance(exc, ValueError):
        what, fix = LASTING_OS_ERRORS[os_error.errno]
        where = f" on {os_error.filename}" if os_error.filename else ""
        return f"{what}{where}; {fix}"
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    first = text.splitlines()[0] if text else ""
    if is_bad_input(exc) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
