"""The versioned Zarr v3 store of preprocessed scenes and its derived Parquet tables.

Writers commit one scene group at a time by an atomic directory rename; the tables are rebuilt from the
committed groups, so they never list a half-written scene.
"""
