import os
import subprocess
import sys

import pytest

from datasets.store.lock import store_lock


def test_a_second_holder_is_refused_with_the_pid(tmp_path):
    with store_lock(tmp_path / "store"):
        with pytest.raises(ValueError, match=f"another preprocess run \\(pid {os.getpid()}\\)"):
            with store_lock(tmp_path / "store"):
                pass
    with store_lock(tmp_path / "store"):  # released on exit
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    # The holder dies without unlocking; the kernel drops its flock.
    code = "import os, sys; from datasets.store.lock import store_lock\nwith store_lock(sys.argv[1]): os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], check=True, timeout=60)
    with store_lock(tmp_path / "store"):
        pass
