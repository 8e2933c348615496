"""What a file given as a checkpoint is, told from its first bytes before anything unpickles it.

Torch writes checkpoints as zip archives (a pickle, `data.pkl`, plus tensor blobs); very old ones and
plain `pickle.dump` files are a bare pickle stream. Telling these apart first gives each failure its own
message: a README or random bytes are not a file we know, a cut download is a truncated zip, and only a
real pickle can be refused for a global outside the allow-list.
"""

from __future__ import annotations

import json
import pickletools
import struct
import zipfile
from enum import Enum
from pathlib import Path

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive's directory end
_PICKLE_PROTOCOLS = range(2, 6)  # 0x80 <protocol>: every pickle torch has ever written starts so
_SAFETENSORS_MAX_HEADER = 100 << 20
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The number torch.save's pre-zip format pickles first."""


class FileKind(Enum):
    EMPTY = "empty"
    ZIP = "zip"
    PICKLE = "pickle"
    SAFETENSORS = "safetensors"
    UNKNOWN = "unknown"


def sniff(path: Path) -> FileKind:
    """The kind of `path` from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if not head:
        return FileKind.EMPTY
    if head[:4] in _ZIP_MAGICS:
        return FileKind.ZIP
    if len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        return FileKind.PICKLE
    if _is_safetensors(path, head):
        return FileKind.SAFETENSORS
    return FileKind.UNKNOWN


def _is_safetensors(path: Path, head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then that many bytes of JSON."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if length > min(_SAFETENSORS_MAX_HEADER, path.stat().st_size - 8):
        return False
    with open(path, "rb") as handle:
        handle.seek(8)
        try:
            json.loads(handle.read(length))
        except ValueError:
            return False
    return True


def describe_start(path: Path) -> str:
    """The file's first bytes as a reader would recognise them: a line of text, or hex."""
    with open(path, "rb") as handle:
        head = handle.read(48)
    try:
        text = head.decode("utf-8").splitlines()[0].strip()
    except (UnicodeDecodeError, IndexError):
        return f"bytes {head[:16].hex(' ')}"
    return f"text {text!r}"


def zip_problem(path: Path) -> str | None:
    """Why a zip-looking file is not a readable torch archive, or None when it is one."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        return (
            f"it is a damaged or truncated zip archive ({exc}); torch checkpoints are zip archives, so the "
            "download or copy did not finish: fetch or copy it again"
        )
    if not any(name.endswith("data.pkl") for name in names):
        return f"it is a zip archive but not a torch checkpoint (no data.pkl among {len(names)} entries)"
    return None


def is_torch_pickle(path: Path) -> bool:
    """Whether a pickle stream is torch.save's legacy format: its first pickle is torch's magic number."""
    with open(path, "rb") as handle:
        try:
            values = [arg for opcode, arg, _ in pickletools.genops(handle) if opcode.name != "PROTO"]
        except (ValueError, EOFError):
            return False
    return values[:1] == [TORCH_LEGACY_MAGIC]


def pickle_globals(path: Path, limit: int = 5) -> list[str]:
    """`module.name` of the first globals a pickle stream would import, read from its opcodes without
    running any of it (protocol 4+ pushes module and name as strings, possibly through the memo)."""
    found: list[str] = []
    strings: list[str | None] = []  # the values pushed so far, None for anything but a string
    memo: dict[int, str | None] = {}
    with open(path, "rb") as handle:
        try:
            for opcode, arg, _ in pickletools.genops(handle):
                name = opcode.name
                if name == "GLOBAL":  # protocols 0-3: "module name" in one argument
                    found.append(str(arg).replace(" ", ".", 1))
                elif name == "STACK_GLOBAL" and len(strings) >= 2 and None not in strings[-2:]:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = strings[-1] if strings else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    strings.append(memo.get(int(arg)))
                elif name not in ("FRAME", "PROTO"):
                    strings.append(arg if isinstance(arg, str) and "UNICODE" in name else None)
                if len(found) >= limit:
                    break
        except (ValueError, EOFError):
            pass  # a damaged stream: report what was readable
    return found
