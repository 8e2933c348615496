"""Batch prediction over many scenes: what to predict (scene sources), how (settings), where the outputs go
(one folder per scene, committed atomically, with a manifest), and which scenes are already up to date.
The Prefect flow `predict-batch` (flows/predict_batch.py) only fans these functions out over Dask."""
