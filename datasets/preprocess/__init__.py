"""Pure preprocessing of one ScanNet++ scene: undistort, rescale, render depth and panoptic ids."""
