"""Keyframe inference, batched over views.

1. MUSt3R encoder on every view (float32), batched by shape, chunks of `max_batch`.
2. Keyframes: evenly spaced (default), all views (None), or diverse ones by retrieval on encoder features.
3. MUSt3R memory over the keyframes in keyframe order, update batches [2, 1, 1, ...]; keys/values of the
   stored tokens projected once into preallocated buffers (`KVMemory`), single-keyframe updates replayed as
   CUDA graphs under amp on a GPU.
4. Render pass of every view against the frozen keyframe memory; DINOv2 on every view (batched: views do not
   interact in these stages, so results do not depend on the batch composition).
5. Panoptic pixel features (input mixer + upscaler). LoftUp's guidance min-max statistics are taken per image,
   which is what the official inference computes (one image per call).
6. One joint mask-transformer pass over all keyframes -> scene class logits, keyframe masks, final queries.
7. Non-keyframe masks = final queries' mask embeddings . that view's mask features.
8. Geometry per view: pts3d, pts3d_local, confidence, focal (Weiszfeld), camera-to-world (weighted Kabsch).

Portrait views are transposed to landscape before the model and every output is transposed back (pointmap x/y
channels swapped so that frames stay right-handed). This deviates from the official code, which mixes
portrait and landscape rasters internally.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from panst3r_core.inference.geometry import activate_pointmaps, camera_to_world, estimate_focal_weiszfeld
from panst3r_core.inference.keyframes import linspace_keyframes, retrieval_keyframes
from panst3r_core.inference.stage_clock import StageClock
from panst3r_core.model.blocks import set_memory_efficient_attention
from panst3r_core.model.must3r_kv_memory import KVMemory
from panst3r_core.model.panst3r import PanSt3R, memory_batches
from panst3r_core.model.text_encoder import normalize_class_embeddings

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class InferenceOptions:
    num_keyframes: int | None = None
    """Number of keyframes; None (or >= number of views) uses every view."""
    keyframe_mode: str = "linspace"
    """`linspace` (official default) or `retrieval` (diverse keyframes from encoder features)."""
    max_batch: int = 32
    """Most views per forward call in the batched stages (32 at 512x384: ~15 GiB peak for 100 views, bf16)."""
    amp: str | None = None
    """None (float32), `bf16` or `fp16`: autocast everywhere except the encoder and the pointmap head."""
    retrieval_seed: int = 0
    xformers: bool = True
    """Use xformers' memory-efficient attention for unmasked attention when it is installed (CUDA only)."""
    cuda_graphs: bool = True
    """On CUDA under amp, replay captured graphs for the single-keyframe memory updates (launch-bound
    otherwise); float32 runs stay eager, where graphs would be slower."""
    output_device: str | None = "cpu"
    """Where the results are moved at the end (None: stay on the model's device)."""
    return_intermediates: bool = False


@dataclass
class InferenceResult:
    """Per-view lists keep the original view order; `stacked(name)` stacks them when all shapes agree."""

    keyframes: list[int]
    true_shape: torch.Tensor  # (V, 2) int (H, W)
    pointmaps: list[torch.Tensor]  # (H, W, 7) raw head output
    pts3d: list[torch.Tensor]  # (H, W, 3) world = first keyframe camera
    pts3d_local: list[torch.Tensor]  # (H, W, 3) own camera
    conf: list[torch.Tensor]  # (H, W)
    focal: torch.Tensor  # (V,)
    cam_to_world: torch.Tensor  # (V, 4, 4)
    class_logits: torch.Tensor  # (Q, C) scene-level, from the keyframe pass
    mask_logits: list[torch.Tensor]  # (Q, H/2, W/2) per view
    out_queries: torch.Tensor  # (Q, hidden)
    intermediates: dict[str, Any] = field(default_factory=dict)
    clock: StageClock | None = None
    """Per-stage device time (`clock.seconds()`: encoder, memory, render, dino, ..., geometry)."""

    def stacked(self, name: str) -> torch.Tensor:
        return torch.stack(getattr(self, name))


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _shape_groups(shapes: list[tuple[int, int]], order: Sequence[int]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for i in order:
        groups.setdefault(shapes[i], []).append(i)
    return groups


def _swap_xy(points: torch.Tensor) -> torch.Tensor:
    return points[..., [1, 0, 2]]


@torch.no_grad()
def run_inference(
    model: PanSt3R,
    images: Sequence[torch.Tensor] | torch.Tensor,
    class_embeddings: torch.Tensor,
    options: InferenceOptions | None = None,
) -> InferenceResult:
    """images: V tensors (3, H, W) in [-1, 1] (H, W multiples of 16; shapes may differ) or (V, 3, H, W);
    class_embeddings (C, lang) raw or normalised (they are L2-normalised here)."""
    opts = options or InferenceOptions()
    if opts.amp is not None and opts.amp not in AMP_DTYPES:
        raise ValueError(f"amp={opts.amp!r}: choose one of {', '.join(AMP_DTYPES)} or None")
    if opts.keyframe_mode not in ("linspace", "retrieval"):
        raise ValueError(f"keyframe_mode={opts.keyframe_mode!r}: choose linspace or retrieval")
    if opts.max_batch < 1:
        raise ValueError(f"max_batch={opts.max_batch} must be at least 1")
    num_views = len(images)
    if num_views == 0:
        raise ValueError("no images given")
    device = next(model.parameters()).device
    set_memory_efficient_attention(opts.xformers and device.type == "cuda")
    patch = model.patch_size
    transposed = [bool(img.shape[-2] > img.shape[-1]) for img in images]
    views = [
        (img.transpose(-1, -2) if t else img).to(device, torch.float32) for img, t in zip(images, transposed)
    ]
    for i, view in enumerate(views):
        if view.ndim != 3 or view.shape[0] != 3 or view.shape[1] % patch or view.shape[2] % patch:
            raise ValueError(
                f"image {i} has shape {tuple(images[i].shape)}; expected (3, H, W), multiples of {patch}"
            )
    shapes = [tuple(v.shape[1:]) for v in views]
    grids = [(h // patch, w // patch) for h, w in shapes]
    cls = model.panoptic_decoder.head_class_embeddings(
        normalize_class_embeddings(class_embeddings).to(device)
    )
    autocast = (
        torch.autocast(device.type, dtype=AMP_DTYPES[opts.amp]) if opts.amp else contextlib.nullcontext()
    )
    compute_dtype = AMP_DTYPES[opts.amp] if opts.amp else torch.float32
    enc: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
    pos: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
    clock = StageClock(device)
    with autocast:
        # 1. encoder
        for idx in _shape_groups(shapes, range(num_views)).values():
            for chunk in _chunks(idx, opts.max_batch):
                tokens, positions = model.must3r_encoder(torch.stack([views[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    enc[i], pos[i] = tokens[j], positions[j]

        # 2. keyframes
        if opts.keyframe_mode == "retrieval":
            pooled = torch.stack([e.float().mean(dim=0) for e in enc])
            keyframes = retrieval_keyframes(pooled, opts.num_keyframes, opts.retrieval_seed)
        else:
            keyframes = linspace_keyframes(num_views, opts.num_keyframes)
        non_keyframes = sorted(set(range(num_views)) - set(keyframes))
        clock.mark("encoder")

        # 3. memory over the keyframes: keys/values projected once into buffers sized for all keyframes
        decoder = model.must3r_decoder
        kv_memory = KVMemory(
            decoder,
            capacity=sum(enc[i].shape[0] for i in keyframes),
            dtype=compute_dtype,
            device=device,
            keep_values=opts.return_intermediates,
            # Under amp the updates are bound by kernel launches and graphs pay off; in float32 the attention
            # dominates and the graphs' masked half-capacity buckets cost more than the launches they save
            # (H100, 100 views: memory stage 0.63 -> 0.35 s in bf16, but 1.72 -> 2.75 s in float32).
            cuda_graphs=opts.cuda_graphs and compute_dtype != torch.float32,
        )
        start = 0
        for size in memory_batches(len(keyframes)):
            batch = keyframes[start : start + size]
            kv_memory.add([enc[i][None] for i in batch], [pos[i][None] for i in batch])
            start += size
        memory_kv = kv_memory.render_kv()
        clock.mark("memory")

        # 4. render + DINO, batched per shape
        dec: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
        raw: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
        dino: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
        view_chunks = [
            c
            for idx in _shape_groups(shapes, range(num_views)).values()
            for c in _chunks(idx, opts.max_batch)
        ]
        for chunk in view_chunks:
            # One batch item holding n views: all their queries attend to the shared memory at once.
            x = torch.stack([enc[i] for i in chunk])[None]
            p = torch.stack([pos[i] for i in chunk])[None]
            feats, pointmaps = decoder.render(x, p, grids[chunk[0]], memory_kv)
            for j, i in enumerate(chunk):
                dec[i], raw[i] = feats[0, j], pointmaps[0, j]
        clock.mark("render")
        for chunk in view_chunks:
            tokens = model.dino_encoder(torch.stack([views[i] for i in chunk]))
            for j, i in enumerate(chunk):
                dino[i] = tokens[j]
        clock.mark("dino")

        # 5. panoptic pixel features
        pan = model.panoptic_decoder

        def pixel_features(chunk: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            # Concatenated in the compute dtype: the first layer that reads it (a linear, autocast) would
            # round the float32 encoder tokens to it anyway, so this is the same input at half the bytes.
            concat = torch.cat(
                [torch.stack([part[i] for i in chunk]).to(compute_dtype) for part in (enc, dec, dino)], dim=-1
            )
            up_in = pan.upscaler_input(concat, torch.stack([pos[i] for i in chunk]))
            f16, mask_feats = pan.upscale(
                up_in, torch.stack([views[i] for i in chunk]), grids[chunk[0]], per_image=True
            )
            return up_in, f16, mask_feats

        f16: dict[int, torch.Tensor] = {}
        kf_mask_feats: dict[int, torch.Tensor] = {}
        upscaler_in: dict[int, torch.Tensor] = {}
        kf_groups = _shape_groups(shapes, keyframes)
        for idx in kf_groups.values():
            for chunk in _chunks(idx, opts.max_batch):
                up_in, f, m = pixel_features(chunk)
                for j, i in enumerate(chunk):
                    f16[i], kf_mask_feats[i], upscaler_in[i] = f[j], m[j], up_in[j]
        clock.mark("pixel_features")

        # 6. joint mask transformer over the keyframes
        groups = list(kf_groups.values())
        out = pan.mask_transformer(
            [torch.stack([f16[i] for i in g])[None] for g in groups],
            [torch.stack([kf_mask_feats[i] for i in g])[None] for g in groups],
            cls,
        )
        masks: list[torch.Tensor] = [None] * num_views  # type: ignore[list-item]
        for g, group_masks in zip(groups, out["pred_masks"]):
            for j, i in enumerate(g):
                masks[i] = group_masks[0, j]
        queries = out["out_queries"]
        del kf_mask_feats
        clock.mark("mask_transformer")

        # 7. non-keyframes from the final keyframe queries
        for idx in _shape_groups(shapes, non_keyframes).values():
            for chunk in _chunks(idx, opts.max_batch):
                up_in, f, m = pixel_features(chunk)
                chunk_masks = pan.masks_from_queries(queries, m[None])[0]
                for j, i in enumerate(chunk):
                    masks[i] = chunk_masks[j]
                    if opts.return_intermediates:
                        f16[i], upscaler_in[i] = f[j], up_in[j]
        clock.mark("non_keyframes")

    # 8. geometry (float32), back to the original orientation, batched per output shape
    pointmaps_out, masks_out = [], []
    for i in range(num_views):
        pm, mask = raw[i].float(), masks[i].float()
        if transposed[i]:
            pm = pm.transpose(0, 1)[..., [1, 0, 2, 4, 3, 5, 6]]
            mask = mask.transpose(-1, -2)
        pointmaps_out.append(pm)
        masks_out.append(mask)
    geo: dict[str, list[torch.Tensor]] = {k: [None] * num_views for k in ("pts3d", "pts3d_local", "conf")}  # type: ignore[misc]
    focal = torch.zeros(num_views, device=device)
    c2w = torch.zeros(num_views, 4, 4, device=device)
    out_shapes = [tuple(pm.shape[:2]) for pm in pointmaps_out]
    for idx in _shape_groups(out_shapes, range(num_views)).values():
        for chunk in _chunks(idx, opts.max_batch):
            act = activate_pointmaps(torch.stack([pointmaps_out[i] for i in chunk]))
            chunk_focal = estimate_focal_weiszfeld(act["pts3d_local"])
            chunk_c2w = camera_to_world(act["pts3d_local"], act["pts3d"], act["conf"])
            for j, i in enumerate(chunk):
                focal[i], c2w[i] = chunk_focal[j], chunk_c2w[j]
                for key in geo:
                    geo[key][i] = act[key][j]
    clock.mark("geometry")
    result = InferenceResult(
        keyframes=list(keyframes),
        true_shape=torch.tensor([tuple(img.shape[-2:]) for img in images], dtype=torch.int64),
        pointmaps=pointmaps_out,
        pts3d=geo["pts3d"],
        pts3d_local=geo["pts3d_local"],
        conf=geo["conf"],
        focal=focal,
        cam_to_world=c2w,
        class_logits=out["pred_logits"][0].float(),
        mask_logits=masks_out,
        out_queries=queries[:, 0].float(),
        clock=clock,
    )
    if opts.return_intermediates:
        result.intermediates = {
            "enc_tokens": enc,
            "enc_pos": pos,
            "memory": kv_memory.decoder_memory(),
            "dec_feats": dec,
            "dino_tokens": dino,
            "f16": [f16.get(i) for i in range(num_views)],
            "upscaler_in": [upscaler_in.get(i) for i in range(num_views)],
        }
    if opts.output_device is not None:
        result = _move(result, torch.device(opts.output_device))
    return result


def _move(result: InferenceResult, device: torch.device) -> InferenceResult:
    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    for name in (
        "true_shape",
        "pointmaps",
        "pts3d",
        "pts3d_local",
        "conf",
        "focal",
        "cam_to_world",
        "class_logits",
        "mask_logits",
        "out_queries",
    ):
        setattr(result, name, move(getattr(result, name)))
    return result
