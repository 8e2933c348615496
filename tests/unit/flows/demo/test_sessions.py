import socket
import threading

import pytest

from flows.demo.limits import DemoInputError
from flows.demo.sessions import SessionManager
from flows.demo.viewer import SceneViewer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def manager(tmp_path):
    clock = Clock()
    mgr = SessionManager(
        tmp_path / "sessions",
        viewer_factory=lambda: SceneViewer(host="127.0.0.1", port=0),
        max_sessions=2,
        idle_timeout_s=100.0,
        clock=clock,
    )
    mgr.clock = clock
    yield mgr
    mgr.close_all()


def test_two_sessions_get_separate_viewers_scenes_and_folders(
    manager, make_reconstruction, make_png, tmp_path
):
    import numpy as np
    from PIL import Image

    a, b = manager.get("tab-a"), manager.get("tab-b")
    assert manager.get("tab-a") is a and a is not b
    assert a.work_dir != b.work_dir and a.work_dir.is_dir() and b.work_dir.is_dir()
    viewer_a, viewer_b = a.ensure_viewer(), b.ensure_viewer()
    assert viewer_a.port != viewer_b.port

    img_a = [np.asarray(Image.open(make_png(tmp_path / "a.png", seed=1)).convert("RGB"))]
    img_b = [
        np.asarray(Image.open(make_png(tmp_path / f"b{i}.png", seed=9 + i)).convert("RGB")) for i in range(2)
    ]
    viewer_a.set_scene(make_reconstruction(img_a, ["sofa", "bed"]))
    viewer_b.set_scene(make_reconstruction(img_b, ["lamp", "desk"]))
    label_a = viewer_a.server.scene.get_handle_by_name("/labels/segment_1").text
    label_b = viewer_b.server.scene.get_handle_by_name("/labels/segment_1").text
    assert (label_a, label_b) == ("sofa", "lamp")
    assert viewer_a.scene.num_views == 1 and viewer_b.scene.num_views == 2

    run_dir = a.new_run_dir()
    assert run_dir.parent == a.work_dir and a.new_run_dir().name == "run_002"


def test_close_stops_viewer_and_deletes_folder(manager):
    session = manager.get("tab-a")
    port = session.ensure_viewer().port
    assert _listening(port)
    assert manager.close("tab-a") is True
    assert not session.work_dir.exists()
    assert not _listening(port)
    assert "tab-a" not in manager and manager.close("tab-a") is False


def test_capacity_limit_and_idle_sweep(manager):
    manager.get("tab-a")
    manager.clock.now = 50.0
    manager.get("tab-b")
    with pytest.raises(DemoInputError, match=r"server is busy: 2 sessions .*limit 2"):
        manager.get("tab-c")
    manager.clock.now = 120.0  # tab-a idle for 120 s > 100 s, tab-b for 70 s
    manager.get("tab-c")
    assert "tab-a" not in manager and "tab-b" in manager and len(manager) == 2


def test_a_running_session_is_never_swept(manager):
    busy = manager.get("tab-a")
    manager.get("tab-b")
    manager.clock.now = 1000.0
    with busy.lock:
        manager.get("tab-c")
    assert "tab-a" in manager and "tab-b" not in manager


def test_missing_session_id_is_refused(manager):
    with pytest.raises(DemoInputError, match="reload the page"):
        manager.get("")


def test_concurrent_creation_yields_one_session_per_id(manager):
    results = []

    def grab():
        results.append(manager.get("same-tab"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in results}) == 1 and len(manager) == 1


def test_bad_capacity_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_sessions"):
        SessionManager(tmp_path, viewer_factory=lambda: None, max_sessions=0)
