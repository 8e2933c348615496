"""A tiny stand-in for PanSt3R (same submodule names and output dict), a synthetic in-memory dataset, and
the set-up the training-loop tests share (config, data, a recording callback).

The GPU tests load this file by path, so it imports nothing relative."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from panst3r_core.engine.callbacks import TrainCallback
from panst3r_core.engine.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
from panst3r_core.engine.loop import TrainData
from panst3r_core.engine.sampler import SampleKey
from panst3r_core.losses.criterion import CriterionConfig
from panst3r_core.losses.sample_objects import BatchObjects
from panst3r_core.losses.targets import find_class_set_objects

VOCABULARY = ["wall", "chair", "table", "lamp", "car", "tree"]
CLASS_SETS = ["wall;chair;table;lamp", "car;tree;wall"]  # two "datasets" sharing "wall"
COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1], [0.1, 0.9, 0.9]])
EMBED_DIM = 8


class ToyDecoderLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn_proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.norm(queries + self.attn_proj(pooled).unsqueeze(1))


class ToyPanopticDecoder(nn.Module):
    def __init__(self, dim: int, num_queries: int, num_layers: int) -> None:
        super().__init__()
        self.query_embed = nn.Parameter(torch.randn(num_queries, dim))
        self.pixel_proj = nn.Conv2d(dim, dim, 1)
        self.layers = nn.ModuleList(ToyDecoderLayer(dim) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.mask_embed = nn.Linear(dim, dim)
        self.lang_embed = nn.Linear(dim, EMBED_DIM)

    def predict(self, queries, pixels, class_embeddings, batch, views):
        q = self.decoder_norm(queries)
        logits = self.lang_embed(q) @ class_embeddings.T  # (B, Q, C)
        masks = torch.einsum(
            "bqd,bndhw->bnqhw", self.mask_embed(q), pixels.view(batch, views, *pixels.shape[1:])
        )
        return {"pred_logits": logits, "pred_masks": masks}

    def forward(self, feats, batch, views, class_embeddings):
        pixels = self.pixel_proj(feats)  # (B*N, D, h, w)
        pooled = pixels.mean(dim=(2, 3)).view(batch, views, -1).mean(1)  # (B, D)
        queries = self.query_embed.unsqueeze(0).expand(batch, -1, -1)
        aux = [self.predict(queries, pixels, class_embeddings, batch, views)]
        for layer in self.layers:
            queries = layer(queries, pooled)
            aux.append(self.predict(queries, pixels, class_embeddings, batch, views))
        out = aux.pop()
        out["aux_outputs"] = aux
        return out


class ToyPanSt3R(nn.Module):
    """forward(images (B, N, 3, H, W), class_embeddings (C, E)) -> pred_logits (B, Q, C),
    pred_masks (B, N, Q, H/2, W/2), aux_outputs, pointmaps."""

    def __init__(self, dim: int = 16, num_queries: int = 6, num_layers: int = 2) -> None:
        super().__init__()
        self.must3r_encoder = nn.Conv2d(3, dim, 2, stride=2)
        self.must3r_decoder = nn.Conv2d(dim, dim, 1)
        self.dino_encoder = nn.Conv2d(3, dim, 2, stride=2)
        self.panoptic_decoder = ToyPanopticDecoder(dim, num_queries, num_layers)

    def forward(self, images, class_embeddings, train_must3r=False, train_dino=False):
        batch, views = images.shape[:2]
        flat = images.flatten(0, 1)
        with contextlib.nullcontext() if train_must3r else torch.no_grad():
            must3r = self.must3r_decoder(torch.relu(self.must3r_encoder(flat)))
        with contextlib.nullcontext() if train_dino else torch.no_grad():
            dino = self.dino_encoder(flat)
        out = self.panoptic_decoder(torch.relu(must3r + dino), batch, views, class_embeddings)
        out["pointmaps"] = must3r.detach()
        return out


def class_embeddings() -> torch.Tensor:
    generator = torch.Generator().manual_seed(123)
    return torch.nn.functional.normalize(torch.randn(len(VOCABULARY), EMBED_DIM, generator=generator), dim=1)


class ToyViewDataset:
    """Sample i: `num_views` views with 2 coloured rectangles (instances) on noise; class set by i % 2.

    Every random choice comes from the key's seed, so samples are identical in any worker.
    """

    def __init__(self, size: int = 8, num_views: int = 3, resolutions=((32, 24), (32, 16))) -> None:
        self.size = size
        self.num_views = num_views
        self.resolutions = list(resolutions)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey) -> dict:
        rng = np.random.default_rng(key.seed)
        width, height = self.resolutions[key.resolution_index]
        class_set = CLASS_SETS[key.index % 2]
        num_local = len(class_set.split(";"))
        images = torch.from_numpy(rng.uniform(-0.2, 0.2, (self.num_views, 3, height, width))).float()
        inst = torch.zeros(self.num_views, height, width, dtype=torch.int64)
        cls = torch.zeros_like(inst)
        for instance_id in (1, 2):
            local_class = int(rng.integers(0, num_local))
            colour = COLOURS[local_class] * 2 - 1
            for view in range(self.num_views):
                if rng.random() < 0.2:
                    continue  # absent in this view
                y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
                y1, x1 = y0 + height // 3, x0 + width // 3
                inst[view, y0:y1, x0:x1] = instance_id
                cls[view, y0:y1, x0:x1] = local_class
                images[view, :, y0:y1, x0:x1] = colour.view(3, 1, 1)
        true_shape = torch.tensor([[height, width]] * self.num_views)
        return {
            "images": images,
            "true_shape": true_shape,
            "pan_inst_id": inst,
            "pan_cls_id": cls,
            "class_set": class_set,
        }


def collate(samples: list[dict]) -> dict:
    batch = {
        key: torch.stack([s[key] for s in samples])
        for key in ("images", "true_shape", "pan_inst_id", "pan_cls_id")
    }
    batch["class_set"] = [s["class_set"] for s in samples]
    # Each sample's objects, as the store loader's collate finds them: the loop's targets take that path.
    batch["objects"] = BatchObjects.pack(
        [find_class_set_objects(s["pan_inst_id"], s["pan_cls_id"], s["class_set"]) for s in samples]
    )
    return batch


def loop_config(
    output_dir,
    variant: str,
    num_views: int,
    resolutions: list[tuple[int, int]],
    samples_per_epoch: int,
    num_points: int,
    **training,
) -> TrainConfig:
    """A loop test's config: memory of 1 to `num_views` views, `training` the TrainingConfig fields."""
    return TrainConfig(
        model=ModelConfig(variant=variant),
        data=DataConfig(
            num_views=num_views,
            min_memory_num_views=1,
            max_memory_num_views=num_views,
            resolutions=resolutions,
            samples_per_epoch=samples_per_epoch,
        ),
        criterion=CriterionConfig(num_points=num_points),
        training=TrainingConfig(output_dir=str(output_dir), **training),
    )


def loop_data(dataset: ToyViewDataset, embeddings: torch.Tensor, num_workers: int = 0) -> TrainData:
    """TrainData over a toy dataset; `embeddings` (len(VOCABULARY), C) are the class embeddings."""
    return TrainData(
        dataset_size=len(dataset),
        make_loader=lambda sampler: DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers
        ),
        vocabulary=VOCABULARY,
        class_embeddings=embeddings,
    )


class Recorder(TrainCallback):
    """Records what the loop reports; raises KeyboardInterrupt at (epoch, batch) `stop_at` (a kill)."""

    def __init__(self, stop_at=None):
        self.iterations, self.logs, self.epochs, self.checkpoints, self.starts = [], [], [], [], []
        self.stop_at = stop_at

    def on_train_start(self, start_epoch, start_batch, global_step):
        self.starts.append((start_epoch, start_batch, global_step))

    def on_iteration(self, record):
        if self.stop_at == (record.epoch, record.batch):
            raise KeyboardInterrupt("simulated kill")
        self.iterations.append(((record.epoch, record.batch), record.global_step, record.lr, record.losses))

    def on_log(self, metrics, step):
        self.logs.append((step, metrics))

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append(epoch)

    def on_checkpoint(self, path, epoch, step):
        self.checkpoints.append(path.name)

    def panoptic_losses(self) -> dict[tuple[int, int], float]:
        """(epoch, batch) -> panoptic loss, in iteration order."""
        return {key: losses["panoptic_loss"] for key, _, _, losses in self.iterations}
