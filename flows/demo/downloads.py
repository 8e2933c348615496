"""The results of one demo run as a single zip: GLB, PLY, per-view panoptic PNGs, segments.json.

Files are written by the same exporter as `panst3r predict` (datasets.prediction_export) into the
session's own run folder, then zipped next to it; nothing is shared between sessions.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from datasets.prediction_export import ExportOptions, export_reconstruction
from panst3r_core.reconstruction import PanopticReconstruction

ZIP_NAME = "panst3r_results.zip"


def write_results_zip(
    recon: PanopticReconstruction, run_dir: Path, min_confidence: float = 3.0
) -> tuple[Path, list[str]]:
    """Export `recon` under `run_dir/results/` and zip it as `run_dir/panst3r_results.zip`.

    Returns the zip path and its member names (relative, '/'-separated, sorted). Members:
    scene.glb, scene.ply, segments.json, panoptic.json, cameras.json, panoptic/<view>.png (ids encoded
    R + 256 G + 65536 B), panoptic_vis/<view>.png.
    """
    results = run_dir / "results"
    export_reconstruction(recon, results, ExportOptions(min_confidence=min_confidence))
    members = sorted(p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file())
    zip_path = run_dir / ZIP_NAME
    # PNG and GLB are already compressed; deflate still shrinks the PLY and the JSON files a lot.
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in members:
            archive.write(results / name, arcname=name)
    return zip_path, members
