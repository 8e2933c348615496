"""Telling checkpoint files apart from their first bytes, and reading a pickle's globals without running it."""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from panst3r_core.checkpoint.file_kinds import FileKind, is_torch_pickle, pickle_globals, sniff, zip_problem


class _Exploit:
    def __reduce__(self):
        return (os.system, ("true",))


def test_each_kind_is_told_apart(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.pth")
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"w": 1}))
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text").write_text("# a README\n")
    kinds = {path.name: sniff(path) for path in tmp_path.iterdir()}
    assert kinds == {
        "zip.pth": FileKind.ZIP,
        "legacy.pth": FileKind.PICKLE,
        "plain.pkl": FileKind.PICKLE,
        "model.safetensors": FileKind.SAFETENSORS,
        "empty": FileKind.EMPTY,
        "text": FileKind.UNKNOWN,
    }
    assert is_torch_pickle(tmp_path / "legacy.pth") and not is_torch_pickle(tmp_path / "plain.pkl")
    assert zip_problem(tmp_path / "zip.pth") is None


def test_a_truncated_zip_is_named_as_such(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(32, 32)}, path)
    path.write_bytes(path.read_bytes()[:500])
    assert sniff(path) is FileKind.ZIP and "truncated zip archive" in zip_problem(path)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_globals_names_them_exactly_in_every_protocol(tmp_path, protocol):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": _Exploit(), "b": [_Exploit()], "c": {"k": "posix"}}, protocol=protocol))
    found = pickle_globals(path)
    assert found and set(found) == {os.system.__module__ + ".system"}
