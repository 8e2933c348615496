"""Operating-system refusals during preprocess, reproduced for real: an unreadable scene (the process's file
capabilities dropped, so root obeys permission bits too) and a store on a full disk (a small tmpfs).
Each fails its scenes alone with one line naming the file and the fix, is never retried, prints no
traceback, leaves no staging behind, and the run ends with its summary; once fixed, a re-run redoes
exactly those scenes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from _preprocess_support import REPO, cli_env, make_root, preprocess_command

from datasets.store.reader import StoreReader
from datasets.store.schema import StoreLayout
from datasets.store.tables import read_table

pytestmark = pytest.mark.slow

# Root passes every permission check through these two capabilities; without them it is an ordinary owner.
_DROP_FILE_CAPABILITIES = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def _as_unprivileged_reader(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command  # permission bits already apply
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop the file capabilities")
    return [*_DROP_FILE_CAPABILITIES, *command]


def _run(env, command, summary_path, timeout=600):
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert summary_path.is_file(), f"no summary (rc {result.returncode}):\n{output[-4000:]}"
    return result.returncode, output, json.loads(summary_path.read_text())


def _assert_clean_store(store):
    layout = StoreLayout(store)
    assert not layout.staging_dir.exists(), "staging left behind"
    reader = StoreReader(store)
    for scene_id in reader.scene_ids():
        reader.read_frame(scene_id, reader.num_frames(scene_id) - 1)


def test_unreadable_scenes_fail_alone(tmp_path, prefect_server):
    root, pairs = make_root(tmp_path / "data", num_scenes=3, seed=41)
    locked_folder, locked_image, good = sorted(p.name for p in (root / "data").iterdir())
    folder = root / "data" / locked_folder / "dslr"
    image = sorted((root / "data" / locked_image / "dslr" / "resized_images").iterdir())[0]
    folder.chmod(0o000)
    image.chmod(0o000)
    store, summary_path = tmp_path / "store", tmp_path / "summary.json"
    command = preprocess_command(root, pairs, store, "--workers", "1", "--summary-json", str(summary_path))
    env = cli_env(*prefect_server)
    try:
        rc, output, summary = _run(env, _as_unprivileged_reader(command), summary_path)
    finally:
        folder.chmod(0o755)
        image.chmod(0o644)
    assert rc == 1 and "Traceback" not in output, output[-4000:]
    assert summary["done"] == [good]
    assert sorted(summary["failed"]) == [locked_folder, locked_image]
    assert summary["failed"][locked_folder].startswith(f"permission denied on {folder}/")
    assert summary["failed"][locked_image] == (
        f"permission denied on {image}; make the scene's files readable and the store writable by the "
        "user running preprocess"
    )
    failures = {s: json.loads(StoreLayout(store).failure_path(s).read_text()) for s in summary["failed"]}
    assert all(record["attempt"] == 1 for record in failures.values()), "a permission error was retried"
    _assert_clean_store(store)

    rc, _, again = _run(env, command, summary_path)
    assert rc == 0 and again["done"] == [locked_folder, locked_image] and again["skipped"] == [good]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 420 KiB: room for the store's bookkeeping and about one small scene."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=420k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def test_a_full_disk_fails_scenes_without_retries(tmp_path, prefect_server, small_disk):
    root, pairs = make_root(tmp_path / "data", num_scenes=3, seed=42)
    scene_ids = sorted(p.name for p in (root / "data").iterdir())
    store, summary_path = small_disk / "store", tmp_path / "summary.json"
    command = preprocess_command(root, pairs, store, "--workers", "1", "--summary-json", str(summary_path))
    env = cli_env(*prefect_server)
    rc, output, summary = _run(env, command, summary_path)
    assert rc == 1 and summary["failed"], output[-4000:]
    assert "Traceback" not in output and "Retry" not in output, output[-4000:]
    for reason in summary["failed"].values():
        assert reason == (
            f"no space left on device on {store}; free space on that disk (or use another --store) and re-run"
        )
    _assert_clean_store(store)
    committed = StoreReader(store).scene_ids()
    assert committed == sorted(summary["done"])

    # Room again: the next run redoes exactly the scenes the full disk refused.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    rc, output, again = _run(env, command, summary_path)
    assert rc == 0, output[-4000:]
    assert again["skipped"] == committed and again["done"] == sorted(summary["failed"])
    assert list(read_table(store, "scenes")["status"]) == ["done"] * len(scene_ids)
    _assert_clean_store(store)

