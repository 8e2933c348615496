"""Keyframe inference: images in, pointmaps, cameras and multi-view panoptic logits out."""
