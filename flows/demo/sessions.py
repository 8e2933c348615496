"""Per-browser-session state of the demo: its own scene, viewer and temp folder.

Design (the official demo shares one viser scene between all browsers; we do not):

- Identity is gradio's per-session id (`gr.Request.session_hash`): every event of one browser tab carries
  it, and gradio gives each tab a fresh random one.
- Each session owns one `SceneViewer`, i.e. its own viser server on its own port (first free port from
  `--viser_port` on). The iframe of that tab points at that port only. A single viser server with
  per-client scenes cannot work here: the iframe's websocket client has no way of telling viser which
  gradio session it belongs to, so a second tab would be indistinguishable from a second viewer of the
  first. One server per session makes cross-talk impossible by construction.
- Each session writes its downloads into its own temp folder (`tmp_root/session-XXXX/`).
- Sessions are closed (viewer stopped, folder deleted) when gradio reports the tab unloaded, when they sit
  idle longer than `idle_timeout_s` (checked whenever a session is created), and all at shutdown.
  At most `max_sessions` exist at once; one more gets a clear "server busy" message.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from flows.demo.limits import DemoInputError
from panst3r_core.reconstruction import PanopticReconstruction

log = logging.getLogger(__name__)


class Viewer(Protocol):
    """What a session needs of its viewer (SceneViewer implements it)."""

    @property
    def port(self) -> int: ...

    def set_scene(self, scene: PanopticReconstruction) -> None: ...

    def close(self) -> None: ...


@dataclass
class DemoSession:
    """The state of one browser tab. `lock` serialises its runs (a second click waits for the first)."""

    session_id: str
    work_dir: Path
    viewer_factory: Callable[[], Viewer]
    last_used: float
    viewer: Viewer | None = None
    scene: PanopticReconstruction | None = None
    runs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_viewer(self) -> Viewer:
        """The session's viewer, started on first use (a tab that never runs costs no server)."""
        if self.viewer is None:
            self.viewer = self.viewer_factory()
        return self.viewer

    def new_run_dir(self) -> Path:
        """A fresh folder for one run's downloads inside the session folder."""
        self.runs += 1
        path = self.work_dir / f"run_{self.runs:03d}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def close(self) -> None:
        if self.viewer is not None:
            try:
                self.viewer.close()
            except Exception:  # a half-started viewer must not keep the folder alive
                log.exception("closing the viewer of session %s failed", self.session_id)
            self.viewer = None
        self.scene = None
        shutil.rmtree(self.work_dir, ignore_errors=True)


class SessionManager:
    """Thread-safe map from gradio session id to `DemoSession`."""

    def __init__(
        self,
        tmp_root: str | Path | None,
        viewer_factory: Callable[[], Viewer],
        max_sessions: int = 8,
        idle_timeout_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}; pass --max-sessions 1 or more")
        # A dedicated default folder, so that cleaning up never touches anything else in the temp folder.
        root = Path(tmp_root) if tmp_root is not None else Path(tempfile.gettempdir()) / "panst3r_demo"
        root.mkdir(parents=True, exist_ok=True)
        self.tmp_root = root
        self.viewer_factory = viewer_factory
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._sessions: dict[str, DemoSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._sessions

    def get(self, session_id: str) -> DemoSession:
        """The session of `session_id`, created on first use; raises DemoInputError when full."""
        if not session_id:
            raise DemoInputError("this request carries no session id; reload the page")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                self._close_idle_locked()
                if len(self._sessions) >= self.max_sessions:
                    raise DemoInputError(
                        f"the server is busy: {len(self._sessions)} sessions are open (limit "
                        f"{self.max_sessions}); try again when someone closes their tab"
                    )
                work_dir = Path(tempfile.mkdtemp(prefix="session-", dir=self.tmp_root))
                session = DemoSession(session_id, work_dir, self.viewer_factory, self._clock())
                self._sessions[session_id] = session
                log.info("session opened (%d open)", len(self._sessions))
            session.last_used = self._clock()
            return session

    def close(self, session_id: str) -> bool:
        """Close one session; False if it did not exist (already closed or never ran)."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        log.info("session closed (%d open)", len(self))
        return True

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    def _close_idle_locked(self) -> None:
        now = self._clock()
        idle = [
            sid
            for sid, s in self._sessions.items()
            if now - s.last_used > self.idle_timeout_s and not s.lock.locked()
        ]
        for sid in idle:
            self._sessions.pop(sid).close()
            log.info("session closed after %.0f s idle", self.idle_timeout_s)
