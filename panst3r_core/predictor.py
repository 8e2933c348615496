"""`Predictor`: images in, `PanopticReconstruction` out. What `panst3r predict`, the evaluation flow and the
demo all call. It loads a checkpoint (official `.pth` or our folder format), embeds the class names, runs
keyframe inference and a post-processor, and returns numpy arrays on the CPU. It never writes files.

Everything between the input upload and the final copy to the CPU stays on the device, so a GPU run has no
host round trips between stages (the benchmark `tests/benchmarks/inference.py` relies on this).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panst3r_core.inference.view_source import (
    ImageSource,
    ListSource,
    NetworkViews,
    prepare_views,
    read_all,
    to_uint8_tensor,
)
from panst3r_core.reconstruction import PanopticReconstruction, Segment
from panst3r_core.reconstruction_sink import CollectingSink, GeometryChunk, PanopticChunk, ReconstructionSink

LOG = logging.getLogger(__name__)

# progress(stage, done, total): called when a stage starts (done=0) and ends (done=total); the streamed
# path also reports its per-view stages ("views", "panoptic maps") after every chunk with the views done.
ProgressCallback = Callable[[str, int, int], None]

AMP_MODES = ("none", "bf16", "fp16")
TEXT_EMBEDDING_BACKENDS = ("auto", "siglip", "hashed")
DEFAULT_CLASS_SET = "scannetpp"
DEFAULT_MAX_KEYFRAMES = 50


class Predictor:
    """A loaded PanSt3R model ready to predict scenes.

    Args:
        weights: official `.pth` checkpoint or a folder with `model.safetensors` + `config.json`.
        model: an already built model (instead of `weights`), e.g. random weights in the benchmark.
        device: torch device string.
        amp: "none", "bf16" or "fp16" (autocast on CUDA; the encoder and pointmap head stay fp32).
        dino_config: Dinov2Config JSON path (or dict) for official checkpoints whose DINO head count cannot
            be inferred from the weights.
        text_embeddings: "siglip", "hashed" or "auto" (the checkpoint's declared backend, else SigLIP when
            it is available offline, else hashed with a warning).
        siglip: SigLIP model folder or hub id (read from the local HF cache only).
        max_batch_size: views per forward in the batched stages (None = the inference default).
        cuda_graphs: on CUDA, replay CUDA graphs for the keyframe-memory updates (off: plain eager).
        encoder_autocast: with `amp`, run the MUSt3R encoder in that precision too instead of float32 (the
            official encoder's precision): faster, outputs close but not identical.
        encoder_attention: attention of the float32 encoder on CUDA: "exact" (IEEE float32, as the official
            encoder) or "tf32" (TF32 precision on tensor cores: faster, outputs close but not identical).
        compile: `torch.compile` the MUSt3R encoder and DINOv2 (once per process; pays on long sequences).
        attention: the attention kernel on CUDA (`panst3r_core.model.attention_kernels.KERNELS`; `auto`: the
            fastest measured); one that cannot run here falls back to PyTorch's SDPA with a warning.
        tf32: on CUDA, float32 matmuls in TF32, as the official demo sets them (False: IEEE float32).
        chunk_views: stream the views in chunks of this many (`panst3r_core.inference.streaming`): each
            chunk's outputs leave the device before the next one runs, so device memory no longer grows with
            the number of views; results are identical. None: every view at once.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        model: torch.nn.Module | None = None,
        device: str | torch.device = "cpu",
        amp: str = "none",
        dino_config: str | Path | dict | None = None,
        text_embeddings: str = "auto",
        siglip: str | None = None,
        max_batch_size: int | None = None,
        metadata: dict[str, Any] | None = None,
        cuda_graphs: bool = True,
        chunk_views: int | None = None,
        encoder_autocast: bool = False,
        attention: str = "auto",
        tf32: bool = True,
        encoder_attention: str = "exact",
        compile: bool = False,
    ) -> None:
        if (weights is None) == (model is None):
            raise ValueError("Predictor needs exactly one of `weights` (a checkpoint path) or `model`")
        if amp not in AMP_MODES:
            raise ValueError(f"amp {amp!r} is not supported; choose one of {', '.join(AMP_MODES)}")
        if text_embeddings not in TEXT_EMBEDDING_BACKENDS:
            raise ValueError(
                f"text_embeddings {text_embeddings!r} is not supported; choose one of {', '.join(TEXT_EMBEDDING_BACKENDS)}"
            )
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        self.amp = amp
        self.text_embeddings = text_embeddings
        self.siglip = siglip
        self.max_batch_size = max_batch_size
        self.cuda_graphs = cuda_graphs
        self.encoder_autocast = encoder_autocast
        from panst3r_core.model.attention_kernels import check_kernel
        from panst3r_core.model.tf32_attention import check_encoder_attention

        check_kernel(attention)
        check_encoder_attention(encoder_attention)
        self.attention = attention
        self.encoder_attention = encoder_attention
        self.compile = compile
        self.tf32 = tf32
        from panst3r_core.inference.streaming import check_chunk_views

        check_chunk_views(chunk_views)
        self.chunk_views = chunk_views
        started = time.perf_counter()
        if model is None:
            model, loaded_metadata = load_model(weights, dino_config)
            metadata = {**loaded_metadata, **(metadata or {})}
        self.model = model.to(self.device).eval()
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.load_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ public API

    @torch.no_grad()
    def predict(
        self,
        images: Sequence[np.ndarray | torch.Tensor] | ImageSource,
        class_names: Sequence[str] | None = None,
        class_embeddings: np.ndarray | torch.Tensor | None = None,
        num_keyframes: int | None = None,
        keyframe_mode: str = "linspace",
        postprocess: str | None = None,
        postprocess_options: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
        image_size: int = 512,
        view_names: Sequence[str] | None = None,
        return_raw: bool = False,
        seed: int = 0,
        sink: ReconstructionSink | None = None,
    ) -> PanopticReconstruction:
        """Reconstruct one scene.

        Args:
            images: V views, each (H, W, 3) uint8 RGB or a (3, H, W) float tensor in [-1, 1] whose size is
                already a network resolution (multiples of 16); or an `ImageSource` that reads them on
                demand (with chunk_views, one chunk at a time). One view is duplicated into a pair, as the
                official demo does, and only the first copy is returned.
            class_names: vocabulary (index = class id); default: the checkpoint's names, else ScanNet++ top-100.
            class_embeddings: (C, 768) embeddings for `class_names` (skips the text encoder).
            num_keyframes: keyframes for the memory and the query decoding (None: all views up to 50).
            keyframe_mode: "linspace" or "retrieval".
            postprocess: post-processor name (default: the checkpoint's, else standard_v2).
            postprocess_options: overrides of that post-processor's options.
            progress: `progress(stage, done, total)` callback.
            image_size: long side of the network input for uint8 images (512 for the released models).
            view_names: names kept in the result (e.g. file stems).
            return_raw: keep raw outputs (pointmaps, logits, mask logits, queries) in `result.raw`.
            seed: seed of stochastic post-processing (QUBO) and retrieval keyframe sampling.
            sink: needs chunk_views; receives each chunk's outputs as they come (`reconstruction_sink`)
                instead of the predictor keeping them, so host memory does not grow with the views.
        Returns:
            PanopticReconstruction with V views; with a sink, the scene-level summary only (segments,
            classes, keyframes, cameras, timings) and empty per-view lists.
        """
        report = progress or (lambda stage, done, total: None)
        timings: dict[str, float] = {}
        if len(images) == 0:
            raise ValueError("no images given; pass at least one view")
        if sink is not None and self.chunk_views is None:
            raise ValueError("a sink receives the outputs chunk by chunk; set chunk_views to stream them")
        if isinstance(images, ImageSource) and (self.chunk_views is None or len(images) == 1):
            images = read_all(images)  # the whole-scene path holds every view at once anyway
        if keyframe_mode not in ("linspace", "retrieval"):
            raise ValueError(f"keyframe_mode {keyframe_mode!r} is not supported; use linspace or retrieval")
        postprocess, postprocess_options = self._postprocess_choice(postprocess, postprocess_options, seed)
        if self.chunk_views is not None and return_raw:
            raise ValueError("return_raw keeps every view's raw outputs; it cannot be used with chunk_views")
        scene = self._scene(images, class_names, class_embeddings, view_names, report, timings)

        if self.chunk_views is not None:
            streamed = _StreamedScene(
                scene.images,
                scene.names,
                scene.embeddings,
                postprocess,
                postprocess_options,
                scene.view_names,
            )
            return self._predict_streamed(
                streamed,
                num_keyframes,
                keyframe_mode,
                seed,
                image_size,
                report,
                timings,
                sink,
                scene.duplicated,
            )
        choices = [(postprocess, postprocess_options)]
        run = (num_keyframes, keyframe_mode, seed, image_size, report, timings, return_raw)
        return self._predict_whole(scene, choices, *run)[0]

    @torch.no_grad()
    def predict_postprocessings(
        self,
        images: Sequence[np.ndarray | torch.Tensor],
        postprocessings: Sequence[tuple[str, dict[str, Any] | None]],
        class_names: Sequence[str] | None = None,
        num_keyframes: int | None = None,
        image_size: int = 512,
        view_names: Sequence[str] | None = None,
        seed: int = 0,
    ) -> list[PanopticReconstruction]:
        """One scene post-processed in several ways, (name, options) each: one reconstruction per entry.

        The inference runs once and each post-processor reads its outputs (what a sweep over
        post-processings needs). Each reconstruction's timings hold the shared stages and its own
        post-processing and copy to the CPU. A streaming predictor (`chunk_views`) post-processes inside its
        chunks, so it predicts once per entry instead."""
        common = dict(num_keyframes=num_keyframes, image_size=image_size, view_names=view_names, seed=seed)
        if self.chunk_views is not None:
            return [
                self.predict(images, class_names, postprocess=name, postprocess_options=options, **common)
                for name, options in postprocessings
            ]
        if len(images) == 0:
            raise ValueError("no images given; pass at least one view")
        if not postprocessings:
            raise ValueError("no post-processing given; pass at least one (name, options)")
        choices = [self._postprocess_choice(name, options, seed) for name, options in postprocessings]
        report = lambda stage, done, total: None  # noqa: E731
        timings: dict[str, float] = {}
        scene = self._scene(images, class_names, None, view_names, report, timings)
        return self._predict_whole(
            scene, choices, num_keyframes, "linspace", seed, image_size, report, timings, False
        )

    def _scene(self, images, class_names, class_embeddings, view_names, report, timings) -> _WholeScene:
        """The views (a single one paired with itself, as the official demo does), the embedded vocabulary
        and the view names of one call."""
        duplicated = len(images) == 1
        views = [images[0], images[0]] if duplicated else images
        names, embeddings = self._vocabulary(class_names, class_embeddings, report, timings)
        return _WholeScene(views, names, embeddings, list(view_names or []), duplicated)

    def _predict_whole(
        self, scene, choices, num_keyframes, keyframe_mode, seed, image_size, report, timings, return_raw
    ) -> list[PanopticReconstruction]:
        """Every view at once: one inference, then each (post-processor, options) of `choices` on its
        outputs; the stages before the post-processing are timed once and shared by every result."""
        with _stage("preprocess", report, timings, self.device):
            views, images_uint8 = prepare_views(scene.images, image_size, self.model.patch_size, self.device)
        true_shapes = [tuple(int(d) for d in view.shape[-2:]) for view in views]
        num_keyframes = _keyframe_count(num_keyframes, len(views))

        with _stage("inference", report, timings, self.device):
            from panst3r_core.inference.engine import run_inference

            options = self._inference_options(num_keyframes, keyframe_mode, seed)
            output = run_inference(self.model, views, scene.embeddings, options)
        if output.clock is not None:  # device time of each inference stage (events, read after the sync)
            timings.update({f"inference.{k}": v for k, v in output.clock.seconds().items()})
        shapes = (images_uint8, true_shapes)
        return [
            self._postprocessed(scene, output, name, options, shapes, report, dict(timings), return_raw)
            for name, options in choices
        ]

    def _postprocessed(
        self, scene, output, postprocess, options, shapes, report, timings, return_raw
    ) -> PanopticReconstruction:
        """One post-processing of the scene's inference output, copied to the CPU as a reconstruction."""
        images_uint8, true_shapes = shapes
        with _stage("postprocess", report, timings, self.device):
            from panst3r_core.postprocess import run_postprocessor

            panoptic = run_postprocessor(
                postprocess, output.class_logits, output.mask_logits, true_shapes, options
            )

        with _stage("to_cpu", report, timings, self.device):
            recon = assemble_reconstruction(
                output, panoptic, scene.names, images_uint8, true_shapes, postprocess, return_raw
            )
        recon.timings = timings
        recon.view_names = scene.view_names
        return _first_view_only(recon) if scene.duplicated else recon

    def _predict_streamed(
        self, scene, num_keyframes, keyframe_mode, seed, image_size, report, timings, sink, duplicated
    ) -> PanopticReconstruction:
        """The chunked path: views read, run and handed to the sink one chunk at a time.

        A single view is paired with itself, so its two-view result is collected in memory, cut to the first
        view, then replayed into the caller's sink (one view: nothing to bound)."""
        source = scene.images if isinstance(scene.images, ImageSource) else ListSource(scene.images)
        with _stage("preprocess", report, timings, self.device):
            views = NetworkViews(source, image_size, self.model.patch_size, self.device)
        options = self._inference_options(_keyframe_count(num_keyframes, len(views)), keyframe_mode, seed)
        target = CollectingSink() if sink is None or duplicated else sink
        with _stage("inference+postprocess", report, timings, self.device):
            summary = predict_streaming(self.model, views, options, self.chunk_views, scene, target, report)
        summary.timings = timings
        summary.view_names = scene.view_names
        target.finish(summary)
        if target is sink:
            return summary
        recon = target.result
        if not duplicated:
            return recon
        recon = _first_view_only(recon)
        if sink is not None:
            replay_into(recon, sink)
        return recon

    def _postprocess_choice(
        self, postprocess: str | None, options: dict[str, Any] | None, seed: int
    ) -> tuple[str, dict[str, Any]]:
        """The post-processor (default: the checkpoint's) and its checked options, before the expensive
        stages run."""
        postprocess = postprocess or self.metadata.get("postprocess_default") or "standard_v2"
        options = dict(options or {})
        if postprocess == "qubo":
            options.setdefault("seed", seed)
        check_postprocess(postprocess, options)
        return postprocess, options

    def _inference_options(self, num_keyframes: int, keyframe_mode: str, seed: int):
        from panst3r_core.inference.engine import InferenceOptions

        options = InferenceOptions(
            num_keyframes=num_keyframes,
            keyframe_mode=keyframe_mode,
            amp=None if self.amp == "none" else self.amp,
            retrieval_seed=seed,
            output_device=None,  # stay on the device until the end
            cuda_graphs=self.cuda_graphs,
            encoder_autocast=self.encoder_autocast,
            encoder_attention=self.encoder_attention,
            compile=self.compile,
            attention=self.attention,
            tf32=self.tf32,
        )
        if self.max_batch_size is not None:
            options.max_batch = self.max_batch_size
        return options

    # ------------------------------------------------------------------ vocabulary

    def _vocabulary(self, class_names, class_embeddings, report, timings) -> tuple[list[str], torch.Tensor]:
        from panst3r_core.classes import load_class_set

        if class_names is None:
            class_names = self.metadata.get("class_names") or load_class_set(DEFAULT_CLASS_SET)
        names = [str(n) for n in class_names]
        if not names:
            raise ValueError("the class vocabulary is empty; give at least one class name")
        with _stage("text_embeddings", report, timings, self.device):
            if class_embeddings is not None:
                embeddings = (
                    class_embeddings.float()
                    if isinstance(class_embeddings, torch.Tensor)
                    else torch.as_tensor(np.asarray(class_embeddings), dtype=torch.float32)
                )
                if embeddings.ndim != 2 or embeddings.shape[0] != len(names):
                    raise ValueError(
                        f"class_embeddings has shape {tuple(embeddings.shape)}; expected ({len(names)}, D), "
                        "one row per class name in the same order"
                    )
            else:
                embeddings = embed_class_names(names, self.text_embeddings, self.metadata, self.siglip)
            # L2 normalisation happens once, inside the inference engine (as the official text encoder)
            embeddings = embeddings.float().to(self.device)
        return names, embeddings


# ---------------------------------------------------------------------- stages


def check_postprocess(name: str, options: dict[str, Any] | None = None) -> None:
    """Raise ValueError (listing the valid names / keys) for an unknown post-processor or option."""
    from panst3r_core.postprocess import POSTPROCESSORS

    POSTPROCESSORS.get(name).options(options)


@contextmanager
def _stage(name: str, report: ProgressCallback, timings: dict[str, float], device: torch.device):
    """Time a stage (synchronising CUDA so the time is the stage's own) and report its start and end."""
    report(name, 0, 1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
    report(name, 1, 1)


def _keyframe_count(num_keyframes: int | None, num_views: int) -> int:
    """Keyframes actually used: all views up to DEFAULT_MAX_KEYFRAMES by default, within [1, num_views]."""
    if num_keyframes is None:
        num_keyframes = min(num_views, DEFAULT_MAX_KEYFRAMES)
    return max(1, min(int(num_keyframes), num_views))


def assemble_reconstruction(
    output, panoptic, class_names: list[str], images_uint8, true_shapes, postprocess: str, return_raw: bool
) -> PanopticReconstruction:
    """Inference output + post-processing result -> CPU numpy `PanopticReconstruction`.

    Per-view segment areas are counted on the device (one bincount per view shape). Every array is queued
    for the host first (pinned memory, one transfer per array and view shape) and the host waits once.
    Raw outputs (pointmaps, mask logits: most of the bytes) are copied only when `return_raw` is set.
    """
    from panst3r_core.inference.host_transfer import HostTransfer

    segments_info = list(panoptic.segments_info)
    num_ids = max((int(s.id) for s in segments_info), default=0) + 1
    transfer = HostTransfer()
    areas = transfer.per_view(_segment_areas(panoptic.pan, num_ids))
    pending = {
        "panoptic": transfer.per_view([pan.to(torch.int32) for pan in panoptic.pan]),
        "panoptic_conf": transfer.per_view(panoptic.conf),
        "pts3d": transfer.per_view(output.pts3d),
        "pts3d_local": transfer.per_view(output.pts3d_local),
        "confidence": transfer.per_view(output.conf),
        "focal": transfer.tensor(output.focal),
        "cam_to_world": transfer.tensor(output.cam_to_world),
    }
    if return_raw:
        pending_raw = {
            "pointmaps": transfer.per_view(output.pointmaps),
            "pred_logits": transfer.tensor(output.class_logits),
            "pred_masks": transfer.per_view(output.mask_logits),
            "out_queries": transfer.tensor(output.out_queries),
        }
    # views the network saw resized: converted on the device, queued with the rest
    shown = [
        None if isinstance(img, np.ndarray) else transfer.tensor(to_uint8_tensor(img)) for img in images_uint8
    ]
    transfer.wait()

    area_rows = areas.arrays()
    segments = _segments(segments_info, class_names, area_rows)
    raw: dict[str, Any] = {}
    if return_raw:
        # layouts of the parity fixture: pred_logits (1, Q, C), pred_masks per view (1, Q, h, w),
        # out_queries (Q, 1, hidden), pointmaps per view (H, W, 7)
        raw = {
            "pointmaps": pending_raw["pointmaps"].arrays(),
            "pred_logits": pending_raw["pred_logits"].array()[None],
            "pred_masks": [m[None] for m in pending_raw["pred_masks"].arrays()],
            "out_queries": pending_raw["out_queries"].array()[:, None],
            "true_shape": np.asarray(true_shapes, dtype=np.int32),
        }
    return PanopticReconstruction(
        images=[img if copy is None else copy.array() for img, copy in zip(images_uint8, shown)],
        panoptic=pending["panoptic"].arrays(),
        panoptic_conf=pending["panoptic_conf"].arrays(),
        pts3d=pending["pts3d"].arrays(),
        pts3d_local=pending["pts3d_local"].arrays(),
        confidence=pending["confidence"].arrays(),
        focal=pending["focal"].array(),
        cam_to_world=pending["cam_to_world"].array(),
        segments=segments,
        class_names=list(class_names),
        keyframes=[int(k) for k in output.keyframes],
        postprocess=postprocess,
        raw=raw,
    )


@dataclass
class _WholeScene:
    """A call's views and vocabulary, as every path needs them (the streamed one takes them over)."""

    images: Sequence[np.ndarray | torch.Tensor]
    names: list[str]
    embeddings: torch.Tensor
    view_names: list[str]
    duplicated: bool
    """One input view was paired with itself: results keep only the first copy."""


@dataclass
class _StreamedScene:
    """What the streamed path needs of a `predict` call besides the run options."""

    images: Sequence[np.ndarray | torch.Tensor] | ImageSource
    class_names: list[str]
    embeddings: torch.Tensor
    postprocess: str
    postprocess_options: dict[str, Any]
    view_names: list[str]


def predict_streaming(
    model,
    views: NetworkViews,
    options,
    chunk_views: int,
    scene: _StreamedScene,
    sink: ReconstructionSink,
    report: ProgressCallback,
) -> PanopticReconstruction:
    """Streamed inference and post-processing into `sink`; returns the scene-level summary (per-view lists
    empty; the caller adds timings and calls `sink.finish`). Each chunk's geometry leaves the device and
    goes to the sink as the chunk finishes; the panoptic maps follow in the post-processor's final pass,
    chunk by chunk. Per view, only its segment areas and its camera stay in host memory, and the
    post-processor's kept mask logits unless the sink offers a `scratch_dir` for them."""
    from panst3r_core.inference.streaming import stream_inference
    from panst3r_core.postprocess import POSTPROCESSORS
    from panst3r_core.postprocess.streaming import streaming_postprocessor

    device = next(model.parameters()).device
    typed = POSTPROCESSORS.get(scene.postprocess).options(scene.postprocess_options)
    heads: list = []

    def on_head(head) -> None:
        heads.append(head)
        heads.append(
            streaming_postprocessor(scene.postprocess, head.class_logits, typed, device, sink.scratch_dir)
        )

    num_views = len(views)
    sink.start(num_views, [tuple(shape[-2:]) for shape in views.shapes], scene.view_names)
    focal, cam_to_world, done = [], [], 0
    for chunk in stream_inference(model, views, scene.embeddings, chunk_views, options, on_head=on_head):
        heads[1].add(chunk.indices, chunk.mask_logits, chunk.true_shapes)
        geometry = _geometry_to_host(chunk)
        # own copies: the sink may drop the chunk, and its pinned host blocks should then be reusable
        focal.append(geometry.focal.copy())
        cam_to_world.append(geometry.cam_to_world.copy())
        sink.add_geometry(geometry)
        done += len(chunk.indices)
        report("views", done, num_views)
    head, stream = heads
    segments_info = stream.finish()
    num_ids = max((int(s.id) for s in segments_info), default=0) + 1
    areas, done = [], 0
    for indices, pans, confs in stream.maps():
        panoptic, chunk_areas = _panoptic_to_host(indices, pans, confs, num_ids)
        areas += chunk_areas
        sink.add_panoptic(panoptic)
        done += len(indices)
        report("panoptic maps", done, num_views)
    segments = _segments(segments_info, scene.class_names, areas)
    return PanopticReconstruction(
        images=[],
        panoptic=[],
        panoptic_conf=[],
        pts3d=[],
        pts3d_local=[],
        confidence=[],
        focal=np.concatenate(focal),
        cam_to_world=np.concatenate(cam_to_world),
        segments=segments,
        class_names=list(scene.class_names),
        keyframes=[int(k) for k in head.keyframes],
        postprocess=scene.postprocess,
        raw={},
    )


def _geometry_to_host(chunk) -> GeometryChunk:
    """One `ViewChunk`'s geometry and images -> CPU numpy (one pinned transfer per array and view shape)."""
    from panst3r_core.inference.host_transfer import HostTransfer

    transfer = HostTransfer()
    pending = {
        "images": transfer.per_view(chunk.images),
        "pts3d": transfer.per_view(chunk.pts3d),
        "pts3d_local": transfer.per_view(chunk.pts3d_local),
        "confidence": transfer.per_view(chunk.conf),
    }
    pending_focal, pending_c2w = transfer.tensor(chunk.focal), transfer.tensor(chunk.cam_to_world)
    transfer.wait()
    return GeometryChunk(
        indices=list(chunk.indices),
        **{name: arrays.arrays() for name, arrays in pending.items()},
        focal=pending_focal.array(),
        cam_to_world=pending_c2w.array(),
    )


def _panoptic_to_host(indices, pans, confs, num_ids: int) -> tuple[PanopticChunk, list[np.ndarray]]:
    """One chunk of post-processed maps -> (CPU chunk, per-view segment pixel counts)."""
    from panst3r_core.inference.host_transfer import HostTransfer

    transfer = HostTransfer()
    areas = transfer.per_view(_segment_areas(pans, num_ids))
    ids = transfer.per_view([pan.to(torch.int32) for pan in pans])
    conf = transfer.per_view(confs)
    transfer.wait()
    return PanopticChunk(list(indices), ids.arrays(), conf.arrays()), areas.arrays()


def replay_into(recon: PanopticReconstruction, sink: ReconstructionSink) -> None:
    """Hand an in-memory reconstruction to `sink` as one chunk (the sink then writes it like a stream)."""
    indices = list(range(recon.num_views))
    sink.start(recon.num_views, [tuple(p.shape) for p in recon.panoptic], list(recon.view_names))
    sink.add_geometry(
        GeometryChunk(
            indices,
            recon.images,
            recon.pts3d,
            recon.pts3d_local,
            recon.confidence,
            recon.focal,
            recon.cam_to_world,
        )
    )
    sink.add_panoptic(PanopticChunk(indices, recon.panoptic, recon.panoptic_conf))
    sink.finish(recon)


def _segments(segments_info, class_names: Sequence[str], areas: Sequence[np.ndarray]) -> list[Segment]:
    """Post-processor segments + per-view (num_ids,) pixel counts -> `Segment`s with names and view areas."""
    return [
        Segment(
            id=int(info.id),
            query_id=int(info.query_id),
            class_id=int(info.category_id),
            class_name=class_names[int(info.category_id)],
            score=float(info.score),
            area_per_view=[int(view_counts[info.id]) for view_counts in areas],
        )
        for info in segments_info
    ]


def _segment_areas(pans: Sequence[torch.Tensor], num_ids: int) -> list[torch.Tensor]:
    """Per-view (H, W) id maps -> per-view (num_ids,) int64 pixel counts, one bincount per view shape."""
    counts: list[torch.Tensor | None] = [None] * len(pans)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, pan in enumerate(pans):
        groups.setdefault(tuple(pan.shape), []).append(i)
    for indices in groups.values():
        stacked = torch.stack([pans[i] for i in indices]).flatten(1).long()
        # ids of view j are shifted by j * num_ids so that one bincount counts every view separately
        offsets = torch.arange(len(indices), device=stacked.device)[:, None] * num_ids
        flat = torch.bincount((stacked + offsets).flatten(), minlength=len(indices) * num_ids)
        for j, i in enumerate(indices):
            counts[i] = flat[j * num_ids : (j + 1) * num_ids]
    return counts  # type: ignore[return-value]


def _first_view_only(recon: PanopticReconstruction) -> PanopticReconstruction:
    """Drop the duplicate second view that a single-image input was paired with."""
    for name in ("images", "panoptic", "panoptic_conf", "pts3d", "pts3d_local", "confidence"):
        setattr(recon, name, getattr(recon, name)[:1])
    recon.focal = recon.focal[:1]
    recon.cam_to_world = recon.cam_to_world[:1]
    recon.keyframes = [k for k in recon.keyframes if k == 0]
    for seg in recon.segments:
        seg.area_per_view = seg.area_per_view[:1]
    recon.segments = [seg for seg in recon.segments if seg.area_per_view[0] > 0]
    for key in ("pointmaps", "pred_masks"):
        if key in recon.raw:
            recon.raw[key] = recon.raw[key][:1]
    return recon


# ---------------------------------------------------------------------- model and images


def load_model(weights: str | Path, dino_config: str | Path | None = None) -> tuple[torch.nn.Module, dict]:
    """An official `.pth` file, our checkpoint folder or `shipped:NAME` -> (model in eval mode, metadata)."""
    from panst3r_core.checkpoint.loading import load_any_checkpoint
    from panst3r_core.pretrained import resolve_weights

    path = resolve_weights(weights)
    if not path.exists():
        raise FileNotFoundError(f"weights {path} do not exist; pass an official .pth file or a model folder")
    loaded = load_any_checkpoint(path, dino_config)
    return loaded.model, dict(loaded.metadata)


# ---------------------------------------------------------------------- text embeddings


def embed_class_names(
    names: list[str], backend: str, metadata: dict[str, Any], siglip: str | None = None
) -> torch.Tensor:
    """Class names -> (C, 768) embeddings with the chosen backend.

    "auto": the backend the checkpoint declares (metadata `text_embeddings`), else SigLIP when it can be
    loaded offline, else the `hashed` embedder with a warning (right for models trained with it, such as
    the synthetic/tiny ones; meaningless for the released SigLIP-trained models).
    """
    from panst3r_core.model.hashed_text_embedding import BACKEND_NAME, hashed_class_embeddings

    if backend == "auto":
        declared = metadata.get("text_embeddings")
        if declared == BACKEND_NAME:
            return hashed_class_embeddings(names)
        try:
            return _siglip_embeddings(names, declared or "siglip", siglip)
        except ValueError as exc:
            LOG.warning(
                "SigLIP text embeddings are not available offline (%s); using the offline `hashed` "
                "embedder instead. This is right only for models trained with hashed embeddings; for the "
                "released models pass --siglip DIR or --class-embeddings E.npy.",
                str(exc).splitlines()[0],
            )
            return hashed_class_embeddings(names)
    if backend == BACKEND_NAME:
        return hashed_class_embeddings(names)
    return _siglip_embeddings(names, backend, siglip)


def _siglip_embeddings(names: list[str], kind: str, model_path: str | None) -> torch.Tensor:
    from panst3r_core.model.text_encoder import TextEncoder

    return TextEncoder(kind=kind, model_path=model_path)(names)
