"""Names of the training loop's per-window timings in its logged metrics (metrics.jsonl, MLflow), beside the
losses. Torch-free, so that the launch side (`flows.run_folder`) reads them without importing the engine."""

ITERATION_SECONDS = "iteration_s"
"""Mean seconds of a loader batch's iteration in the window (checkpoint writes included)."""
DATA_WAIT_SECONDS = "data_wait_s"
"""Mean seconds of it spent waiting for the loader."""
