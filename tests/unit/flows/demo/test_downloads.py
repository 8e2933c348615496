import io
import json
import zipfile

import numpy as np
import trimesh
from PIL import Image

from flows.demo.downloads import write_results_zip


def test_zip_holds_glb_ply_pngs_and_segments(reconstruction, tmp_path):
    run_dir = tmp_path / "run_001"
    run_dir.mkdir()
    zip_path, members = write_results_zip(reconstruction, run_dir)
    assert zip_path.parent == run_dir and zip_path.is_file()
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == members
        for name in ("scene.glb", "scene.ply", "segments.json"):
            assert name in members
        pngs = sorted(m for m in members if m.startswith("panoptic/"))
        assert len(pngs) == reconstruction.num_views
        segments = json.loads(archive.read("segments.json"))
        ids_in_json = {s["id"] for s in segments["segments"]}
        for v, name in enumerate(pngs):
            rgb = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            np.testing.assert_array_equal(ids, reconstruction.panoptic[v])
            assert set(np.unique(ids)) - {0} <= ids_in_json
        glb = trimesh.load(io.BytesIO(archive.read("scene.glb")), file_type="glb")
        assert isinstance(glb, trimesh.Scene) and len(glb.geometry) > 0
        ply = trimesh.load(io.BytesIO(archive.read("scene.ply")), file_type="ply")
        assert len(ply.vertices) == sum(int((c >= 3.0).sum()) for c in reconstruction.confidence)
