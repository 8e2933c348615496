"""Every MLflow tag, param, artifact and metric-prefix name the project writes or reads back, and the
environment variables that hand a run to the torchrun workers. Plain strings, no MLflow import: the flows that write
runs, `compare` that reads them and the launcher all take the names from here.
"""

from __future__ import annotations

# ---------------------------------------------------------------------- handing a run to the workers
RUN_ID_ENV = "MLFLOW_RUN_ID"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

# ---------------------------------------------------------------------- MLflow's own tags
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

# ---------------------------------------------------------------------- evaluation sweeps
SWEEP_ROLE_TAG = "panst3r.sweep"
"""On every run of the `evaluate` flow: SWEEP_PARENT for a sweep, SWEEP_CHILD for one configuration."""
SWEEP_PARENT = "parent"
SWEEP_CHILD = "child"
SWEEP_KEY_TAG = "panst3r.sweep_key"
"""Hash of what a sweep evaluated (store content, checkpoint files, settings): equal keys, equal results."""
BEST_RUN_TAG = "best_run_id"
STORE_TAG = "store"

# params of a configuration run (the columns `compare` reads) and of the sweep's parent run
CHECKPOINT = "checkpoint"
CHECKPOINT_LABEL = "checkpoint_label"
"""A param and a tag of a configuration run."""
VARIANT = "variant"
POSTPROCESS = "postprocess"
KEYFRAMES = "keyframes"
SPLIT = "split"
MAX_VIEWS = "max_views"
IMAGE_SIZE = "image_size"
DEVICE = "device"
STORE = "store"
QUERY_VOCABULARY = "query_vocabulary"
NUM_SCENES = "num_scenes"
MEMORY_KIND = "memory_kind"
CHECKPOINTS = "checkpoints"
NUM_CONFIGURATIONS = "num_configurations"

# artifacts of the sweep's runs
TABLES_ARTIFACTS = "tables"
"""Folder of the table artifacts: <table>.parquet and <table>.csv."""
PER_SCENE_TABLE = "per_scene"
PER_CLASS_TABLE = "per_class"
SWEEP_TABLE = "sweep"
PICTURES_ARTIFACTS = "vis"
RESULT_ARTIFACT = "result.json"


def table_artifact(table: str) -> str:
    """Artifact path of a table's Parquet file."""
    return f"{TABLES_ARTIFACTS}/{table}.parquet"


# ---------------------------------------------------------------------- training runs
RUN_DIR_TAG = "run_dir"
CONFIG_NAME_TAG = "config_name"
STORE_SCHEMA_TAG = "store.schema_version"
STORE_CONTENT_TAG = "store.content_hash"
STORE_VERSION_TAG = "store.version"
"""The exact data a run read: an object store's Icechunk snapshot id (the run reads that snapshot only) or a
directory store's content hash; comma-joined in store order when a run reads several."""
STORE_VERSION_KIND_TAG = "store.version_kind"
"""`snapshot` or `content_hash`, per store like STORE_VERSION_TAG."""
STORES_TAG = "stores"
TEXT_EMBEDDINGS_TAG = "text_embeddings"
NPROC_TAG = "nproc_per_node"
RESUMED_FROM_TAG = "resumed_from"
GIT_COMMIT_TAG = "git_commit"
FINAL_CHECKPOINT_TAG = "final_checkpoint"
EXPORTED_MODEL_TAG = "exported_model"
LAST_CHECKPOINT_TAG = "last_checkpoint"
LAUNCH_NPROC_PARAM = "launch.nproc_per_node"
LAUNCH_NNODES_PARAM = "launch.nnodes"
LAUNCH_CONFIG_PARAM = "launch.config"
"""Besides these, every resolved config value is a param named `section.key`."""
TRAIN_METRIC_PREFIX = "train/"
EPOCH_METRIC_PREFIX = "epoch/"


def throughput_metric(rank: int) -> str:
    return f"throughput/samples_per_s_rank{rank}"
