"""The gradio Blocks UI of the demo ("PanSt3R Demo") and the server lifetime around it.

Layout (official demo, spec section 9, plus downloads and a segment table): inputs on the left (Upload
tab, optional "Local path" tab, "Number of keyframes", "Class set", free-text classes, "Panoptic
postprocessing", Run, status), the session's own viser viewer in an iframe on the right, then the
segments and the results zip.

Every handler resolves the browser session through `gr.Request.session_hash`, so state (the viewer, the
reconstruction, the downloads) belongs to one tab only; see `flows.demo.sessions` for the design.
"""

from __future__ import annotations

import html
import logging
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from flows.demo.config import DemoConfig
from flows.demo.downloads import write_results_zip
from flows.demo.files import LocalFileRoot
from flows.demo.limits import IMAGE_SUFFIXES, DemoInputError, check_upload, display_name, load_images
from flows.demo.model import (
    CLASS_SET_CHOICES,
    DEFAULT_CLASS_SETS,
    POSTPROCESS_CHOICES,
    DemoModel,
    class_vocabulary,
    default_keyframes,
    postprocess_name,
)
from flows.demo.sessions import DemoSession, SessionManager
from flows.demo.viewer import SceneViewer
from panst3r_core.reconstruction import PanopticReconstruction

log = logging.getLogger(__name__)

VIEWER_HEIGHT_PX = 600
SEGMENT_HEADERS = ["id", "class", "score", "pixels"]


def segment_rows(recon: PanopticReconstruction) -> list[list[Any]]:
    """Rows (id, class, score, pixels over all views) of the segment table, largest segments first."""
    rows = [[s.id, s.class_name, round(float(s.score), 3), int(s.area)] for s in recon.segments]
    return sorted(rows, key=lambda row: (-row[3], row[0]))


def browser_host(request: gr.Request | None, fallback: str) -> str:
    """The host name the browser used for this page (so the viewer iframe works behind any name/IP)."""
    host = ""
    headers = getattr(request, "headers", None) if request is not None else None
    if headers is not None:
        host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0]
    host = host.strip()
    if host.startswith("["):  # [ipv6]:port
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if not host or host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1" if fallback in ("0.0.0.0", "", "::") else fallback
    return host


def viewer_iframe(host: str, port: int, run: int) -> str:
    """The session's viewer embedded 600 px high (resizable), with a link to open it full screen."""
    url = f"http://{host}:{port}/"
    src = html.escape(url, quote=True)
    return (
        f'<div id="panst3r-viewer" data-run="{run}" data-port="{port}">'
        f'<iframe id="viser-frame" src="{src}" title="3-D viewer" '
        f'style="width:100%;height:{VIEWER_HEIGHT_PX}px;resize:vertical;overflow:auto;border:0"></iframe>'
        f'<a href="{src}" target="_blank" rel="noopener">Full screen</a></div>'
    )


VIEWER_PLACEHOLDER = (
    '<div id="panst3r-viewer" data-run="0" style="height:120px;display:flex;align-items:center;'
    'justify-content:center;border:1px dashed #999">The 3-D view appears here after Run.</div>'
)


class DemoApp:
    """Holds what the handlers share: the model, the sessions, the config."""

    def __init__(self, config: DemoConfig, model: DemoModel, sessions: SessionManager | None = None) -> None:
        self.config = config
        self.model = model
        self.local_root = LocalFileRoot(config.allow_local_files) if config.allow_local_files else None
        viewer_host = "127.0.0.1" if config.server_name in ("0.0.0.0", "::") else config.server_name
        self.sessions = sessions or SessionManager(
            config.tmp_dir,
            viewer_factory=lambda: SceneViewer(
                host=config.server_name, port=config.viser_port, camera_animation=config.camera_animation
            ),
            max_sessions=config.max_sessions,
            idle_timeout_s=config.session_idle_s,
        )
        self._viewer_fallback_host = config.viewer_host or viewer_host

    # -- handlers (each returns plain values; errors a user causes become a status line)

    def on_upload(self, files: list[str] | None) -> tuple[Any, list[str], str]:
        """New upload: remember the files, set the keyframe slider to min(#images, 50)."""
        paths = [str(f) for f in (files or [])]
        return self._select(paths, source="uploaded")

    def on_local_load(self, user_path: str) -> tuple[Any, list[str], str]:
        """'Local path' tab: list the images of a folder inside the shared root."""
        if self.local_root is None:
            return gr.update(), [], "**Error:** local files are not enabled on this server"
        try:
            listing = self.local_root.list_images(user_path)
        except DemoInputError as exc:
            return gr.update(), [], f"**Error:** {exc}"
        slider, selected, status = self._select([str(p) for p in listing.images], source="found")
        if listing.refused:
            status += f" (left out, they link outside the shared folder: {', '.join(listing.refused)})"
        return slider, selected, status

    def _select(self, paths: list[str], source: str) -> tuple[Any, list[str], str]:
        n = len(paths)
        if n == 0:
            return gr.update(minimum=1, maximum=2, value=1), [], ""
        try:
            check_upload(paths, self.config.limits)
            status = f"{n} image{'s' if n != 1 else ''} {source}; press Run"
        except DemoInputError as exc:
            status = f"**Error:** {exc}"
        # gradio needs maximum > minimum; one image with "2 keyframes" is clamped to 1 at run time.
        slider = gr.update(minimum=1, maximum=max(n, 2), value=default_keyframes(n), step=1)
        return slider, paths, status

    def on_run(
        self,
        selected: list[str] | None,
        num_keyframes: float,
        use_retrieval: bool,
        class_sets: list[str] | None,
        extra_classes: str | None,
        postprocess: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, Any, Any, Any]:
        """Run the model on the session's selected images and show the result in its own viewer."""
        try:
            session = self.sessions.get(request.session_hash or "")
            with session.lock:
                return self._run_in_session(
                    session,
                    selected,
                    int(num_keyframes),
                    "retrieval" if use_retrieval else "linspace",
                    class_sets,
                    extra_classes,
                    postprocess,
                    request,
                    progress,
                )
        except DemoInputError as exc:
            return f"**Error:** {exc}", gr.update(), gr.update(), gr.update()
        except Exception as exc:  # never a stack trace in the browser; the log keeps it
            log.exception("run failed")
            return (
                f"**Error:** the run failed ({type(exc).__name__}: {exc})",
                gr.update(),
                gr.update(),
                gr.update(),
            )

    def _run_in_session(
        self,
        session: DemoSession,
        selected: list[str] | None,
        num_keyframes: int,
        keyframe_mode: str,
        class_sets: list[str] | None,
        extra_classes: str | None,
        postprocess: str,
        request: gr.Request,
        progress: Any,
    ) -> tuple[str, Any, Any, Any]:
        start = time.perf_counter()
        progress(0.0, desc="reading images")
        images = load_images(selected, self.config.limits)
        names = class_vocabulary(class_sets, extra_classes)
        pp_name = postprocess_name(postprocess)
        view_names = [Path(display_name(Path(p))).stem for p in selected or []]
        recon = self.model.run(
            images,
            view_names,
            names,
            min(max(1, num_keyframes), len(images)),
            pp_name,
            lambda frac, desc: progress(frac, desc=desc),
            keyframe_mode=keyframe_mode,
        )
        progress(0.92, desc="writing downloads")
        run_dir = session.new_run_dir()
        zip_path, _ = write_results_zip(recon, run_dir)
        progress(0.97, desc="updating the 3-D viewer")
        viewer = session.ensure_viewer()
        viewer.set_scene(recon)
        session.scene = recon
        host = browser_host(request, self._viewer_fallback_host)
        seconds = time.perf_counter() - start
        status = (
            f"Done in {seconds:.1f} s: {_count(recon.num_views, 'view')}, {_count(len(recon.segments), 'segment')}, "
            f"{_count(len(names), 'class', 'classes')}, keyframes {list(recon.keyframes)}, post-processing {postprocess}."
        )
        return status, viewer_iframe(host, viewer.port, session.runs), segment_rows(recon), str(zip_path)

    def on_unload(self, request: gr.Request) -> None:
        """The tab was closed or reloaded: stop its viewer and delete its files now."""
        if request is not None and request.session_hash:
            self.sessions.close(request.session_hash)

    # -- layout

    def build(self) -> gr.Blocks:
        # Longer than most functions on purpose: gradio places components by the nesting of its `with`
        # blocks, so the page reads here top to bottom as it shows; split, one page would be scattered.
        # delete_cache: results copied into gradio's cache are removed after an hour (checked every 30 min)
        # and when the server stops, so finished sessions do not accumulate on disk.
        with gr.Blocks(title="PanSt3R Demo", delete_cache=(1800, 3600)) as demo:
            gr.Markdown(
                "# PanSt3R Demo\nMulti-view consistent panoptic segmentation and 3-D reconstruction from "
                "unposed images. Upload images, pick the classes, press **Run**."
            )
            selected = gr.State([])
            with gr.Row():
                with gr.Column(scale=1):
                    with gr.Tabs():
                        with gr.Tab("Upload"):
                            files = gr.File(
                                file_count="multiple",
                                file_types=sorted(IMAGE_SUFFIXES),
                                label="Images",
                                elem_id="input-images",
                            )
                        if self.local_root is not None:
                            with gr.Tab("Local path"):
                                local_path = gr.Textbox(
                                    label="Folder or image, relative to the shared folder",
                                    elem_id="local-path",
                                )
                                load = gr.Button("Load", elem_id="local-load")
                    num_keyframes = gr.Slider(
                        1, 2, value=1, step=1, label="Number of keyframes", elem_id="num-keyframes"
                    )
                    use_retrieval = gr.Checkbox(
                        False, label="Use retrieval for keyframe selection", elem_id="use-retrieval"
                    )
                    class_sets = gr.CheckboxGroup(
                        list(CLASS_SET_CHOICES),
                        value=DEFAULT_CLASS_SETS,
                        label="Class set",
                        elem_id="class-sets",
                    )
                    extra_classes = gr.Textbox(
                        label="Additional class names (comma separated)",
                        placeholder="e.g. mug, laptop, plant",
                        elem_id="extra-classes",
                    )
                    postprocess = gr.Radio(
                        list(POSTPROCESS_CHOICES),
                        value=self.model.default_postprocess,
                        label="Panoptic postprocessing",
                        elem_id="postprocess",
                    )
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    status = gr.Markdown("", elem_id="status")
                with gr.Column(scale=2):
                    viewer = gr.HTML(VIEWER_PLACEHOLDER, elem_id="viewer")
                    segments = gr.Dataframe(
                        headers=SEGMENT_HEADERS, label="Segments", interactive=False, elem_id="segments"
                    )
                    download = gr.File(
                        label="Results (zip: GLB, PLY, panoptic PNGs, segments.json)", elem_id="download"
                    )

            files.change(
                self.on_upload,
                inputs=files,
                outputs=[num_keyframes, selected, status],
                concurrency_limit=None,
            )
            if self.local_root is not None:
                load.click(
                    self.on_local_load,
                    inputs=local_path,
                    outputs=[num_keyframes, selected, status],
                    concurrency_limit=None,
                )
            # One run at a time across sessions (the model lock would serialise anyway); gradio's queue
            # then shows a waiting tab its position instead of a frozen button.
            run.click(
                self.on_run,
                inputs=[selected, num_keyframes, use_retrieval, class_sets, extra_classes, postprocess],
                outputs=[status, viewer, segments, download],
                concurrency_limit=1,
            )
            demo.unload(self.on_unload)
        return demo


def launch_demo(config: DemoConfig, model: DemoModel, block: bool = True) -> tuple[gr.Blocks, DemoApp]:
    """Build and start the gradio server; with block=True, serve until interrupted, then clean up."""
    app = DemoApp(config, model)
    demo = app.build()
    # gradio copies returned files into its cache only from the system temp folder, the working folder or
    # allowed_paths. Name the session root only when it lies elsewhere: allowing all of /tmp would let any
    # browser fetch any file there.
    root = app.sessions.tmp_root.resolve()
    implicit = (Path(tempfile.gettempdir()).resolve(), Path.cwd().resolve())
    allowed = [] if any(root.is_relative_to(p) for p in implicit) else [str(root)]
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=config.server_name,
        server_port=config.server_port,
        quiet=config.silent,
        prevent_thread_lock=True,
        show_error=False,
        allowed_paths=allowed,
        max_file_size=int(config.limits.max_image_mb * 1024 * 1024),
        footer_links=[],
    )
    if block:
        # A service manager (or a test) stops the server with SIGTERM: turn it into a normal exit so that
        # the viewers are stopped and the session folders deleted below.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            demo.block_thread()
        finally:
            app.sessions.close_all()
            demo.close()
    return demo, app


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
