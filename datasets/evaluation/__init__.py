"""Evaluation of a model on a store's ground truth: predict each scene (`scene_run`, with the Predictor),
turn store ids and predicted segments into the (class, instance) maps `panst3r_core.metrics` scores
(`label_maps`), score and aggregate both PQ modes (`scene_scores`), and sweep one configuration over the
scenes with its time and memory (`sweep`). No Prefect, no MLflow: the `evaluate` flow logs the results."""
