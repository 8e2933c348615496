"""Typed training configuration. YAML files in conf/train/ only set values; defaults mirror the official
`configs/base.yaml` (sections `model`, `data`, `criterion`, `training`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from panst3r_core.losses.criterion import CriterionConfig
from panst3r_core.losses.pointmap import PointmapLossConfig

AMP_MODES = (False, "bf16", "fp16")
TEXT_EMBEDDERS = ("siglip", "hashed")
OFFICIAL_RESOLUTIONS = [(512, 384), (512, 336), (512, 288), (512, 256), (512, 160)]


@dataclass
class ModelConfig:
    variant: str = "panst3r_v1_512"
    """Registered model variant (`panst3r_core.model.variants`), e.g. panst3r_v1_512, panst3r_v2_512, tiny_v1."""
    text_embeddings: str = "siglip"
    """Class-name embedder: `siglip` (official; needs the SigLIP weights offline) or `hashed` (deterministic,
    no weights; for synthetic training). Recorded in checkpoints so inference uses the same one."""

    def __post_init__(self) -> None:
        if self.text_embeddings not in TEXT_EMBEDDERS:
            raise ValueError(
                f"model.text_embeddings: {self.text_embeddings!r} is not one of {', '.join(TEXT_EMBEDDERS)}"
            )


@dataclass
class DataConfig:
    stores: list[str] = field(default_factory=list)
    """Zarr stores to train on (several = datasets concatenated with one global vocabulary)."""
    num_views: int = 5
    """Views per training sample (`_num_views`)."""
    min_memory_num_views: int = 2
    """Smallest number of memory views drawn per batch (`db_options.min_memory_num_views`)."""
    max_memory_num_views: int = 5
    """Largest number of memory views drawn per batch (`db_options.max_memory_num_views`)."""
    aug_crop: int = 16
    """Random zoom margin in pixels added to the crop size (`db_options.aug_crop`)."""
    resolutions: list[tuple[int, int]] = field(default_factory=lambda: list(OFFICIAL_RESOLUTIONS))
    """(W, H) training resolutions; one is drawn per batch (`train_options.resolution`)."""
    color_jitter: bool = True
    """ColorJitter(0.5, 0.5, 0.5, 0.1) per view (`train_options.transform`)."""
    samples_per_epoch: int = 10000
    """Samples drawn per epoch over all ranks (`train_options.ds_size`)."""
    split: str | None = "train"
    """Train on the scenes of this split (null = all scenes); a store without split labels contributes all
    of its scenes."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_memory_num_views <= self.max_memory_num_views:
            raise ValueError(
                f"data: need 1 <= min_memory_num_views ({self.min_memory_num_views}) <= max_memory_num_views "
                f"({self.max_memory_num_views})"
            )
        if self.num_views < 1:
            raise ValueError(f"data.num_views: must be >= 1, got {self.num_views}")
        if not self.resolutions:
            raise ValueError("data.resolutions: give at least one [W, H] pair")
        for width, height in self.resolutions:
            if width < 16 or height < 16 or width % 16 or height % 16 or height > width:
                raise ValueError(
                    f"data.resolutions: {width}x{height} must be a landscape [W, H] (W >= H: portrait views are "
                    "turned landscape), each side a positive multiple of 16 (the patch size), e.g. [[512, 384]]"
                )


@dataclass
class TrainingConfig:
    objective: str = "panoptic"
    """What the run optimises (`panst3r_core.engine.objectives`): `panoptic` (PanSt3R's head, official),
    `pointmap` (MUSt3R's 3-D pretraining of the encoder/decoder on the views' depth and poses) or
    `panoptic_pointmap` (the head with the backbone fine-tuned under both losses)."""
    seed: int = 777
    """Base seed: global seed + rank, per epoch seed + epoch * world_size + rank, sampler seed (seed, epoch)."""
    batch_size: int = 2
    """Samples per rank per iteration."""
    accum_iter: int = 2
    """Iterations accumulated per optimizer step."""
    epochs: int = 200
    """Number of epochs."""
    lr: float | None = 1e-4
    """Absolute learning rate; null = blr * effective batch / 256."""
    blr: float = 1.5e-4
    """Base learning rate, used only when lr is null."""
    min_lr: float = 1e-6
    """Floor of the cosine schedule."""
    warmup_epochs: float = 5
    """Linear warm-up from 0 over this many (fractional) epochs."""
    weight_decay: float = 0.05
    """AdamW weight decay (0 for `.bias` and parameters whose name contains `norm`)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    amp: bool | str = False
    """Autocast dtype of the forward: false (fp32), bf16 or fp16 (fp16 on CUDA only, with a GradScaler)."""
    finetune_must3r_encoder: bool = False
    """Train the MUSt3R encoder (frozen officially; needed to learn from scratch on synthetic data)."""
    finetune_must3r_decoder: bool = False
    """Train the MUSt3R decoder."""
    finetune_dino: bool = False
    """Train the DINOv2 encoder."""
    must3r_chkpt: str | None = None
    """MUSt3R checkpoint to initialise the encoder/decoder from ("train from MUSt3R"): an official MUSt3R
    .pth, or our format (e.g. a pointmap run's model-final), of which only the MUSt3R weights are loaded;
    ignored when auto-resuming."""
    chkpt: str | None = None
    """PanSt3R checkpoint to initialise the whole model from ("fine-tune from PanSt3R"): an official .pth,
    our format, or `shipped:NAME` for a model shipped with the package; loaded after must3r_chkpt; ignored
    when auto-resuming."""
    output_dir: str = "runs/train"
    """Checkpoints and logs go here; an existing checkpoint-last here is resumed."""
    resume: bool = True
    """Auto-resume from output_dir/checkpoint-last when present."""
    keep_freq: int = 10
    """Also keep checkpoint-<epoch> when epoch % keep_freq == 0 (0 = never)."""
    checkpoint_every_steps: int = 0
    """Also write checkpoint-last every this many optimizer steps inside an epoch (0 = only at epoch ends)."""
    print_freq: int = 20
    """Log (all-reduced) metrics every this many optimizer steps."""
    max_steps_per_epoch: int | None = None
    """Cap on optimizer steps per epoch (small CPU runs); null = the whole epoch."""
    num_workers: int = 8
    """DataLoader worker processes per rank."""
    disable_tf32: bool = False
    """Keep fp32 matmuls exact on Ampere+ GPUs (TF32 is on by default, as officially)."""
    find_unused_parameters: bool = False
    """DDP option; needed when a fine-tuned module has parameters the loss never reaches."""
    distributed: bool = False
    """Expect a process group (the torchrun worker initialises it; `distributed.yaml` sets true)."""
    lr_scales: dict[str, float] = field(default_factory=dict)
    """Learning-rate multipliers by parameter name: a trainable parameter whose name is a key, ends with
    `.<key>` or starts with `<key>.` gets lr x value (the longest matching key wins); e.g.
    `{cls_logit_scale: 50}` lets the class head's log-temperature grow at a useful pace when training from
    scratch, `{must3r_encoder: 0.1}` fine-tunes a pretrained backbone gently. A key that matches no
    trainable parameter is an error. Empty = official (one learning rate)."""
    clip_grad: float | None = None
    """Clip the total gradient norm (over all trainable parameters) to this value before every optimizer
    step; null = no clipping (official). Useful when training backbones from scratch."""
    time_budget_s: float | None = None
    """Seconds this launch may train (counted from the loop's start): once exceeded, the run stops at the
    next optimizer step, writes checkpoint-last and returns unfinished; launching again resumes exactly.
    null = no limit. Not part of the training maths: change it freely between launches."""

    def __post_init__(self) -> None:
        from panst3r_core.engine.objectives import OBJECTIVES  # the registry imports this module

        OBJECTIVES.get(self.objective)  # an unknown name lists the registered ones
        if self.amp not in AMP_MODES:
            raise ValueError(f"training.amp: {self.amp!r} is not one of false, bf16, fp16")
        for name in ("batch_size", "accum_iter", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"training.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "print_freq", "keep_freq", "checkpoint_every_steps", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"training.{name}: must be >= 0, got {getattr(self, name)}")
        if (self.lr is not None and self.lr <= 0) or self.blr <= 0:
            raise ValueError(f"training.lr / blr: must be > 0, got lr {self.lr}, blr {self.blr}")
        if not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f"training.betas: each must be in [0, 1), got {list(self.betas)}")
        for key, scale in self.lr_scales.items():
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
                raise ValueError(f"training.lr_scales.{key}: must be a number > 0, got {scale!r}")
        self.lr_scales = {str(key): float(scale) for key, scale in self.lr_scales.items()}
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"training.clip_grad: must be > 0 or null, got {self.clip_grad}")
        if self.time_budget_s is not None and self.time_budget_s < 0:
            raise ValueError(f"training.time_budget_s: must be >= 0 or null, got {self.time_budget_s}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(
                f"training.max_steps_per_epoch: must be >= 1 or null, got {self.max_steps_per_epoch}"
            )


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data itself."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Which model to build."""
    data: DataConfig = field(default_factory=DataConfig)
    """Sampling and augmentation of the training data."""
    criterion: CriterionConfig = field(default_factory=CriterionConfig)
    """Loss weights and point sampling of the panoptic objective."""
    pointmap: PointmapLossConfig = field(default_factory=PointmapLossConfig)
    """Settings of the pointmap loss (objectives `pointmap` and `panoptic_pointmap`)."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Optimisation, precision, checkpointing."""
