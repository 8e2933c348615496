"""Real files of every bad kind given to `panst3r convert --weights` (the official-checkpoint reader that
`predict`, `evaluate` and the demo share): each gets its own one-line message, and nothing in a
malicious file runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import zipfile

import pytest
import torch
from _preprocess_support import REPO, cli_command


class _Exploit:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _readme(path, marker):
    path.write_bytes((REPO / "README.md").read_bytes())


def _random_bytes(path, marker):
    path.write_bytes(os.urandom(4096))


def _empty(path, marker):
    path.write_bytes(b"")


def _truncated_zip(path, marker):
    torch.save({"weights": {"w": torch.zeros(64, 64)}, "args": {}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zip_of_something_else(path, marker):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "not weights")


def _malicious_torch_file(path, marker):
    torch.save({"weights": {"w": torch.zeros(1)}, "args": _Exploit(marker)}, path)


def _malicious_plain_pickle(path, marker):
    path.write_bytes(pickle.dumps({"weights": _Exploit(marker)}))


KINDS = {
    "readme": (_readme, "not a checkpoint format we know", "text '# PanSt3R pipeline'"),
    "random": (_random_bytes, "not a checkpoint format we know", "it starts with bytes"),
    "empty": (_empty, "the file is empty (0 bytes)", "fetch or copy it again"),
    "truncated_zip": (_truncated_zip, "damaged or truncated zip archive", "fetch or copy it again"),
    "other_zip": (_zip_of_something_else, "a zip archive but not a torch checkpoint", "no data.pkl"),
    "malicious_torch": (_malicious_torch_file, "was refused: it asks to rebuild posix.system, which", "Nothing"),
    "malicious_pickle": (_malicious_plain_pickle, "plain pickle, not a torch checkpoint", "rebuilt posix.system"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_bad_checkpoint_kind_has_its_own_message(kind, tmp_path):
    write, says, also = KINDS[kind]
    marker = tmp_path / "the_file_ran_code"
    weights = tmp_path / "weights.pth"
    write(weights, marker)
    result = subprocess.run(
        cli_command("convert", "--weights", str(weights), "--out", str(tmp_path / "out")),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    error = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert error.startswith(f"error: checkpoint {weights}") and says in error and also in error, error
    assert not marker.exists(), "unpickling ran code from the file"
    assert not (tmp_path / "out").exists()
