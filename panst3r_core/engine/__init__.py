"""Training engine: typed config, optimizer and schedule, deterministic sampler, checkpoints, the loop."""

from panst3r_core.engine.batch import TrainBatch
from panst3r_core.engine.callbacks import IterationRecord, JsonlMetricsWriter, TrainCallback
from panst3r_core.engine.checkpointing import find_resume_checkpoint, load_weights
from panst3r_core.engine.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
from panst3r_core.engine.loop import TrainData, TrainResult, seed_everything, train
from panst3r_core.engine.sampler import BatchedViewSampler, SampleKey

__all__ = [
    "BatchedViewSampler",
    "DataConfig",
    "IterationRecord",
    "JsonlMetricsWriter",
    "ModelConfig",
    "SampleKey",
    "TrainBatch",
    "TrainCallback",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "TrainingConfig",
    "find_resume_checkpoint",
    "load_weights",
    "seed_everything",
    "train",
]
