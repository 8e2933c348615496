"""Preprocessing of ScanNet++ scenes: the pure per-scene steps (undistort, rescale, render depth and panoptic
ids) and the scene job that reads, preprocesses and commits one scene into a store, with the skip/redo
decision made before it (`scene_job`)."""
