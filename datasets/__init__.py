"""Readers and writers of scene data: synthetic ScanNet++ generator, ScanNet++ reader, preprocessing,
Zarr/Parquet store, torch Dataset over the store, legacy export. Never imports prefect or mlflow."""
