"""Children that end with their parent, even when the parent is SIGKILLed (real processes, real signals)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# A parent that starts `sleep 60` through the guard, prints the child's pid and waits.
PARENT = (
    "import subprocess, time; from flows.parent_death import guarded_command; "
    "child = subprocess.Popen(guarded_command(['sleep', '60'])); print(child.pid, flush=True); time.sleep(60)"
)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_guarded_command_ends_when_its_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while "sleep" not in Path(f"/proc/{child}/cmdline").read_text():  # exec'd in place: same pid
        assert time.monotonic() < deadline
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the guarded child outlived its parent"
        time.sleep(0.05)


def test_a_parent_that_died_before_the_setting_sends_the_signal_at_once():
    # The pid the child was told its parent has is not its parent: that parent is gone.
    code = "import os, time; from flows.parent_death import die_with_parent; die_with_parent(os.getppid() + 10**7); time.sleep(30)"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert result.returncode == -signal.SIGTERM


def test_the_guard_refuses_a_command_line_without_a_parent_pid():
    result = subprocess.run(
        [sys.executable, "-m", "flows.parent_death", "sleep", "1"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "usage" in result.stderr
