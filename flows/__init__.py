"""Orchestration: Prefect flows and tasks, Dask cluster choice, torchrun launch, MLflow logging, the CLI."""
