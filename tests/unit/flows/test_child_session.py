"""A child in its own session writing to a file: its lines are followed as they come, and ending the session
ends every process of it, with SIGKILL for those that ignore SIGTERM (real processes)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from flows.child_session import end_session, follow_lines, start_in_session


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_lines_are_followed_from_where_the_child_started_including_an_unterminated_last_one(tmp_path):
    log = tmp_path / "out.log"
    log.write_text("an earlier launch\n")
    script = "import sys, time; print('one', flush=True); time.sleep(0.3); sys.stdout.write('two\\nthree'); sys.stderr.write('')"  # fmt: skip
    process, offset = start_in_session([sys.executable, "-c", script], os.environ, log)
    assert list(follow_lines(process, log, offset)) == ["one", "two", "three"]
    assert process.returncode == 0 and log.read_text() == "an earlier launch\none\ntwo\nthree"
    assert os.getsid(0) != process.pid  # the child led a session of its own, not ours


def test_ending_the_session_reaches_a_grandchild_and_kills_what_ignores_sigterm(tmp_path):
    log = tmp_path / "out.log"
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    script = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"p = subprocess.Popen([sys.executable, '-c', {ignore!r}]); print(p.pid, flush=True); time.sleep(60)"
    )
    process, offset = start_in_session([sys.executable, "-c", script], os.environ, log)
    deadline = time.monotonic() + 30
    while not log.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(log.read_text())
    started = time.monotonic()
    end_session(process, grace_s=1.0)
    assert process.returncode is not None and time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived the session"
        time.sleep(0.05)
