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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panst3r_core.reconstruction import PanopticReconstruction, Segment

LOG = logging.getLogger(__name__)

# progress(stage, done, total): called when a stage starts (done=0) and ends (done=total).
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
        images: Sequence[np.ndarray | torch.Tensor],
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
    ) -> PanopticReconstruction:
        """Reconstruct one scene.

        Args:
            images: V views, each (H, W, 3) uint8 RGB or a (3, H, W) float tensor in [-1, 1] whose size is
                already a network resolution (multiples of 16). One view is duplicated into a pair, as the
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
        Returns:
            PanopticReconstruction with V views.
        """
        report = progress or (lambda stage, done, total: None)
        timings: dict[str, float] = {}
        if len(images) == 0:
            raise ValueError("no images given; pass at least one view")
        duplicated = len(images) == 1
        if duplicated:
            images = [images[0], images[0]]
        if keyframe_mode not in ("linspace", "retrieval"):
            raise ValueError(f"keyframe_mode {keyframe_mode!r} is not supported; use linspace or retrieval")
        postprocess, postprocess_options = self._postprocess_choice(postprocess, postprocess_options, seed)
        names, embeddings = self._vocabulary(class_names, class_embeddings, report, timings)

        with _stage("preprocess", report, timings, self.device):
            views, images_uint8 = prepare_views(images, image_size, self.model.patch_size, self.device)
        true_shapes = [tuple(int(d) for d in view.shape[-2:]) for view in views]
        num_views = len(views)
        if num_keyframes is None:
            num_keyframes = min(num_views, DEFAULT_MAX_KEYFRAMES)
        num_keyframes = max(1, min(int(num_keyframes), num_views))

        if self.chunk_views is not None:
            if return_raw:
                raise ValueError(
                    "return_raw keeps every view's raw outputs; it cannot be used with chunk_views"
                )
            options = self._inference_options(num_keyframes, keyframe_mode, seed)
            with _stage("inference+postprocess", report, timings, self.device):
                recon = predict_streaming(
                    self.model, views, embeddings, options, self.chunk_views, postprocess, postprocess_options
                )
            recon.class_names = names
            for segment in recon.segments:
                segment.class_name = names[segment.class_id]
            recon.images = [
                img if isinstance(img, np.ndarray) else to_uint8_image(img) for img in images_uint8
            ]
            recon.timings = timings
            recon.view_names = list(view_names) if view_names is not None else []
            return _first_view_only(recon) if duplicated else recon

        with _stage("inference", report, timings, self.device):
            from panst3r_core.inference.engine import run_inference

            options = self._inference_options(num_keyframes, keyframe_mode, seed)
            output = run_inference(self.model, views, embeddings, options)

        with _stage("postprocess", report, timings, self.device):
            from panst3r_core.postprocess import run_postprocessor

            panoptic = run_postprocessor(
                postprocess, output.class_logits, output.mask_logits, true_shapes, postprocess_options
            )

        with _stage("to_cpu", report, timings, self.device):
            recon = assemble_reconstruction(
                output, panoptic, names, images_uint8, true_shapes, postprocess, return_raw
            )
        if output.clock is not None:  # device time of each inference stage (events, read after the sync)
            timings.update({f"inference.{k}": v for k, v in output.clock.seconds().items()})
        recon.timings = timings
        recon.view_names = list(view_names) if view_names is not None else []
        if duplicated:
            recon = _first_view_only(recon)
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
    segments = [
        Segment(
            id=int(info.id),
            query_id=int(info.query_id),
            class_id=int(info.category_id),
            class_name=class_names[int(info.category_id)],
            score=float(info.score),
            area_per_view=[int(view_counts[info.id]) for view_counts in area_rows],
        )
        for info in segments_info
    ]
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


def predict_streaming(
    model, views, embeddings, options, chunk_views: int, postprocess: str, postprocess_options
) -> PanopticReconstruction:
    """Streamed inference and post-processing -> the same `PanopticReconstruction` as the batched path
    (class names and images are filled in by the caller). Each chunk's geometry leaves the device as the chunk
    finishes; the panoptic maps follow in the post-processor's final pass, chunk by chunk."""
    from panst3r_core.inference.host_transfer import HostTransfer
    from panst3r_core.inference.streaming import stream_inference
    from panst3r_core.postprocess import POSTPROCESSORS
    from panst3r_core.postprocess.streaming import streaming_postprocessor

    device = next(model.parameters()).device
    typed = POSTPROCESSORS.get(postprocess).options(postprocess_options)
    heads: list = []

    def on_head(head) -> None:
        heads.append(head)
        heads.append(streaming_postprocessor(postprocess, head.class_logits, typed, device))

    fields: dict[str, list[np.ndarray]] = {k: [] for k in ("pts3d", "pts3d_local", "confidence")}
    focal, cam_to_world = [], []
    for chunk in stream_inference(model, views, embeddings, chunk_views, options, on_head=on_head):
        heads[1].add(chunk.indices, chunk.mask_logits, chunk.true_shapes)
        transfer = HostTransfer()
        pending = {
            "pts3d": transfer.per_view(chunk.pts3d),
            "pts3d_local": transfer.per_view(chunk.pts3d_local),
            "confidence": transfer.per_view(chunk.conf),
        }
        pending_focal, pending_c2w = transfer.tensor(chunk.focal), transfer.tensor(chunk.cam_to_world)
        transfer.wait()
        for key, arrays in pending.items():
            fields[key] += arrays.arrays()
        focal.append(pending_focal.array())
        cam_to_world.append(pending_c2w.array())
    head, stream = heads
    segments_info = stream.finish()
    num_ids = max((int(s.id) for s in segments_info), default=0) + 1
    panoptic, panoptic_conf, areas = [], [], []
    for _, pans, confs in stream.maps():
        transfer = HostTransfer()
        chunk_areas = transfer.per_view(_segment_areas(pans, num_ids))
        chunk_pans = transfer.per_view([pan.to(torch.int32) for pan in pans])
        chunk_confs = transfer.per_view(confs)
        transfer.wait()
        areas += chunk_areas.arrays()
        panoptic += chunk_pans.arrays()
        panoptic_conf += chunk_confs.arrays()
    segments = [
        Segment(
            id=int(info.id),
            query_id=int(info.query_id),
            class_id=int(info.category_id),
            class_name="",
            score=float(info.score),
            area_per_view=[int(view_counts[info.id]) for view_counts in areas],
        )
        for info in segments_info
    ]
    return PanopticReconstruction(
        images=[],
        panoptic=panoptic,
        panoptic_conf=panoptic_conf,
        pts3d=fields["pts3d"],
        pts3d_local=fields["pts3d_local"],
        confidence=fields["confidence"],
        focal=np.concatenate(focal),
        cam_to_world=np.concatenate(cam_to_world),
        segments=segments,
        class_names=[],
        keyframes=[int(k) for k in head.keyframes],
        postprocess=postprocess,
        raw={},
    )


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


def prepare_views(
    images: Sequence[np.ndarray | torch.Tensor], image_size: int, patch_size: int, device: torch.device
) -> tuple[list[torch.Tensor], list[np.ndarray | torch.Tensor]]:
    """Views -> (network inputs (3, H, W) in [-1, 1] on `device`, the views as the network sees them).

    uint8 (H, W, 3) arrays are uploaded as uint8 (a quarter of the float bytes, one copy per shape group),
    then normalised exactly as ToTensor + Normalize(0.5, 0.5) and brought to a network resolution by the
    official crop + antialiased resize. The second list holds the original array when no resize happened,
    else the resized tensor (converted to uint8 on the host at the end).
    """
    from panst3r_core.inference.images import resize_for_model

    uploaded: list[torch.Tensor | None] = [None] * len(images)
    groups: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"view {i}: a tensor view must be (3, H, W) in [-1, 1], got {tuple(image.shape)}"
                )
            uploaded[i] = image.to(device, torch.float32)
            continue
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(
                f"view {i}: expected an (H, W, 3) uint8 RGB array, got {array.dtype} {array.shape}"
            )
        groups.setdefault(array.shape, []).append(i)
    for indices in groups.values():
        batch = torch.from_numpy(np.stack([np.asarray(images[i]) for i in indices])).to(device)
        floats = (batch.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
        for j, i in enumerate(indices):
            uploaded[i] = floats[j]
    views, shown = [], []
    for i, view in enumerate(uploaded):
        assert view is not None
        resized = resize_for_model(view, image_size, patch_size)
        views.append(resized)
        unchanged = resized.shape == view.shape and not isinstance(images[i], torch.Tensor)
        shown.append(np.asarray(images[i]) if unchanged else resized)
    return views, shown


def to_uint8_tensor(view: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 on the same device."""
    return ((view.float() * 0.5 + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


def to_uint8_image(view: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return to_uint8_tensor(view).cpu().numpy()


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
