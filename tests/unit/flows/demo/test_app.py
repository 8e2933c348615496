"""The demo's handlers driven directly (no browser): sessions stay apart, errors become status lines."""

import zipfile

import gradio as gr
import pytest
from shared_fixtures import require_parity_fixture

from flows.demo.app import DemoApp, browser_host, segment_rows, viewer_iframe
from flows.demo.config import DemoConfig
from flows.demo.limits import UploadLimits
from flows.demo.model import DemoModel


@pytest.fixture(scope="module")
def tiny_predictor():
    """The real predictor on the tiny official-format checkpoint (random weights), CPU, offline embeddings."""
    fixture = require_parity_fixture()
    import torch

    from panst3r_core.predictor import Predictor

    torch.set_num_threads(1)
    return Predictor(
        fixture / "tiny_v1.pth",
        device="cpu",
        dino_config=fixture / "tiny_dino_config.json",
        text_embeddings="hashed",
    )


class RecordingProgress:
    def __init__(self):
        self.values = []

    def __call__(self, fraction, desc=None):
        self.values.append((fraction, desc))


@pytest.fixture
def app(tmp_path, tiny_predictor):
    config = DemoConfig(
        weights=tmp_path, tmp_dir=tmp_path / "sessions", viser_port=0, limits=UploadLimits(max_images=5)
    )
    demo_app = DemoApp(config, DemoModel(tiny_predictor, image_size=224))
    yield demo_app
    demo_app.sessions.close_all()


def request(session, host="demo.example:7860"):
    return gr.Request(session_hash=session, headers={"host": host})


def test_upload_sets_keyframes_to_min_of_images_and_50(app, tmp_path, make_png):
    few = [str(make_png(tmp_path / f"f{i}.png", seed=i)) for i in range(3)]
    slider, selected, status = app.on_upload(few)
    assert (slider["value"], slider["maximum"]) == (3, 3) and selected == few and "3 images" in status
    app.config.limits = UploadLimits(max_images=100)
    many = [str(make_png(tmp_path / f"m{i}.png", seed=i, size=(8, 8))) for i in range(60)]
    slider, _, _ = app.on_upload(many)
    assert (slider["value"], slider["maximum"]) == (50, 60)


def test_run_shows_own_viewer_segments_and_zip_per_session(app, tmp_path, make_png):
    files_a = [str(make_png(tmp_path / f"a{i}.png", seed=i)) for i in range(2)]
    files_b = [str(make_png(tmp_path / f"b{i}.png", seed=10 + i)) for i in range(3)]
    progress = RecordingProgress()
    out_a = app.on_run(files_a, 2, False, ["ScanNet++ (100)"], "", "QUBO", request("tab-a"), progress)
    out_b = app.on_run(
        files_b, 2, True, [], "mug, laptop", "Standard (v1)", request("tab-b"), RecordingProgress()
    )
    status_a, html_a, rows_a, zip_a = out_a
    status_b, html_b, rows_b, zip_b = out_b
    assert status_a.startswith("Done") and "2 views" in status_a and "keyframes [0, 1]" in status_a
    assert status_b.startswith("Done") and "3 views" in status_b and "keyframes [" in status_b
    recon_a, recon_b = app.sessions.get("tab-a").scene, app.sessions.get("tab-b").scene
    assert len(recon_b.keyframes) == 2  # chosen by retrieval
    assert recon_a.postprocess == "qubo" and recon_b.postprocess == "standard_v1"
    assert recon_a.class_names[:2] == ["wall", "ceiling"] and len(recon_a.class_names) == 100
    assert recon_b.class_names == ["mug", "laptop"]
    assert recon_a.view_names == ["a0", "a1"] and recon_a.images[0].shape[1] == 224
    port_a = app.sessions.get("tab-a").viewer.port
    port_b = app.sessions.get("tab-b").viewer.port
    assert port_a != port_b
    assert f"http://demo.example:{port_a}/" in html_a and f"http://demo.example:{port_b}/" in html_b
    assert {r[1] for r in rows_b} <= {"mug", "laptop"}
    assert [r[0] for r in rows_a] and sorted(r[0] for r in rows_a) == sorted(s.id for s in recon_a.segments)
    with zipfile.ZipFile(zip_a) as za, zipfile.ZipFile(zip_b) as zb:
        assert len([n for n in za.namelist() if n.startswith("panoptic/")]) == 2
        assert len([n for n in zb.namelist() if n.startswith("panoptic/")]) == 3
    assert str(app.sessions.get("tab-a").work_dir) in zip_a
    fractions = [f for f, _ in progress.values]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert {"inference", "postprocess", "writing downloads"} <= {d for _, d in progress.values}


@pytest.mark.parametrize(
    ("selected", "class_sets", "text", "message"),
    [
        ([], ["COCO (133)"], "", "no images selected"),
        (None, ["COCO (133)"], "", "no images selected"),
        ("six", ["COCO (133)"], "", "at most 5"),
        ("broken", ["COCO (133)"], "", "could not be read as an image"),
        ("ok", [], "  , ", "no classes"),
    ],
)
def test_user_errors_become_one_status_line(app, tmp_path, make_png, selected, class_sets, text, message):
    if selected == "six":
        selected = [str(make_png(tmp_path / f"s{i}.png", seed=i, size=(4, 4))) for i in range(6)]
    elif selected == "broken":
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
        selected = [str(bad)]
    elif selected == "ok":
        selected = [str(make_png(tmp_path / "ok.png", seed=1))]
    status, *rest = app.on_run(
        selected, 1, False, class_sets, text, "QUBO", request("tab-x"), RecordingProgress()
    )
    assert status.startswith("**Error:**") and message in status
    assert "Traceback" not in status
    assert "tab-x" not in app.sessions or app.sessions.get("tab-x").scene is None


def test_unload_closes_the_session(app, tmp_path, make_png):
    files = [str(make_png(tmp_path / "u.png", seed=3))]
    app.on_run(files, 1, False, ["COCO (133)"], "", "QUBO", request("tab-u"), RecordingProgress())
    work_dir = app.sessions.get("tab-u").work_dir
    app.on_unload(request("tab-u"))
    assert "tab-u" not in app.sessions and not work_dir.exists()


def test_local_path_tab_is_confined(tmp_path, tiny_predictor, make_png):
    root = tmp_path / "shared"
    root.mkdir()
    make_png(root / "x.png", seed=1)
    config = DemoConfig(weights=tmp_path, tmp_dir=tmp_path / "s", viser_port=0, allow_local_files=root)
    demo_app = DemoApp(config, DemoModel(tiny_predictor))
    slider, selected, status = demo_app.on_local_load(".")
    assert len(selected) == 1 and slider["value"] == 1 and "1 image found" in status
    _, selected, status = demo_app.on_local_load("../")
    assert selected == [] and "outside the folder this server shares" in status


def test_layout_defaults(app):
    metadata = app.model.predictor.metadata
    previous = metadata.get("postprocess_default")
    metadata["postprocess_default"] = "qubo"  # a checkpoint that names its default
    try:
        demo = app.build()
    finally:
        metadata["postprocess_default"] = previous
    config = demo.get_config_file()
    by_label = {c["props"].get("label"): c["props"] for c in config["components"] if "label" in c["props"]}
    assert by_label["Panoptic postprocessing"]["value"] == "QUBO"  # the checkpoint's default
    assert by_label["Class set"]["value"] == ["ScanNet++ (100)"]
    assert "Number of keyframes" in by_label


def test_helpers():
    assert browser_host(request("x", "10.0.0.5:7860"), "127.0.0.1") == "10.0.0.5"
    assert browser_host(None, "0.0.0.0") == "127.0.0.1"
    html = viewer_iframe("h", 5001, 2)
    assert 'src="http://h:5001/"' in html and "Full screen" in html and 'data-run="2"' in html


def test_segment_rows_sorted_by_size(reconstruction):
    rows = segment_rows(reconstruction)
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
