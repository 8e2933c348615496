"""Evaluation of predictions against a store's ground truth: store panoptic ids and predicted segments ->
the (class, instance) maps and COCO panoptic images that `panst3r_core.metrics` scores, per scene.

Pure functions (numpy only); the Prefect flow `flows.evaluate` runs inference and logs the results."""
