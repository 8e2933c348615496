"""The streamed writer: the same ids, pointmaps and documents as the in-memory export; atomic commit."""

import json

import numpy as np
import pytest
import zarr
from PIL import Image

from datasets.prediction_export import export_reconstruction
from datasets.prediction_stream import ZARR_NAME, StreamingExport, is_streamed_prediction
from datasets.segment_colors import rgb_to_ids
from panst3r_core.postprocess import kept_logits
from panst3r_core.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = [f"frame_{i}" for i in range(5)]


@pytest.fixture(scope="module")
def predictors() -> tuple[Predictor, Predictor]:
    """The shipped compact model (it finds segments on such views), whole-scene and in chunks of 2."""
    whole = Predictor("shipped:compact_smooth_v2_synthetic")
    return whole, Predictor(model=whole.model, metadata=whole.metadata, chunk_views=2)


def _views() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    shapes = [(96, 128)] * 3 + [(128, 96), (96, 128)]  # a portrait view: arrays are padded to 128x128
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in shapes]


def _predict(predictor: Predictor, **extra):
    return predictor.predict(_views(), num_keyframes=3, image_size=128, view_names=NAMES, **extra)


def test_streamed_output_equals_the_in_memory_export(predictors, tmp_path):
    whole, chunked = predictors
    recon = _predict(whole)
    assert recon.segments, "the comparison needs segments"
    export_reconstruction(recon, tmp_path / "memory")
    with StreamingExport(tmp_path / "stream") as sink:
        _predict(chunked, sink=sink)
    stream, memory = tmp_path / "stream", tmp_path / "memory"
    group = zarr.open_group(stream / ZARR_NAME, mode="r")
    assert group.attrs["views"] == NAMES and group.attrs["keyframes"] == recon.keyframes
    assert group["shape"][:].tolist() == [list(p.shape) for p in recon.panoptic]
    per_view = {"images": "images", "panoptic": "panoptic", "panoptic_conf": "panoptic_conf"}
    per_view.update({"pts3d": "pts3d", "pts3d_local": "pts3d_local", "confidence": "confidence"})
    for v, (h, w) in enumerate(group["shape"][:]):
        for array, field in per_view.items():
            assert np.array_equal(group[array][v, :h, :w], getattr(recon, field)[v]), (array, v)
        assert not group["panoptic"][v, h:, :].any() and not group["panoptic"][v, :, w:].any()
        stored = rgb_to_ids(np.asarray(Image.open(stream / "panoptic" / f"{NAMES[v]}.png")))
        assert np.array_equal(stored, recon.panoptic[v])
        vis = [
            np.asarray(Image.open(folder / "panoptic_vis" / f"{NAMES[v]}.png")) for folder in (stream, memory)
        ]
        assert np.array_equal(*vis)
    assert np.array_equal(group["focal"][:], recon.focal)
    assert np.array_equal(group["cam_to_world"][:], recon.cam_to_world)
    for name in ("panoptic.json", "cameras.json"):
        assert json.loads((stream / name).read_text()) == json.loads((memory / name).read_text()), name
    streamed, kept = (json.loads((folder / "segments.json").read_text()) for folder in (stream, memory))
    assert streamed["segments"] == kept["segments"] and streamed["views"] == kept["views"] == NAMES
    assert is_streamed_prediction(stream)
    assert sorted(p.name for p in stream.iterdir()) == [
        "cameras.json", "panoptic", "panoptic.json", "panoptic_vis", "prediction.zarr", "segments.json"
    ]  # fmt: skip


class _ScratchWatcher(StreamingExport):
    """Records the scratch files present when the panoptic maps arrive (the post-processor's last pass)."""

    def add_panoptic(self, chunk):
        self.scratch_files = sorted(p.name for p in self.scratch_dir.iterdir())
        super().add_panoptic(chunk)


def test_mask_logits_past_the_host_budget_wait_in_the_scratch_folder(predictors, tmp_path, monkeypatch):
    _, chunked = predictors
    monkeypatch.setattr(kept_logits, "HOST_BUDGET_SHARE", 0.0)  # no host memory for kept logits
    with _ScratchWatcher(tmp_path / "out") as sink:
        _predict(chunked, sink=sink)
    assert len(sink.scratch_files) == 3  # 5 views in chunks of 2
    assert not (tmp_path / "out" / "_scratch").exists()


def test_within_the_host_budget_mask_logits_stay_in_memory(predictors, tmp_path):
    _, chunked = predictors
    with _ScratchWatcher(tmp_path / "out") as sink:
        _predict(chunked, sink=sink)
    assert sink.scratch_files == []


class _FailingExport(StreamingExport):
    """Fails after the first panoptic chunk: the run dies half-way through writing."""

    def add_panoptic(self, chunk):
        super().add_panoptic(chunk)
        raise OSError("disk full (simulated)")


def test_a_failure_half_way_leaves_nothing_visible(predictors, tmp_path):
    _, chunked = predictors
    out = tmp_path / "out"
    with pytest.raises(OSError, match="simulated"), _FailingExport(out) as sink:
        _predict(chunked, sink=sink)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the partial folder is gone too


def test_replaces_only_empty_folders_and_earlier_streamed_predictions(predictors, tmp_path):
    _, chunked = predictors
    out = tmp_path / "out"
    out.mkdir()
    with StreamingExport(out) as sink:  # an empty folder
        _predict(chunked, sink=sink)
    (out / "stale.txt").write_text("from the earlier run")
    with StreamingExport(out) as sink:  # an earlier streamed prediction is replaced whole
        _predict(chunked, sink=sink)
    assert not (out / "stale.txt").exists() and is_streamed_prediction(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"mine already holds notes\.txt.*new or empty folder"):
        StreamingExport(mine)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        StreamingExport(tmp_path / "file")


def test_an_incomplete_stream_is_not_committed(tmp_path):
    from panst3r_core.reconstruction_sink import GeometryChunk

    out = tmp_path / "out"
    with (
        pytest.raises(ValueError, match=r"without the geometry of views \[1\]"),
        StreamingExport(out) as sink,
    ):
        sink.start(2, [(4, 6), (4, 6)], ["a", "b"])
        points = np.zeros((4, 6, 3), np.float32)
        chunk = GeometryChunk(
            indices=[0],
            images=[np.zeros((4, 6, 3), np.uint8)],
            pts3d=[points],
            pts3d_local=[points],
            confidence=[np.ones((4, 6), np.float32)],
            focal=np.ones(1, np.float32),
            cam_to_world=np.eye(4, dtype=np.float32)[None],
        )
        sink.add_geometry(chunk)
        with pytest.raises(ValueError, match="arrived twice"):
            sink.add_geometry(chunk)
        sink.finish(None)
    assert list(tmp_path.iterdir()) == []
