"""The demo as a person uses it: Debian's chromium (driven by Playwright) against `panst3r demo`.

The server runs as a subprocess with the tiny official-format checkpoint on the CPU. Two browser contexts
(two sessions) upload different synthetic images and class names at the same time; each must get its own
viewer and its own results. Playwright never downloads a browser here: it launches the system chromium.

Set PANST3R_UPDATE_DEMO_SCREENSHOT=1 to also refresh docs/demo.png from the first session's screenshot.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_fixtures import PARITY_MISSING, parity_fixture_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 240
RUN_TIMEOUT_MS = 300_000


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _requirements_missing() -> str | None:
    if _chromium() is None:
        return "Debian chromium not installed (run `make system-deps`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (requirements/demo.txt)"
    if parity_fixture_dir() is None:
        return PARITY_MISSING
    return None


_missing = _requirements_missing()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _write_images(folder: Path, seeds: list[int], size: tuple[int, int]) -> list[Path]:
    """Synthetic views: two flat halves whose colours come from the seed, plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        h, w = size
        image = np.empty((h, w, 3), np.uint8)
        image[:, : w // 2] = rng.integers(0, 128, 3)
        image[:, w // 2 :] = rng.integers(128, 256, 3)
        image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
        path = folder / f"view_{seed}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`panst3r demo` on free ports with the tiny checkpoint; yields its base URL; always stopped."""
    work = tmp_path_factory.mktemp("demo_server")
    port, viser_port = _free_port(), _free_port()
    fixture = parity_fixture_dir()
    shared = work / "shared"
    _write_images(shared / "scene", [31, 32], (96, 128))
    _write_images(work / "private", [33], (96, 128))
    (shared / "scene" / "view_99.png").symlink_to(work / "private" / "view_33.png")
    command = [
        sys.executable,
        "-m",
        "flows.cli.main",
        "demo",
        "--weights",
        str(fixture / "tiny_v1.pth"),
        "--dino-config",
        str(fixture / "tiny_dino_config.json"),
        "--device",
        "cpu",
        "--image_size",
        "224",
        "--text-embeddings",
        "hashed",
        "--server_port",
        str(port),
        "--viser_port",
        str(viser_port),
        "--tmp_dir",
        str(work / "tmp"),
        "--max-images",
        "4",
        "--allow_local_files",
        str(shared),
    ]
    env = {
        **os.environ,
        "PYOPENGL_PLATFORM": "egl",
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the demo server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not start in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(1.0)
        yield {"url": url, "log": log_path, "tmp": work / "tmp", "shared": shared}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # SIGTERM is a clean stop: every session folder (viewer state, downloads) is gone afterwards
    leftovers = sorted(p.name for p in (work / "tmp").glob("session-*"))
    assert leftovers == [], f"session folders left after the server stopped: {leftovers}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: Browser, url: str) -> tuple[object, Page]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#input-images input[type=file]", state="attached", timeout=60_000)
    return context, page


def _status(page: Page) -> str:
    return page.inner_text("#status")


def _wait_status(page: Page, *needles: str, timeout: int = RUN_TIMEOUT_MS) -> str:
    condition = " || ".join(f"t.includes({json.dumps(n)})" for n in needles)
    page.wait_for_function(
        f"(() => {{ const e = document.querySelector('#status'); const t = e ? e.innerText : ''; return {condition}; }})()",
        timeout=timeout,
    )
    return _status(page)


def _prepare_run(page: Page, images: list[Path], classes: str) -> None:
    page.set_input_files("#input-images input[type=file]", [str(p) for p in images])
    status = _wait_status(page, "uploaded", "Error", timeout=60_000)
    assert f"{len(images)} images uploaded" in status, status
    # the keyframe slider follows the upload: min(#images, 50)
    assert page.input_value("#num-keyframes input[type=number]") == str(len(images))
    # only the typed classes: untick ScanNet++ so the vocabulary identifies the session
    page.get_by_label("ScanNet++ (100)").uncheck()
    page.fill("#extra-classes textarea", classes)
    page.get_by_label("Standard (v1)").check()


def _download_zip(page: Page, target: Path) -> Path:
    with page.expect_download(timeout=60_000) as info:
        page.click("#download a[download]")
    info.value.save_as(target)
    return target


def _check_zip(path: Path, num_views: int, vocabulary: set[str]) -> dict:
    """Zip members, PNG ids vs segments.json, GLB loads; returns segments.json."""
    import trimesh

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for required in ("scene.glb", "scene.ply", "segments.json"):
            assert required in names, names
        pngs = sorted(n for n in names if n.startswith("panoptic/") and n.endswith(".png"))
        assert len(pngs) == num_views, pngs
        segments = json.loads(archive.read("segments.json"))
        ids = {s["id"] for s in segments["segments"]}
        classes = {s["class_name"] for s in segments["segments"]}
        assert classes <= vocabulary, (classes, vocabulary)
        for name in pngs:
            rgb = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")).astype(np.int64)
            png_ids = set(np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist()) - {0}
            assert png_ids <= ids, (name, png_ids, ids)
        pixels = sum(
            Image.open(io.BytesIO(archive.read(n))).size[0] * Image.open(io.BytesIO(archive.read(n))).size[1]
            for n in pngs
        )
        assert sum(s["area"] for s in segments["segments"]) <= pixels
        glb = trimesh.load(io.BytesIO(archive.read("scene.glb")), file_type="glb")
        assert isinstance(glb, trimesh.Scene) and len(glb.geometry) > 0
    return segments


def _table_classes(page: Page) -> set[str]:
    cells = page.locator('#segments [role=gridcell][data-col="1"]').all_inner_texts()
    return {c.strip() for c in cells if c.strip()}


def _viewer_port(page: Page) -> int:
    return int(page.get_attribute("#panst3r-viewer", "data-port"))


def test_two_concurrent_sessions_each_see_their_own_scene(demo_server, browser, tmp_path):
    images_a = _write_images(tmp_path / "a", [1, 2], (96, 128))
    images_b = _write_images(tmp_path / "b", [11, 12, 13], (96, 128))
    vocab_a, vocab_b = {"red sofa", "blue lamp"}, {"green plant", "white desk", "black chair"}

    context_a, page_a = _open(browser, demo_server["url"])
    context_b, page_b = _open(browser, demo_server["url"])
    try:
        _prepare_run(page_a, images_a, ", ".join(sorted(vocab_a)))
        _prepare_run(page_b, images_b, ", ".join(sorted(vocab_b)))
        # both press Run before either finishes: the second waits its turn, neither sees the other's scene
        page_a.click("#run")
        page_b.click("#run")
        status_a = _wait_status(page_a, "Done", "Error")
        status_b = _wait_status(page_b, "Done", "Error")
        assert status_a.startswith("Done") and "2 views" in status_a, status_a
        assert status_b.startswith("Done") and "3 views" in status_b, status_b

        # each page embeds its own viewer, on its own port, and the viewer really loads in the iframe
        port_a, port_b = _viewer_port(page_a), _viewer_port(page_b)
        assert port_a != port_b
        for page, port in ((page_a, port_a), (page_b, port_b)):
            assert page.get_attribute("#viser-frame", "src") == f"http://127.0.0.1:{port}/"
            page.frame_locator("#viser-frame").locator("canvas").first.wait_for(timeout=60_000)

        # the segment tables show each session's own vocabulary only
        classes_a, classes_b = _table_classes(page_a), _table_classes(page_b)
        assert classes_a <= vocab_a and classes_b <= vocab_b
        assert classes_a and classes_b

        zip_a = _download_zip(page_a, tmp_path / "a.zip")
        zip_b = _download_zip(page_b, tmp_path / "b.zip")
        segments_a = _check_zip(zip_a, num_views=2, vocabulary=vocab_a)
        segments_b = _check_zip(zip_b, num_views=3, vocabulary=vocab_b)
        assert {s["class_name"] for s in segments_a["segments"]} == classes_a
        assert {s["class_name"] for s in segments_b["segments"]} == classes_b
        assert zip_a.read_bytes() != zip_b.read_bytes()

        # the screenshot of a finished run (the README shows it), without viser's software-WebGL notice
        notices = page_a.frame_locator("#viser-frame").locator(".mantine-Notification-closeButton")
        page_a.wait_for_timeout(2000)
        for _ in range(notices.count()):
            notices.first.click()
        page_a.wait_for_timeout(1000)
        shot = tmp_path / "demo.png"
        page_a.screenshot(path=str(shot), full_page=True)
        assert Image.open(shot).size[0] >= 1000
        if os.environ.get("PANST3R_UPDATE_DEMO_SCREENSHOT") == "1":
            (REPO / "docs").mkdir(exist_ok=True)
            shutil.copy(shot, REPO / "docs" / "demo.png")
    finally:
        context_a.close()
    # closing a tab ends its session: its viewer stops and its folder goes (the other stays)
    deadline = time.monotonic() + 30
    while _listening(port_a) and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        assert not _listening(port_a), "the closed session's viewer is still running"
        assert _listening(port_b)
    finally:
        context_b.close()


def test_broken_image_gives_a_clear_message(demo_server, browser, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing a decoder wants")
    good = _write_images(tmp_path / "ok", [5], (96, 128))
    context, page = _open(browser, demo_server["url"])
    try:
        page.set_input_files("#input-images input[type=file]", [str(good[0]), str(broken)])
        _wait_status(page, "uploaded", "Error", timeout=60_000)
        page.click("#run")
        status = _wait_status(page, "Error", "Done")
        assert "'broken.png'" in status and "re-save it as PNG or JPEG" in status, status
        assert "Traceback" not in page.content()

    finally:
        context.close()


def test_too_many_images_are_refused_on_upload(demo_server, browser, tmp_path):
    too_many = _write_images(tmp_path / "many", [20, 21, 22, 23, 24], (32, 32))
    context, page = _open(browser, demo_server["url"])
    try:
        page.set_input_files("#input-images input[type=file]", [str(p) for p in too_many])
        status = _wait_status(page, "at most", "uploaded", timeout=60_000)
        assert "5 images selected but this server accepts at most 4" in status, status
        page.click("#run")
        page.wait_for_timeout(500)
        status = _wait_status(page, "at most", "Done")
        assert "at most 4" in status, status
    finally:
        context.close()


def test_local_path_tab_stays_inside_its_root(demo_server, browser):
    context, page = _open(browser, demo_server["url"])
    try:
        page.get_by_role("tab", name="Local path").click()
        page.fill("#local-path textarea", "../private")
        page.click("#local-load")
        status = _wait_status(page, "Error", "found", timeout=60_000)
        assert "outside the folder this server shares" in status, status
        page.fill("#local-path textarea", "scene")
        page.click("#local-load")
        status = _wait_status(page, "found", timeout=60_000)
        # the symlink to a file outside the root is left out and named
        assert "2 images found" in status and "view_99.png" in status, status
        assert page.input_value("#num-keyframes input[type=number]") == "2"
    finally:
        context.close()
