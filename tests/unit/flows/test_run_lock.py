"""One launch per run folder: the lock names its holder, is re-entrant in one process and is taken over from a
dead holder (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from flows.run_lock import RunFolderBusyError, check_run_folder_free, hold_run_folder

HOLDER = (
    "import sys, time; from pathlib import Path; from flows.run_lock import hold_run_folder\n"
    "with hold_run_folder(Path(sys.argv[1]), 'launch.lock'):\n"
    "    print('held', flush=True); time.sleep(60)"
)


def _hold_in_another_process(run_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_folder_is_refused_with_the_holders_pid_and_taken_over_once_it_is_killed(tmp_path):
    holder = _hold_in_another_process(tmp_path)
    with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"):
        check_run_folder_free(tmp_path, "launch.lock")
    other_node = tmp_path / "launch-node1.lock"
    with hold_run_folder(tmp_path, other_node.name):  # another node's lock is another file
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # The dead holder's pid is still in the file; the kernel dropped its lock with it.
    assert (tmp_path / "launch.lock").read_text().strip() == str(holder.pid)
    with hold_run_folder(tmp_path, "launch.lock"):
        assert (tmp_path / "launch.lock").read_text().strip() == str(os.getpid())


def test_the_lock_is_re_entrant_in_one_process_and_released_after_the_block(tmp_path):
    with hold_run_folder(tmp_path / "run", "launch.lock") as fd:
        with hold_run_folder(tmp_path / "run", "launch.lock") as again:
            assert again == fd
        check_run_folder_free(tmp_path / "run", "launch.lock")  # this process holds it: not busy for it
    result = subprocess.run(
        [sys.executable, "-c", HOLDER.replace("time.sleep(60)", "pass"), str(tmp_path / "run")]
    )
    assert result.returncode == 0
    check_run_folder_free(tmp_path / "never", "launch.lock")
    assert not (tmp_path / "never").exists()  # a probe creates nothing
