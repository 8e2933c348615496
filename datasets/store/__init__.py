"""The versioned Zarr v3 store of preprocessed scenes and its derived Parquet tables.

Writers commit one scene group at a time in one atomic step: a directory rename for a local store, an
Icechunk transaction for a store in an S3-compatible object store (backend.py); the tables are rebuilt
from the committed groups, so they never list a half-written scene.
"""
