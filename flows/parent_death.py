"""Child processes that end with the process that started them, even when that one is SIGKILLed and runs no
more code: Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`), which each child sets on itself.

The training launcher's process tree uses it at every level: the torchrun agent dies with the launcher
(`flows.torchrun_agent`), each worker with its torchrun agent (`flows.torchrun_worker`), and the temporary
Prefect server with the command that started it, through

    python -m flows.parent_death PARENT_PID COMMAND [ARG ...]

which sets the signal and then execs COMMAND (the setting survives exec). The kernel sends the signal when the
thread that forked the child ends, so the launching thread must outlive its children (every launch waits for
its child in the thread that started it). Elsewhere than Linux this is a no-op.

Imports neither prefect, mlflow nor torch: the run-folder launcher and the Prefect helpers both use it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None, sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent ends. `parent_pid`, the pid the parent
    had when it started us, closes the race of a parent that died before this call: then `sig` comes now.
    Returns False where the platform has no parent-death signal."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return True


def guarded_command(command: list[str], parent_pid: int | None = None) -> list[str]:
    """`command` prefixed so that it ends with `parent_pid` (default: this process)."""
    parent = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-m", "flows.parent_death", str(parent), *command]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].isdigit():
        raise SystemExit("usage: python -m flows.parent_death PARENT_PID COMMAND [ARG ...]")
    die_with_parent(int(args[0]))
    os.execvp(args[1], args[1:])


if __name__ == "__main__":
    main()
