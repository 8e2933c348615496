"""Keyframe inference, batched over views.

1. MUSt3R encoder on every view (float32), batched by shape, chunks of `max_batch`.
2. Keyframes: evenly spaced (default), all views (None), or diverse ones by retrieval on encoder features.
3. MUSt3R memory over the keyframes in keyframe order, update batches [2, 1, 1, ...]; keys/values of the
   stored tokens projected once into preallocated buffers (`KVMemory`), single-keyframe updates replayed as
   CUDA graphs under amp on a GPU.
4. Render pass of every view against the frozen keyframe memory; DINOv2 on every view (batched: views do not
   interact in these stages, so results do not depend on the batch composition). On a GPU, DINOv2 runs on a
   second stream beside the memory and the render pass (`side_stream.py`): the clock's `dino` is its own
   time there, `dino_wait` what the render pass's stream then waits for it.
5. Panoptic pixel features (input mixer + upscaler). LoftUp's guidance min-max statistics are taken per image,
   which is what the official inference computes (one image per call).
6. One joint mask-transformer pass over all keyframes -> scene class logits, keyframe masks, final queries.
7. Non-keyframe masks = final queries' mask embeddings . that view's mask features.
8. Geometry per view: pts3d, pts3d_local, confidence, focal (Weiszfeld), camera-to-world (weighted Kabsch).

Portrait views are transposed to landscape before the model and every output is transposed back (pointmap x/y
channels swapped so that frames stay right-handed). This deviates from the official code, which mixes
portrait and landscape rasters internally.

Each stage is a function of its own (callable alone, e.g. to test or profile it); `run_inference` is the
driver that chains them under autocast and times them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from panst3r_core.inference.encoder_pass import compiled, encoder_tokens, resolve_encoder_attention
from panst3r_core.inference.geometry import activate_pointmaps, camera_to_world, estimate_focal_weiszfeld
from panst3r_core.inference.kernel_scope import kernel_scope
from panst3r_core.inference.keyframes import linspace_keyframes, retrieval_keyframes
from panst3r_core.inference.side_stream import SideStream
from panst3r_core.inference.stage_clock import StageClock
from panst3r_core.model.attention_kernels import check_kernel
from panst3r_core.model.must3r_kv_memory import KVMemory
from panst3r_core.model.panst3r import PanSt3R, memory_batches
from panst3r_core.model.text_encoder import normalize_class_embeddings
from panst3r_core.model.tf32_attention import check_encoder_attention

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
    encoder_autocast: bool = False
    """Run the MUSt3R encoder under `amp` too (not the official float32 encoder): about twice its speed in
    bf16 on an H100/H200, outputs close to but not identical with the default (README "Inference speed")."""
    encoder_attention: str = "exact"
    """Attention of the float32 encoder on CUDA: `exact` (IEEE float32, official) or `tf32` (TF32 precision on
    tensor cores: `panst3r_core.model.tf32_attention`; outputs close to, not identical with, `exact`)."""
    compile: bool = False
    """`torch.compile` the MUSt3R encoder and DINOv2 (compiled once per process: pays on long sequences)."""
    attention: str = "auto"
    """Attention kernel on CUDA (`panst3r_core.model.attention_kernels.KERNELS`); `auto` is the fastest measured."""
    tf32: bool = True
    """On CUDA, float32 matmuls in TF32 as the official demo runs them (False: IEEE float32)."""
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


@dataclass
class SceneViews:
    """The views as the network sees them: landscape (3, H, W) float32 on the model's device."""

    images: list[torch.Tensor]
    transposed: list[bool]
    """Portrait inputs, turned landscape here and turned back in the outputs."""
    shapes: list[tuple[int, int]]
    grids: list[tuple[int, int]]
    """Patch grid (H / patch, W / patch) per view."""
    max_batch: int

    def __len__(self) -> int:
        return len(self.images)

    def groups(self, order: Sequence[int]) -> dict[tuple[int, int], list[int]]:
        """Views of `order` grouped by shape (views of one shape are batched together)."""
        return _shape_groups(self.shapes, order)

    def chunks(self, order: Sequence[int]) -> list[list[int]]:
        """Views of `order` in batches of one shape and at most `max_batch` views."""
        return [chunk for group in self.groups(order).values() for chunk in _chunks(group, self.max_batch)]


@dataclass
class ViewFeatures:
    """Per-view tokens of the stages before the panoptic head (lists in view order)."""

    enc: list[torch.Tensor]
    pos: list[torch.Tensor]
    dec: list[torch.Tensor] = field(default_factory=list)
    raw: list[torch.Tensor] = field(default_factory=list)
    """(h, w, 7) raw pointmap head output per view."""
    dino: list[torch.Tensor] = field(default_factory=list)


def check_options(opts: InferenceOptions) -> None:
    if opts.amp is not None and opts.amp not in AMP_DTYPES:
        raise ValueError(f"amp={opts.amp!r}: choose one of {', '.join(AMP_DTYPES)} or None")
    if opts.keyframe_mode not in ("linspace", "retrieval"):
        raise ValueError(f"keyframe_mode={opts.keyframe_mode!r}: choose linspace or retrieval")
    if opts.max_batch < 1:
        raise ValueError(f"max_batch={opts.max_batch} must be at least 1")
    check_kernel(opts.attention)
    check_encoder_attention(opts.encoder_attention)


def prepare_views(
    model: PanSt3R, images: Sequence[torch.Tensor] | torch.Tensor, max_batch: int
) -> SceneViews:
    """Views on the model's device, portrait ones transposed; ValueError for a shape the network cannot take."""
    if len(images) == 0:
        raise ValueError("no images given")
    device = next(model.parameters()).device
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
    return SceneViews(views, transposed, shapes, grids, max_batch)


@torch.no_grad()
def encode(model: PanSt3R, views: SceneViews, opts: InferenceOptions | None = None) -> ViewFeatures:
    """1. MUSt3R encoder tokens and positions of every view (float32 unless `opts.encoder_autocast`; its
    attention and compilation per `opts`: `encoder_pass.py`)."""
    opts = opts or InferenceOptions()
    enc: list[torch.Tensor] = [None] * len(views)  # type: ignore[list-item]
    pos: list[torch.Tensor] = [None] * len(views)  # type: ignore[list-item]
    device = views.images[0].device
    attention = resolve_encoder_attention(opts.encoder_attention, device, opts.encoder_autocast)
    encoder = compiled(model.must3r_encoder) if opts.compile else model.must3r_encoder
    for chunk in views.chunks(range(len(views))):
        batch = torch.stack([views.images[i] for i in chunk])
        tokens, positions = encoder_tokens(encoder, batch, opts.encoder_autocast, attention)
        for j, i in enumerate(chunk):
            enc[i], pos[i] = tokens[j], positions[j]
    return ViewFeatures(enc, pos)


def select_keyframes(opts: InferenceOptions, features: ViewFeatures) -> list[int]:
    """2. Evenly spaced keyframes, or diverse ones by retrieval on the pooled encoder tokens."""
    if opts.keyframe_mode == "retrieval":
        pooled = torch.stack([e.float().mean(dim=0) for e in features.enc])
        return retrieval_keyframes(pooled, opts.num_keyframes, opts.retrieval_seed)
    return linspace_keyframes(len(features.enc), opts.num_keyframes)


@torch.no_grad()
def build_memory(
    model: PanSt3R,
    features: ViewFeatures,
    keyframes: list[int],
    compute_dtype: torch.dtype,
    opts: InferenceOptions,
) -> KVMemory:
    """3. The MUSt3R memory over the keyframes in keyframe order (update batches [2, 1, 1, ...]); keys and
    values projected once into buffers sized for all keyframes."""
    enc, pos = features.enc, features.pos
    kv_memory = KVMemory(
        model.must3r_decoder,
        capacity=sum(enc[i].shape[0] for i in keyframes),
        dtype=compute_dtype,
        device=enc[0].device,
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
    return kv_memory


@torch.no_grad()
def memory_beside_dino(
    model: PanSt3R,
    views: SceneViews,
    features: ViewFeatures,
    keyframes: list[int],
    compute_dtype: torch.dtype,
    opts: InferenceOptions,
    clock: StageClock,
) -> tuple[KVMemory, SideStream]:
    """3 and 4b at once: DINOv2 of every view queued on a low-priority stream, then the keyframe memory built
    on a high-priority one that the current stream joins. The caller joins the returned DINOv2 stream
    (`join(features.dino)`) before it reads `features.dino`; the memory is ready on return."""
    device = views.images[0].device
    dino = SideStream(device, high_priority=False)
    with dino.running():
        dino_clock = StageClock(device)
        dino_tokens(model, views, features, opts.compile)
        dino_clock.mark("dino")
    clock.include(dino_clock)
    memory = SideStream(device, high_priority=True)
    with memory.running():
        kv_memory = build_memory(model, features, keyframes, compute_dtype, opts)
    memory.join([kv_memory.keys, kv_memory.values])
    return kv_memory, dino


@torch.no_grad()
def render(model: PanSt3R, views: SceneViews, features: ViewFeatures, memory_kv: Any) -> None:
    """4a. Every view against the frozen keyframe memory: decoder tokens and raw pointmaps (into `features`)."""
    features.dec = [None] * len(views)  # type: ignore[list-item]
    features.raw = [None] * len(views)  # type: ignore[list-item]
    for chunk in views.chunks(range(len(views))):
        # One batch item holding n views: all their queries attend to the shared memory at once.
        x = torch.stack([features.enc[i] for i in chunk])[None]
        p = torch.stack([features.pos[i] for i in chunk])[None]
        feats, pointmaps = model.must3r_decoder.render(x, p, views.grids[chunk[0]], memory_kv)
        for j, i in enumerate(chunk):
            features.dec[i], features.raw[i] = feats[0, j], pointmaps[0, j]


@torch.no_grad()
def dino_tokens(model: PanSt3R, views: SceneViews, features: ViewFeatures, compile: bool = False) -> None:
    """4b. DINOv2 tokens of every view (into `features`); views do not interact here."""
    features.dino = [None] * len(views)  # type: ignore[list-item]
    dino = compiled(model.dino_encoder) if compile else model.dino_encoder
    for chunk in views.chunks(range(len(views))):
        tokens = dino(torch.stack([views.images[i] for i in chunk]))
        for j, i in enumerate(chunk):
            features.dino[i] = tokens[j]


@torch.no_grad()
def pixel_features(
    model: PanSt3R, views: SceneViews, features: ViewFeatures, chunk: list[int], compute_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """5. (upscaler input, 1/16 features, mask features) of a chunk of views of one shape."""
    pan = model.panoptic_decoder
    # Concatenated in the compute dtype: the first layer that reads it (a linear, autocast) would round the
    # float32 encoder tokens to it anyway, so this is the same input at half the bytes.
    parts = (features.enc, features.dec, features.dino)
    concat = torch.cat([torch.stack([part[i] for i in chunk]).to(compute_dtype) for part in parts], dim=-1)
    up_in = pan.upscaler_input(concat, torch.stack([features.pos[i] for i in chunk]))
    f16, mask_feats = pan.upscale(
        up_in, torch.stack([views.images[i] for i in chunk]), views.grids[chunk[0]], per_image=True
    )
    return up_in, f16, mask_feats


@dataclass
class PanopticFeatures:
    """Per-view outputs of the panoptic head stages, keyed by view index."""

    f16: dict[int, torch.Tensor] = field(default_factory=dict)
    upscaler_in: dict[int, torch.Tensor] = field(default_factory=dict)
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    """(Q, H/2, W/2) mask logits."""


@torch.no_grad()
def decode_keyframes(
    model: PanSt3R,
    views: SceneViews,
    features: ViewFeatures,
    keyframes: list[int],
    class_embeddings: torch.Tensor,
    compute_dtype: torch.dtype,
    clock: StageClock,
) -> tuple[dict[str, torch.Tensor], PanopticFeatures]:
    """5-6. Pixel features of the keyframes, then one joint mask-transformer pass over all of them: the
    mask transformer's outputs (scene class logits, final queries) and the keyframes' masks."""
    panoptic = PanopticFeatures()
    mask_feats: dict[int, torch.Tensor] = {}
    for chunk in views.chunks(keyframes):
        up_in, f16, masks = pixel_features(model, views, features, chunk, compute_dtype)
        for j, i in enumerate(chunk):
            panoptic.f16[i], mask_feats[i], panoptic.upscaler_in[i] = f16[j], masks[j], up_in[j]
    clock.mark("pixel_features")
    groups = list(views.groups(keyframes).values())
    out = model.panoptic_decoder.mask_transformer(
        [torch.stack([panoptic.f16[i] for i in g])[None] for g in groups],
        [torch.stack([mask_feats[i] for i in g])[None] for g in groups],
        class_embeddings,
    )
    for g, group_masks in zip(groups, out["pred_masks"]):
        for j, i in enumerate(g):
            panoptic.masks[i] = group_masks[0, j]
    return out, panoptic


@torch.no_grad()
def decode_non_keyframes(
    model: PanSt3R,
    views: SceneViews,
    features: ViewFeatures,
    non_keyframes: list[int],
    queries: torch.Tensor,
    panoptic: PanopticFeatures,
    compute_dtype: torch.dtype,
    keep_features: bool,
) -> None:
    """7. Masks of the other views from the keyframes' final queries (into `panoptic`)."""
    pan = model.panoptic_decoder
    for chunk in views.chunks(non_keyframes):
        up_in, f16, mask_feats = pixel_features(model, views, features, chunk, compute_dtype)
        chunk_masks = pan.masks_from_queries(queries, mask_feats[None])[0]
        for j, i in enumerate(chunk):
            panoptic.masks[i] = chunk_masks[j]
            if keep_features:
                panoptic.f16[i], panoptic.upscaler_in[i] = f16[j], up_in[j]


def _original_orientation(
    transposed: list[bool], raw: list[torch.Tensor], masks: dict[int, torch.Tensor], float_masks: bool = True
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Float32 pointmaps and masks (masks in their computed dtype unless `float_masks`), portrait views
    (`transposed[i]`) turned back (pointmap x/y channels swapped so that frames stay right-handed)."""
    pointmaps_out, masks_out = [], []
    for i, turned in enumerate(transposed):
        pm, mask = raw[i].float(), masks[i].float() if float_masks else masks[i]
        if turned:
            pm = pm.transpose(0, 1)[..., [1, 0, 2, 4, 3, 5, 6]]
            mask = mask.transpose(-1, -2)
        pointmaps_out.append(pm)
        masks_out.append(mask)
    return pointmaps_out, masks_out


@torch.no_grad()
def geometry(pointmaps: list[torch.Tensor], max_batch: int) -> dict[str, Any]:
    """8. Per view (float32, batched per shape): pts3d, pts3d_local, conf, focal (Weiszfeld) and
    camera-to-world (weighted Kabsch)."""
    num_views = len(pointmaps)
    device = pointmaps[0].device
    geo: dict[str, Any] = {k: [None] * num_views for k in ("pts3d", "pts3d_local", "conf")}
    geo["focal"] = torch.zeros(num_views, device=device)
    geo["cam_to_world"] = torch.zeros(num_views, 4, 4, device=device)
    out_shapes = [tuple(pm.shape[:2]) for pm in pointmaps]
    for idx in _shape_groups(out_shapes, range(num_views)).values():
        for chunk in _chunks(idx, max_batch):
            act = activate_pointmaps(torch.stack([pointmaps[i] for i in chunk]))
            chunk_focal = estimate_focal_weiszfeld(act["pts3d_local"])
            chunk_c2w = camera_to_world(act["pts3d_local"], act["pts3d"], act["conf"])
            for j, i in enumerate(chunk):
                geo["focal"][i], geo["cam_to_world"][i] = chunk_focal[j], chunk_c2w[j]
                for key in ("pts3d", "pts3d_local", "conf"):
                    geo[key][i] = act[key][j]
    return geo


@torch.no_grad()
def run_inference(
    model: PanSt3R,
    images: Sequence[torch.Tensor] | torch.Tensor,
    class_embeddings: torch.Tensor,
    options: InferenceOptions | None = None,
) -> InferenceResult:
    """images: V tensors (3, H, W) in [-1, 1] (H, W multiples of 16; shapes may differ) or (V, 3, H, W);
    class_embeddings (C, lang) raw or normalised (they are L2-normalised here). The stages above, timed."""
    opts = options or InferenceOptions()
    check_options(opts)
    views = prepare_views(model, images, opts.max_batch)
    device = views.images[0].device
    cls = model.panoptic_decoder.head_class_embeddings(
        normalize_class_embeddings(class_embeddings).to(device)
    )
    autocast = (
        torch.autocast(device.type, dtype=AMP_DTYPES[opts.amp]) if opts.amp else contextlib.nullcontext()
    )
    compute_dtype = AMP_DTYPES[opts.amp] if opts.amp else torch.float32
    clock = StageClock(device)
    with kernel_scope(opts.attention, opts.tf32, device), autocast:
        features = encode(model, views, opts)
        keyframes = select_keyframes(opts, features)
        non_keyframes = sorted(set(range(len(views))) - set(keyframes))
        clock.mark("encoder")
        kv_memory, dino = memory_beside_dino(model, views, features, keyframes, compute_dtype, opts, clock)
        memory_kv = kv_memory.render_kv()
        clock.mark("memory")
        render(model, views, features, memory_kv)
        clock.mark("render")
        dino.join(features.dino)
        clock.mark("dino_wait")
        out, panoptic = decode_keyframes(model, views, features, keyframes, cls, compute_dtype, clock)
        queries = out["out_queries"]
        clock.mark("mask_transformer")
        decode_non_keyframes(
            model, views, features, non_keyframes, queries, panoptic, compute_dtype, opts.return_intermediates
        )
        clock.mark("non_keyframes")
        pointmaps_out, masks_out = _original_orientation(views.transposed, features.raw, panoptic.masks)
        geo = geometry(pointmaps_out, opts.max_batch)
        clock.mark("geometry")
    result = InferenceResult(
        keyframes=list(keyframes),
        true_shape=torch.tensor([tuple(img.shape[-2:]) for img in images], dtype=torch.int64),
        pointmaps=pointmaps_out,
        pts3d=geo["pts3d"],
        pts3d_local=geo["pts3d_local"],
        conf=geo["conf"],
        focal=geo["focal"],
        cam_to_world=geo["cam_to_world"],
        class_logits=out["pred_logits"][0].float(),
        mask_logits=masks_out,
        out_queries=queries[:, 0].float(),
        clock=clock,
    )
    if opts.return_intermediates:
        result.intermediates = {
            "enc_tokens": features.enc,
            "enc_pos": features.pos,
            "memory": kv_memory.decoder_memory(),
            "dec_feats": features.dec,
            "dino_tokens": features.dino,
            "f16": [panoptic.f16.get(i) for i in range(len(views))],
            "upscaler_in": [panoptic.upscaler_in.get(i) for i in range(len(views))],
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
