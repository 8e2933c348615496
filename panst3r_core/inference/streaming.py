"""Streaming keyframe inference: peak device memory set by the keyframes and the chunk size, not the views.

`run_inference` keeps every view's tokens, masks and pointmaps on the device until the end. Here only the
keyframes' state (their tokens, the frozen memory, the scene queries and the keyframes' own outputs) stays
on the device; the other views go through encoder, render, DINOv2, pixel features, masks and geometry in
chunks of `chunk_views` consecutive views, and each finished chunk is handed to a consumer (which moves what
it keeps to the host) before the next chunk starts. Images also stay where the caller keeps them and are
uploaded per chunk; given as `NetworkViews`, they are even read and resized per chunk.

The stages are the functions of `engine.py` applied to sub-scenes (the keyframes, then one chunk), so the
arithmetic is the same; only the batch composition differs. Every stage treats the views of a batch
independently, and the chunked == unchunked tests check bitwise equality on the CPU. On a GPU a different
batch size can select a different matmul kernel (last-ulp differences); a `chunk_views` that is a multiple of
`max_batch` keeps the non-keyframe batches of the unchunked run for views of one shape.

With `keyframe_mode="retrieval"` every view is encoded once up front (only pooled tokens are kept) and the
non-keyframes again in their chunk: the encoder runs twice for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from panst3r_core.inference.engine import (
    AMP_DTYPES,
    InferenceOptions,
    SceneViews,
    _original_orientation,
    check_options,
    decode_keyframes,
    dino_tokens,
    encode,
    geometry,
    memory_beside_dino,
    pixel_features,
    render,
)
from panst3r_core.inference.kernel_scope import kernel_scope
from panst3r_core.inference.keyframes import linspace_keyframes, retrieval_keyframes
from panst3r_core.inference.stage_clock import StageClock
from panst3r_core.inference.view_source import NetworkViews, to_uint8_tensor
from panst3r_core.model.panst3r import PanSt3R
from panst3r_core.model.text_encoder import normalize_class_embeddings


@dataclass
class ViewChunk:
    """The outputs of consecutive views `indices` (on the model's device, float32 but the mask logits, original
    orientation)."""

    indices: list[int]
    true_shapes: list[tuple[int, int]]
    pointmaps: list[torch.Tensor]  # (H, W, 7) raw head output
    pts3d: list[torch.Tensor]  # (H, W, 3)
    pts3d_local: list[torch.Tensor]  # (H, W, 3)
    conf: list[torch.Tensor]  # (H, W)
    focal: torch.Tensor  # (n,)
    cam_to_world: torch.Tensor  # (n, 4, 4)
    mask_logits: list[torch.Tensor]  # (Q, H/2, W/2) in the compute dtype (bf16 under bf16 autocast)
    images: list[torch.Tensor]  # (H, W, 3) uint8: the views as the network saw them


@dataclass
class SceneHead:
    """What the keyframe pass decides for the whole scene (known before any chunk runs)."""

    keyframes: list[int]
    class_logits: torch.Tensor  # (Q, C) float32
    out_queries: torch.Tensor  # (Q, hidden) float32
    true_shapes: list[tuple[int, int]]


def check_chunk_views(chunk_views: int | None) -> None:
    if chunk_views is not None and chunk_views < 1:
        raise ValueError(f"chunk_views={chunk_views} must be at least 1 (or None: every view at once)")


class _LazyViews:
    """Input views as given (any device), turned landscape and uploaded only when a sub-scene needs them."""

    def __init__(self, model: PanSt3R, images: Sequence[torch.Tensor] | torch.Tensor | NetworkViews) -> None:
        if len(images) == 0:
            raise ValueError("no images given")
        self.images = images
        self.device = next(model.parameters()).device
        self.patch = model.patch_size
        # NetworkViews know every shape before reading a pixel; plain tensors are asked directly
        shapes = images.shapes if isinstance(images, NetworkViews) else [tuple(img.shape) for img in images]
        self.transposed = [bool(shape[-2] > shape[-1]) for shape in shapes]
        for i, shape in enumerate(shapes):
            if len(shape) != 3 or shape[0] != 3 or shape[1] % self.patch or shape[2] % self.patch:
                raise ValueError(
                    f"image {i} has shape {tuple(shape)}; expected (3, H, W), multiples of {self.patch}"
                )
        self.true_shapes = [tuple(int(d) for d in shape[-2:]) for shape in shapes]

    def __len__(self) -> int:
        return len(self.images)

    def scene(self, indices: Sequence[int], max_batch: int) -> SceneViews:
        """A sub-scene of `indices` on the model's device (local index j = indices[j])."""
        # read in ascending order: a video source then decodes forward instead of seeking back
        loaded = {i: self.images[i] for i in sorted(set(indices))}
        views = []
        for i in indices:
            img = loaded[i]
            views.append(
                (img.transpose(-1, -2) if self.transposed[i] else img).to(self.device, torch.float32)
            )
        shapes = [tuple(v.shape[1:]) for v in views]
        grids = [(h // self.patch, w // self.patch) for h, w in shapes]
        return SceneViews(views, [self.transposed[i] for i in indices], shapes, grids, max_batch)


def _keyframes(model: PanSt3R, lazy: _LazyViews, opts: InferenceOptions, chunk_views: int) -> list[int]:
    if opts.keyframe_mode != "retrieval":
        return linspace_keyframes(len(lazy), opts.num_keyframes)
    pooled = []
    for start in range(0, len(lazy), chunk_views):
        sub = lazy.scene(range(start, min(start + chunk_views, len(lazy))), opts.max_batch)
        pooled += [e.float().mean(dim=0) for e in encode(model, sub, opts).enc]
    return retrieval_keyframes(torch.stack(pooled), opts.num_keyframes, opts.retrieval_seed)


@torch.no_grad()
def stream_inference(
    model: PanSt3R,
    images: Sequence[torch.Tensor] | torch.Tensor | NetworkViews,
    class_embeddings: torch.Tensor,
    chunk_views: int,
    options: InferenceOptions | None = None,
    on_head: Callable[[SceneHead], None] | None = None,
) -> Iterator[ViewChunk]:
    """Yield the outputs of `chunk_views` consecutive views at a time, in view order.

    images: V tensors (3, H, W) in [-1, 1] on any device (uploaded per chunk), or `NetworkViews` (read,
    uploaded and resized per chunk). `on_head(head)` is called once,
    after the keyframe pass and before the first chunk, with the scene-level outputs. A consumer should move
    what it keeps off the device before asking for the next chunk; the chunk's tensors are then released.
    """
    opts = options or InferenceOptions()
    check_options(opts)
    check_chunk_views(chunk_views)
    lazy = _LazyViews(model, images)
    device = lazy.device
    cls = model.panoptic_decoder.head_class_embeddings(
        normalize_class_embeddings(class_embeddings).to(device)
    )
    compute_dtype = AMP_DTYPES[opts.amp] if opts.amp else torch.float32

    def autocast():
        return (
            torch.autocast(device.type, dtype=AMP_DTYPES[opts.amp]) if opts.amp else contextlib.nullcontext()
        )

    def kernels():
        # entered around each piece of work, never across a `yield`: the consumer runs with its own settings
        return kernel_scope(opts.attention, opts.tf32, device)

    clock = StageClock(device)
    with kernels(), autocast():
        keyframes = _keyframes(model, lazy, opts, chunk_views)
        kf_views = lazy.scene(keyframes, opts.max_batch)
        kf_features = encode(model, kf_views, opts)
        local = list(range(len(keyframes)))
        kv_memory, dino = memory_beside_dino(model, kf_views, kf_features, local, compute_dtype, opts, clock)
        memory_kv = kv_memory.render_kv()
        render(model, kf_views, kf_features, memory_kv)
        dino.join(kf_features.dino)
        out, panoptic = decode_keyframes(model, kf_views, kf_features, local, cls, compute_dtype, clock)
        queries = out["out_queries"]
    kf_raw = {k: kf_features.raw[j] for j, k in enumerate(keyframes)}
    kf_masks = {k: panoptic.masks[j] for j, k in enumerate(keyframes)}
    # the keyframes' pixels wait (as uint8, a few MB) for the chunk that reports them
    kf_images = {k: _shown(kf_views.images[j], lazy.transposed[k]) for j, k in enumerate(keyframes)}
    del kf_features, panoptic, kf_views
    head = SceneHead(
        keyframes=list(keyframes),
        class_logits=out["pred_logits"][0].float(),
        out_queries=queries[:, 0].float(),
        true_shapes=list(lazy.true_shapes),
    )
    if on_head is not None:
        on_head(head)

    for start in range(0, len(lazy), chunk_views):
        indices = list(range(start, min(start + chunk_views, len(lazy))))
        others = [i for i in indices if i not in kf_raw]
        raw, masks, shown = dict(kf_raw), dict(kf_masks), dict(kf_images)
        with kernels():
            if others:
                with autocast():
                    raw_o, masks_o, shown_o = _non_keyframe_chunk(
                        model, lazy, others, memory_kv, queries, compute_dtype, opts
                    )
                raw.update(raw_o)
                masks.update(masks_o)
                shown.update(shown_o)
            pointmaps, mask_logits = _original_orientation(
                [lazy.transposed[i] for i in indices],
                [raw[i] for i in indices],
                {j: masks[i] for j, i in enumerate(indices)},
                # bf16 logits stay bf16: post-processing takes float32 of them, the same values at half the bytes
                float_masks=False,
            )
            geo = geometry(pointmaps, opts.max_batch)
        yield ViewChunk(
            indices=indices,
            true_shapes=[lazy.true_shapes[i] for i in indices],
            pointmaps=pointmaps,
            pts3d=geo["pts3d"],
            pts3d_local=geo["pts3d_local"],
            conf=geo["conf"],
            focal=geo["focal"],
            cam_to_world=geo["cam_to_world"],
            mask_logits=mask_logits,
            images=[shown[i] for i in indices],
        )


def _non_keyframe_chunk(
    model: PanSt3R,
    lazy: _LazyViews,
    others: list[int],
    memory_kv,
    queries: torch.Tensor,
    compute_dtype: torch.dtype,
    opts: InferenceOptions,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Stages 1, 4, 5 and 7 of `engine.py` for the non-keyframes `others` (raw pointmaps, mask logits,
    the views as uint8 images)."""
    views = lazy.scene(others, opts.max_batch)
    shown = {i: _shown(views.images[j], lazy.transposed[i]) for j, i in enumerate(others)}
    features = encode(model, views, opts)
    render(model, views, features, memory_kv)
    dino_tokens(model, views, features, opts.compile)
    raw = {i: features.raw[j] for j, i in enumerate(others)}
    masks: dict[int, torch.Tensor] = {}
    for batch in views.chunks(range(len(others))):
        _, _, mask_feats = pixel_features(model, views, features, batch, compute_dtype)
        batch_masks = model.panoptic_decoder.masks_from_queries(queries, mask_feats[None])[0]
        for j, local in enumerate(batch):
            masks[others[local]] = batch_masks[j]
    return raw, masks, shown


def _shown(view: torch.Tensor, transposed: bool) -> torch.Tensor:
    """A landscape network input -> (H, W, 3) uint8 in the view's original orientation."""
    return to_uint8_tensor(view.transpose(-1, -2) if transposed else view)
