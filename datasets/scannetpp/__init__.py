"""ScanNet++ v2 on-disk format: readers (and the writers used by the synthetic generator)."""
