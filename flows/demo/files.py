"""`--allow_local_files ROOT`: reading images from the server's disk, confined to one folder.

The official demo lists any server directory a browser names. Here every path a user types is resolved
(symlinks followed, `..` collapsed) and must stay inside ROOT; anything else is refused with a message,
so a browser can neither climb out with `../..` nor through a symlink that points elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from flows.demo.limits import IMAGE_SUFFIXES, DemoInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalListing:
    """Images found for a user path: `images` inside ROOT, `refused` entries that escaped it (names only)."""

    images: list[Path]
    refused: list[str] = field(default_factory=list)


class LocalFileRoot:
    """The one folder of the server whose images browsers may load."""

    def __init__(self, root: str | Path) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"--allow_local_files {root}: no such folder; pass an existing folder whose images "
                "the demo may read"
            )
        self.root = path.resolve(strict=True)

    def _inside(self, path: Path) -> bool:
        return path == self.root or path.is_relative_to(self.root)

    def resolve(self, user_path: str) -> Path:
        """Resolve a path typed in the browser (relative to ROOT, or absolute inside ROOT).

        Raises DemoInputError if it leaves ROOT (by `..`, an absolute path or a symlink) or does not exist.
        """
        text = (user_path or "").strip()
        if "\x00" in text:
            raise DemoInputError("the path contains a NUL character; type a plain folder or file name")
        candidate = Path(text) if Path(text).is_absolute() else self.root / text
        # resolve() follows every symlink on the way, so a link inside ROOT that points outside is caught.
        resolved = candidate.resolve(strict=False)
        if not self._inside(resolved):
            raise DemoInputError(
                f"'{text}' is outside the folder this server shares; only paths inside the allowed folder "
                "(relative to it, without '..' or links leading out) can be loaded"
            )
        if not resolved.exists():
            raise DemoInputError(
                f"'{text}' does not exist inside the shared folder; check the spelling (paths are relative "
                "to the shared folder)"
            )
        return resolved

    def list_images(self, user_path: str) -> LocalListing:
        """The image files of a folder (sorted by name, not recursive), or the single image file named.

        Entries that are symlinks leading out of ROOT are left out and reported in `refused`.
        """
        target = self.resolve(user_path)
        if target.is_file():
            if target.suffix.lower() not in IMAGE_SUFFIXES:
                raise DemoInputError(
                    f"'{user_path}' is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            return LocalListing(images=[target])
        images: list[Path] = []
        refused: list[str] = []
        for entry in sorted(target.iterdir(), key=lambda p: p.name):
            if entry.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            real = entry.resolve(strict=False)
            if not self._inside(real):
                log.warning("refused %s: it links outside the shared folder", entry.name)
                refused.append(entry.name)
                continue
            if real.is_file():
                images.append(real)
        if not images:
            raise DemoInputError(
                f"no images in '{user_path}' inside the shared folder "
                f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return LocalListing(images=images, refused=refused)

    def relative(self, path: Path) -> str:
        """How a path is shown to the user: relative to ROOT, never the server's absolute layout."""
        return str(path.relative_to(self.root)) if path != self.root else "."
