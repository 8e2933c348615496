"""A child process in a session of its own whose output goes straight to a file, followed line by line.

Why a session: the launcher alone decides when its child ends. A terminal's Ctrl-C reaches only the
launcher's own process group (the child does not see it and cannot die half-way on its own), and ending the
session reaches every process of it. Why a file and not a pipe: the child's lines land in the log as they are
written, even when the launcher dies (a pipe's reader would take the unread lines with it).

Imports neither prefect, mlflow nor torch (the run-folder launcher uses it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

POLL_S = 0.1
"""How often the log is read for new lines (the delay of a line to `on_line`)."""


def start_in_session(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, pass_fds: Sequence[int] = ()
) -> tuple[subprocess.Popen, int]:
    """Start `command` in a new session with stdout and stderr appended to `log_path`; returns the process and
    the log's size before it started (where its lines begin)."""
    with open(log_path, "ab") as log_file:
        offset = log_file.tell()
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    return process, offset


def follow_lines(process: subprocess.Popen, log_path: Path, offset: int) -> Iterator[str]:
    """Every line appended to `log_path` after `offset`, as it comes, until `process` has ended and its last
    line is read."""
    pending = b""
    with open(log_path, "rb") as log_file:
        log_file.seek(offset)
        while True:
            ended = process.poll() is not None
            pending += log_file.read()
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
            if ended:
                break
            time.sleep(POLL_S)
    if pending:
        yield pending.decode(errors="replace")


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the process group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def end_session(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the session's processes, SIGKILL to what is left after `grace_s`; a second interrupt
    while waiting skips the grace. A session whose processes all ended is left alone."""
    pgid = process.pid  # the leader of a new session leads its process group
    if not _signal_group(pgid, signal.SIGTERM):
        process.poll()
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:
        _signal_group(pgid, signal.SIGKILL)
        raise
    if _signal_group(pgid, signal.SIGKILL):
        process.wait()


def run_followed(
    process: subprocess.Popen, log_path: Path, offset: int, on_line: Callable[[str], None], grace_s: float
) -> int:
    """Hand every line of `process` to `on_line` until it ends; end its session on any way out (an error of
    `on_line`, an interrupt). Returns the exit code."""
    try:
        for line in follow_lines(process, log_path, offset):
            on_line(line)
        return process.wait()
    finally:
        end_session(process, grace_s)
