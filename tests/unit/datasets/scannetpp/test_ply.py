"""PLY write/read round trips, interoperability with trimesh, and clear errors on corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from datasets.scannetpp.ply import read_ply, write_ply


def _mesh(rng: np.random.Generator, n: int = 50, f: int = 80):
    vertices = rng.normal(size=(n, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    faces = rng.integers(0, n, size=(f, 3))
    return vertices, colors, faces


def test_binary_round_trip_is_exact(tmp_path):
    vertices, colors, faces = _mesh(np.random.default_rng(0))
    label = np.arange(50, dtype=np.int32) - 100
    path = tmp_path / "mesh.ply"
    write_ply(path, vertices, colors, faces, vertex_properties={"label": label})
    mesh = read_ply(path)
    np.testing.assert_array_equal(mesh.vertices, vertices)
    np.testing.assert_array_equal(mesh.colors, colors)
    np.testing.assert_array_equal(mesh.faces, faces)
    np.testing.assert_array_equal(mesh.vertex_properties["label"], label)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert "property list uchar int vertex_indices" in header
    assert "property uchar red" in header and "property float x" in header


def test_trimesh_reads_our_file_without_merging_vertices(tmp_path):
    vertices, colors, faces = _mesh(np.random.default_rng(1))
    path = tmp_path / "mesh.ply"
    write_ply(path, vertices, colors, faces)
    loaded = trimesh.load(path, process=False)
    assert loaded.vertices.shape == (50, 3)
    np.testing.assert_allclose(loaded.vertices, vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, faces)
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], colors)


def test_reads_ascii_ply_with_extra_properties_and_comments(tmp_path):
    text = "\n".join(
        [
            "ply",
            "format ascii 1.0",
            "comment exported by a scanner",
            "element vertex 3",
            "property float x",
            "property float y",
            "property float z",
            "property float nx",
            "property float ny",
            "property float nz",
            "property uchar red",
            "property uchar green",
            "property uchar blue",
            "property uchar alpha",
            "element face 1",
            "property list uchar int vertex_indices",
            "end_header",
            "0 0 0 0 0 1 255 0 0 255",
            "1 0 0 0 0 1 0 255 0 255",
            "0 1 0 0 0 1 0 0 255 255",
            "3 0 1 2",
            "",
        ]
    )
    path = tmp_path / "ascii.ply"
    path.write_text(text)
    mesh = read_ply(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])
    np.testing.assert_array_equal(mesh.colors, [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(mesh.vertex_properties["nz"], [1, 1, 1])
    assert set(mesh.vertex_properties) == {"nx", "ny", "nz", "alpha"}


def test_reads_real_style_binary_header_with_normals(tmp_path):
    # Mimic what trimesh/open3d export for real scans: double coordinates, normals, uint vertex_index name.
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype="<f8")
    header = (
        b"ply\nformat binary_little_endian 1.0\ncomment open3d\nelement vertex 4\nproperty double x\n"
        b"property double y\nproperty double z\nproperty double nx\nproperty double ny\nproperty double nz\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nelement face 2\n"
        b"property list uchar uint vertex_index\nend_header\n"
    )
    vtx = np.zeros(4, dtype=[("p", "<f8", 3), ("n", "<f8", 3), ("c", "u1", 3)])
    vtx["p"], vtx["n"], vtx["c"] = vertices, [0, 0, 1], [[9, 8, 7]] * 4
    faces = np.zeros(2, dtype=[("k", "u1"), ("i", "<u4", 3)])
    faces["k"], faces["i"] = 3, [[0, 1, 2], [1, 3, 2]]
    path = tmp_path / "real.ply"
    path.write_bytes(header + vtx.tobytes() + faces.tobytes())
    mesh = read_ply(path)
    np.testing.assert_array_equal(mesh.vertices, vertices.astype(np.float32))
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [1, 3, 2]])
    assert mesh.colors.tolist()[0] == [9, 8, 7]


def test_truncated_file_names_file_and_element(tmp_path):
    vertices, colors, faces = _mesh(np.random.default_rng(2))
    path = tmp_path / "cut.ply"
    write_ply(path, vertices, colors, faces)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(ValueError, match=r"cut\.ply.*truncated.*'face'"):
        read_ply(path)
    path.write_bytes(data[: data.find(b"end_header") + 11 + 100])
    with pytest.raises(ValueError, match=r"cut\.ply.*truncated.*'vertex'"):
        read_ply(path)


def test_corrupt_header_and_missing_file(tmp_path):
    path = tmp_path / "bad.ply"
    path.write_bytes(b"not a ply at all")
    with pytest.raises(ValueError, match=r"bad\.ply.*not a PLY"):
        read_ply(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex x\nend_header\n")
    with pytest.raises(ValueError, match=r"bad\.ply.*line 3.*element"):
        read_ply(path)
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        read_ply(tmp_path / "missing.ply")


def test_quads_are_rejected_and_out_of_range_faces_detected(tmp_path):
    path = tmp_path / "quad.ply"
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n"
        "4 0 1 2 3\n"
    )
    with pytest.raises(ValueError, match="only triangles"):
        read_ply(path)
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n3 0 1 7\n"
    )
    with pytest.raises(ValueError, match="out of range"):
        read_ply(path)


def test_writer_validates_shapes(tmp_path):
    with pytest.raises(ValueError, match="colors must be uint8"):
        write_ply(tmp_path / "x.ply", np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="face indices"):
        write_ply(tmp_path / "x.ply", np.zeros((3, 3)), np.zeros((3, 3), np.uint8), np.array([[0, 1, 3]]))
