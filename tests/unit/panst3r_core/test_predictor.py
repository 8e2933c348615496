"""Predictor on the tiny models: real forward passes on the CPU (random weights and the parity checkpoint)."""

import numpy as np
import pytest
import torch
from shared_fixtures import PARITY_MISSING, parity_fixture_dir

from panst3r_core.inference.view_source import ListSource
from panst3r_core.model.hashed_text_embedding import hashed_class_embeddings
from panst3r_core.predictor import Predictor, embed_class_names
from panst3r_core.reconstruction_sink import CollectingSink, ReconstructionSink

FIXTURE = parity_fixture_dir()
needs_fixture = pytest.mark.skipif(FIXTURE is None, reason=PARITY_MISSING)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_predictor() -> Predictor:
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    return Predictor(model=build_model("tiny_v1"), device="cpu")


def _views(num_views: int, height: int = 96, width: int = 128, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(num_views)]


def test_predict_outputs_are_consistent(tiny_predictor):
    names = ["wall", "floor", "chair", "table"]
    recon = tiny_predictor.predict(
        _views(3), class_names=names, num_keyframes=2, image_size=128, return_raw=True
    )
    assert recon.num_views == 3 and recon.class_names == names
    assert recon.keyframes == [0, 2]  # linspace over 3 views
    for v in range(3):
        assert recon.images[v].shape == (96, 128, 3) and recon.images[v].dtype == np.uint8
        assert recon.panoptic[v].shape == (96, 128) and recon.panoptic[v].dtype == np.int32
        assert recon.pts3d[v].shape == recon.pts3d_local[v].shape == (96, 128, 3)
        assert recon.confidence[v].shape == (96, 128) and (recon.confidence[v] >= 1).all()
    # random weights: any finite focal (its sign is arbitrary); the fixture test checks real values
    assert recon.focal.shape == (3,) and np.isfinite(recon.focal).all()
    assert recon.cam_to_world.shape == (3, 4, 4)
    rotations = recon.cam_to_world[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-4
    )
    # segments agree with the id maps, view by view, and ids are shared across views
    ids_in_maps = set(np.unique(np.concatenate([p.ravel() for p in recon.panoptic]))) - {0}
    assert ids_in_maps == {s.id for s in recon.segments if s.area > 0}
    for seg in recon.segments:
        assert seg.class_name == names[seg.class_id]
        assert seg.area_per_view == [int((p == seg.id).sum()) for p in recon.panoptic]
        assert 0.0 < seg.score <= 1.0
    for stage in ("text_embeddings", "preprocess", "inference", "postprocess", "to_cpu"):
        assert stage in recon.timings
    assert recon.raw["pred_logits"].shape[-1] == len(names)
    assert len(recon.raw["pred_masks"]) == 3 and recon.raw["pred_masks"][0].shape[-2:] == (48, 64)


def test_predict_is_deterministic_and_reports_progress(tiny_predictor):
    events = []
    first = tiny_predictor.predict(
        _views(2, seed=1), class_names=["a", "b"], image_size=128, progress=lambda *e: events.append(e)
    )
    second = tiny_predictor.predict(_views(2, seed=1), class_names=["a", "b"], image_size=128)
    for a, b in zip(first.panoptic, second.panoptic):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.pts3d[1], second.pts3d[1])
    started = [stage for stage, done, _ in events if done == 0]
    assert started[0] == "text_embeddings" and "postprocess" in started
    assert all((stage, 1, 1) in events for stage in started)


def test_single_view_is_paired_then_returned_alone(tiny_predictor):
    recon = tiny_predictor.predict(_views(1), class_names=["a"], image_size=128)
    assert recon.num_views == 1 and recon.focal.shape == (1,) and len(recon.panoptic) == 1
    assert all(len(s.area_per_view) == 1 and s.area > 0 for s in recon.segments)


def test_vocabulary_inputs(tiny_predictor):
    with pytest.raises(ValueError, match=r"expected \(2, D\)"):
        tiny_predictor.predict(
            _views(2), class_names=["a", "b"], class_embeddings=np.ones((3, 768), np.float32), image_size=128
        )
    # explicit embeddings equal to the hashed ones give the same result as the hashed backend
    hashed = Predictor(model=tiny_predictor.model, text_embeddings="hashed")
    by_name = hashed.predict(_views(2), class_names=["wall", "door"], image_size=128)
    by_array = tiny_predictor.predict(
        _views(2),
        class_names=["wall", "door"],
        class_embeddings=hashed_class_embeddings(["wall", "door"]),
        image_size=128,
    )
    np.testing.assert_array_equal(by_name.panoptic[0], by_array.panoptic[0])
    # default vocabulary: ScanNet++ top-100
    default = hashed.predict(_views(2), image_size=128)
    assert len(default.class_names) == 100 and default.class_names[0] == "wall"


def test_text_backend_selection_and_errors():
    names = ["lamp", "sofa"]
    assert torch.equal(embed_class_names(names, "hashed", {}), hashed_class_embeddings(names))
    assert torch.equal(
        embed_class_names(names, "auto", {"text_embeddings": "hashed"}), hashed_class_embeddings(names)
    )
    with pytest.raises(ValueError, match="exactly one"):
        Predictor()
    with pytest.raises(ValueError, match="amp"):
        Predictor(model=torch.nn.Linear(1, 1), amp="int8")
    with pytest.raises(ValueError, match="text_embeddings"):
        Predictor(model=torch.nn.Linear(1, 1), text_embeddings="clip")


@needs_fixture
def test_official_checkpoint_reproduces_the_fixture_keyframe_run():
    """Predictor on tiny_v1.pth with the fixture's views, class embeddings and 2 keyframes = run (b2)."""
    from PIL import Image

    shared = np.load(FIXTURE / "shared_must3r_dino.npz")
    outputs = np.load(FIXTURE / "tiny_v1_outputs.npz")
    inputs = np.load(FIXTURE / "inputs.npz")
    images = [np.asarray(Image.open(FIXTURE / f"input_view{i}.png").convert("RGB")) for i in range(4)]
    predictor = Predictor(weights=FIXTURE / "tiny_v1.pth", dino_config=FIXTURE / "tiny_dino_config.json")
    recon = predictor.predict(
        images,
        class_names=[str(n) for n in inputs["class_names"]],
        class_embeddings=outputs["class_emb"],
        num_keyframes=2,
        image_size=128,
        return_raw=True,
    )

    def rel(ours, ref):
        ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
        return np.linalg.norm(ours - ref) / np.linalg.norm(ref)

    assert recon.keyframes == [0, 3]
    assert rel(recon.raw["pred_logits"], outputs["b2_pred_logits"]) < 1e-5
    assert rel(np.stack(recon.raw["pred_masks"]), outputs["b2_pred_masks"]) < 1e-5
    assert rel(np.stack(recon.pts3d), shared["b2_pts3d"]) < 1e-5
    assert rel(np.stack(recon.pts3d_local), shared["b2_pts3d_local"]) < 1e-5
    assert rel(np.stack(recon.confidence), shared["b2_conf"]) < 1e-5
    assert rel(recon.focal, shared["b2_focal"]) < 1e-5
    assert rel(recon.cam_to_world, shared["b2_c2w"]) < 1e-5
    # standard_v2 (the checkpoint's default): same segments as the official post-processing of (b2)
    assert recon.postprocess == "standard_v2"
    expected = outputs["c_standard_v2_segments"]
    got = np.array([[s.id, s.query_id, s.class_id] for s in recon.segments])
    np.testing.assert_array_equal(got, expected)
    mismatched = sum(int((a != b).sum()) for a, b in zip(recon.panoptic, outputs["c_standard_v2_pan"]))
    assert mismatched <= 4  # at most the near-tie pixels the manifest counts (margin < 1e-4)
    for ours, ref in zip(recon.panoptic_conf, outputs["c_standard_v2_conf"]):
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_postprocessor_choice_and_early_errors(tiny_predictor):
    views = _views(2, seed=3)
    qubo_a = tiny_predictor.predict(views, class_names=["a", "b"], image_size=128, postprocess="qubo", seed=5)
    qubo_b = tiny_predictor.predict(views, class_names=["a", "b"], image_size=128, postprocess="qubo", seed=5)
    assert qubo_a.postprocess == "qubo"
    assert [s.id for s in qubo_a.segments] == [s.id for s in qubo_b.segments]
    np.testing.assert_array_equal(qubo_a.panoptic[1], qubo_b.panoptic[1])
    v1 = tiny_predictor.predict(
        views,
        class_names=["a", "b"],
        image_size=128,
        postprocess="standard_v1",
        postprocess_options={"cls_threshold": 1.0},
    )
    assert v1.segments == [] and all((p == 0).all() for p in v1.panoptic)  # no query passes 1.0
    with pytest.raises(ValueError, match="registered: qubo, standard_v1, standard_v2"):
        tiny_predictor.predict(views, image_size=128, postprocess="bogus")
    with pytest.raises(ValueError, match="unknown key"):
        tiny_predictor.predict(views, image_size=128, postprocess_options={"nope": 1})


def test_v2_with_a_portrait_view():
    from panst3r_core.model.variants import build_model

    torch.manual_seed(1)
    predictor = Predictor(model=build_model("tiny_v2"), text_embeddings="hashed")
    views = _views(2) + [np.random.default_rng(9).integers(0, 256, (128, 96, 3), dtype=np.uint8)]
    recon = predictor.predict(views, class_names=["a", "b"], image_size=128, num_keyframes=2)
    assert [p.shape for p in recon.panoptic] == [(96, 128), (96, 128), (128, 96)]
    assert recon.pts3d[2].shape == (128, 96, 3) and recon.images[2].shape == (128, 96, 3)
    for seg in recon.segments:
        assert seg.area_per_view == [int((p == seg.id).sum()) for p in recon.panoptic]


@needs_fixture
def test_our_folder_format_is_detected_and_its_metadata_used(tmp_path, caplog):
    from panst3r_core.checkpoint.ours import save_checkpoint

    official = Predictor(weights=FIXTURE / "tiny_v1.pth", dino_config=FIXTURE / "tiny_dino_config.json")
    names = ["wall", "floor", "lamp"]
    metadata = {"text_embeddings": "hashed", "class_names": names, "postprocess_default": "standard_v1"}
    folder = save_checkpoint(official.model, tmp_path / "converted", metadata=metadata)
    ours = Predictor(weights=folder)
    assert ours.metadata["class_names"] == names
    views = _views(3, seed=4)
    with caplog.at_level("WARNING"):
        recon = ours.predict(views, image_size=128)  # vocabulary, embedder and post-processing from metadata
    assert not [r for r in caplog.records if "SigLIP" in r.getMessage()]
    assert recon.class_names == names and recon.postprocess == "standard_v1"
    reference = official.predict(
        views,
        class_names=names,
        class_embeddings=hashed_class_embeddings(names),
        postprocess="standard_v1",
        image_size=128,
    )
    for a, b in zip(recon.panoptic, reference.panoptic):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(recon.pts3d[2], reference.pts3d[2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("postprocess", ["standard_v1", "standard_v2", "qubo"])
@pytest.mark.parametrize("chunk_views", [1, 4])
def test_chunk_views_gives_the_same_reconstruction(postprocess, chunk_views):
    """The shipped model on synthetic-like views: streamed chunks == every view at once, bit for bit."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8) for _ in range(5)]
    options = {"num_iters": 300, "num_restarts": 4} if postprocess == "qubo" else {}
    results = []
    for chunk in (None, chunk_views):
        predictor = Predictor("shipped:compact_smooth_v2_synthetic", chunk_views=chunk)
        results.append(
            predictor.predict(
                images, num_keyframes=3, postprocess=postprocess, postprocess_options=options, image_size=128
            )
        )
    whole, streamed = results
    assert [s.to_dict() for s in streamed.segments] == [s.to_dict() for s in whole.segments]
    assert streamed.keyframes == whole.keyframes
    for name in ("images", "panoptic", "panoptic_conf", "pts3d", "pts3d_local", "confidence"):
        for a, b in zip(getattr(streamed, name), getattr(whole, name), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(streamed.focal, whole.focal)
    assert np.array_equal(streamed.cam_to_world, whole.cam_to_world)


@pytest.mark.parametrize("chunk_views", [None, 2])
def test_several_post_processings_of_one_inference_equal_separate_predictions(chunk_views):
    """The shipped model, so that the post-processings differ: each result equals its own `predict`."""
    images = _views(3, seed=4)
    choices = [("standard_v2", None), ("standard_v2", {"mask_threshold": 0.0}), ("standard_v1", {})]
    predictor = Predictor("shipped:compact_smooth_v2_synthetic", chunk_views=chunk_views)
    results = predictor.predict_postprocessings(images, choices, num_keyframes=2, image_size=128)
    assert [r.postprocess for r in results] == ["standard_v2", "standard_v2", "standard_v1"]
    for result, (name, options) in zip(results, choices, strict=True):
        alone = predictor.predict(
            images, num_keyframes=2, postprocess=name, postprocess_options=options, image_size=128
        )
        assert [s.to_dict() for s in result.segments] == [s.to_dict() for s in alone.segments]
        for a, b in zip(result.panoptic, alone.panoptic, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(result.pts3d[1], alone.pts3d[1])
        assert {"inference", "postprocess"} <= set(result.timings) or "inference+postprocess" in result.timings
    assert not np.array_equal(results[0].panoptic[0] == 0, results[1].panoptic[0] == 0)  # void differs


def test_several_post_processings_of_a_single_view_and_their_errors(tiny_predictor):
    results = tiny_predictor.predict_postprocessings(
        _views(1), [("standard_v2", None), ("qubo", {"num_iters": 50})], class_names=["a"], image_size=128
    )
    assert [r.num_views for r in results] == [1, 1]
    with pytest.raises(ValueError, match="no post-processing"):
        tiny_predictor.predict_postprocessings(_views(2), [], image_size=128)
    with pytest.raises(ValueError, match="mask_treshold"):
        tiny_predictor.predict_postprocessings(_views(2), [("standard_v2", {"mask_treshold": 0})])


class _RecordingSink(ReconstructionSink):
    """Logs every call of the streamed path, and the reads of the image source in the same log."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.summary = None

    def start(self, num_views, shapes, view_names):
        self.log.append(("start", num_views, list(shapes), list(view_names)))

    def add_geometry(self, chunk):
        assert len(chunk.images) == len(chunk.pts3d) == len(chunk.indices) == len(chunk.focal)
        self.log.append(("geometry", list(chunk.indices)))

    def add_panoptic(self, chunk):
        assert all(ids.dtype == np.int32 for ids in chunk.panoptic)
        self.log.append(("panoptic", list(chunk.indices)))

    def finish(self, summary):
        self.summary = summary
        self.log.append(("finish",))


class _CountingSource(ListSource):
    """An ImageSource over arrays that logs each read."""

    def __init__(self, images, log: list) -> None:
        super().__init__(images)
        self.log = log

    def read(self, index):
        self.log.append(("read", index))
        return super().read(index)


@pytest.fixture(scope="module")
def chunked_predictor() -> Predictor:
    from panst3r_core.model.variants import build_model

    torch.manual_seed(0)
    return Predictor(model=build_model("tiny_v1"), device="cpu", chunk_views=2)


def test_sink_gets_every_view_once_in_order_and_the_predictor_keeps_none(chunked_predictor):
    """Memory bound by construction: views are read per chunk, each reaches the sink once, nothing is kept."""
    log, progress = [], []
    views = _views(7, seed=5)
    sink = _RecordingSink(log)
    summary = chunked_predictor.predict(
        _CountingSource(views, log),
        class_names=["a", "b", "c"],
        num_keyframes=2,
        image_size=128,
        view_names=[f"v{i}" for i in range(7)],
        sink=sink,
        progress=lambda *event: progress.append(event),
    )
    assert log[0] == ("start", 7, [(96, 128)] * 7, [f"v{i}" for i in range(7)]) and log[-1] == ("finish",)
    for stage in ("geometry", "panoptic"):
        chunks = [entry[1] for entry in log if entry[0] == stage]
        assert chunks == [[0, 1], [2, 3], [4, 5], [6]]
    # every geometry chunk comes before any panoptic chunk (ids need the whole scene)
    kinds = [entry[0] for entry in log if entry[0] in ("geometry", "panoptic")]
    assert kinds == ["geometry"] * 4 + ["panoptic"] * 4
    # keyframes 0 and 6 are read first; every other view is read once, just before its own chunk
    reads = [entry[1] for entry in log if entry[0] == "read"]
    assert reads == [0, 6, 1, 2, 3, 4, 5]
    first_geometry = log.index(("geometry", [0, 1]))
    assert [e[1] for e in log[:first_geometry] if e[0] == "read"] == [0, 6, 1]
    # the returned summary holds no per-view arrays; the scene-level results are complete
    assert summary is sink.summary
    for name in ("images", "panoptic", "panoptic_conf", "pts3d", "pts3d_local", "confidence"):
        assert getattr(summary, name) == []
    assert summary.focal.shape == (7,) and summary.cam_to_world.shape == (7, 4, 4)
    assert all(len(s.area_per_view) == 7 for s in summary.segments)
    counts = {stage: [done for s, done, _ in progress if s == stage] for stage in ("views", "panoptic maps")}
    assert counts["views"] == counts["panoptic maps"] == [2, 4, 6, 7]
    assert all(total == 7 for s, _, total in progress if s in counts)


def test_sink_output_equals_the_whole_scene_result(chunked_predictor, tiny_predictor):
    views = _views(5, seed=6)
    collected = CollectingSink()  # the in-memory sink, given explicitly: it sees what a writer would
    chunked_predictor.predict(views, class_names=["a", "b"], num_keyframes=3, image_size=128, sink=collected)
    whole = tiny_predictor.predict(views, class_names=["a", "b"], num_keyframes=3, image_size=128)
    for name in ("images", "panoptic", "panoptic_conf", "pts3d", "pts3d_local", "confidence"):
        for a, b in zip(collected.lists[name], getattr(whole, name), strict=True):
            assert np.array_equal(a, b), name
    assert [s.to_dict() for s in collected.result.segments] == [s.to_dict() for s in whole.segments]


def test_single_view_reaches_the_sink_alone(chunked_predictor):
    log = []
    sink = _RecordingSink(log)
    recon = chunked_predictor.predict(_views(1), class_names=["a"], image_size=128, sink=sink)
    assert log[0][:2] == ("start", 1) and ("geometry", [0]) in log and ("panoptic", [0]) in log
    assert recon.num_views == 1 and sink.summary is recon


def test_sink_errors(tiny_predictor, chunked_predictor):
    with pytest.raises(ValueError, match="chunk_views"):
        tiny_predictor.predict(_views(2), class_names=["a"], image_size=128, sink=ReconstructionSink())
    with pytest.raises(ValueError, match="return_raw"):
        chunked_predictor.predict(_views(2), class_names=["a"], image_size=128, return_raw=True)
    with pytest.raises(ValueError, match=r"view 1: expected an \(H, W, 3\) uint8"):
        chunked_predictor.predict(
            [_views(1)[0], np.zeros((4, 4), np.uint8)], class_names=["a"], image_size=128
        )
