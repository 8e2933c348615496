import socket

import numpy as np
import pytest

from flows.demo.viewer import (
    SceneViewer,
    blend_segment_colors,
    label_anchors,
    select_points,
    thumbnail,
    vertical_fov,
)


def test_blend_keeps_void_and_mixes_segments():
    rgb = np.array([[100, 100, 100], [100, 100, 100], [0, 0, 0]], np.uint8)
    seg = np.array([0, 1, 7])
    colors = {1: (200, 0, 0)}
    out = blend_segment_colors(rgb, seg, colors, opacity=0.5)
    np.testing.assert_array_equal(out[0], [100, 100, 100])  # void keeps its colour
    np.testing.assert_array_equal(out[1], [150, 50, 50])
    np.testing.assert_array_equal(out[2], [0, 0, 0])  # id without a colour
    np.testing.assert_array_equal(blend_segment_colors(rgb, seg, colors, 1.0)[1], [200, 0, 0])
    np.testing.assert_array_equal(blend_segment_colors(rgb, seg, colors, 0.0), rgb)


def test_select_points_threshold_and_local_vs_global(reconstruction):
    everything = select_points(reconstruction, 0.0, use_local=True)
    total = sum(ids.size for ids in reconstruction.panoptic)
    assert everything.xyz.shape == (total, 3) and everything.rgb.shape == (total, 3)
    strict = select_points(reconstruction, 6.0, use_local=True)
    expected = sum(int((c >= 6.0).sum()) for c in reconstruction.confidence)
    assert len(strict.xyz) == expected and 0 < expected < total
    # the stand-in's world points are its local points moved by c2w, so both modes agree
    glob = select_points(reconstruction, 0.0, use_local=False)
    np.testing.assert_allclose(everything.xyz, glob.xyz, atol=1e-5)


def test_label_anchor_is_the_median_of_the_segment(reconstruction):
    points = select_points(reconstruction, 0.0, use_local=True)
    anchors = label_anchors(points)
    assert set(anchors) == {1, 2}
    np.testing.assert_allclose(anchors[2], np.median(points.xyz[points.seg == 2], axis=0))


def test_camera_helpers():
    assert vertical_fov(100, 50.0) == pytest.approx(np.pi / 2)
    image = np.arange(300 * 400 * 3, dtype=np.uint8).reshape(300, 400, 3)
    small = thumbnail(image, width=100)
    assert small.shape == (75, 100, 3)
    np.testing.assert_array_equal(small[1, 1], image[4, 4])


def _port_is_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_viewer_draws_points_labels_and_cameras(reconstruction):
    viewer = SceneViewer(host="127.0.0.1", port=0)
    try:
        assert _port_is_open(viewer.port)
        viewer.set_scene(reconstruction)
        scene = viewer.server.scene
        points = scene.get_handle_by_name("/points")
        assert points is not None
        expected = sum(int((c >= 3.0).sum()) for c in reconstruction.confidence)
        assert points.points.shape == (expected, 3)
        assert points.point_size == pytest.approx(0.005)
        assert scene.get_handle_by_name("/labels/segment_1").text == "wall"
        assert scene.get_handle_by_name("/labels/segment_2").text == "chair"
        assert scene.get_handle_by_name("/cameras/view_0") is None  # "Show poses" is off by default

        viewer.show_poses.value = True
        frustum = scene.get_handle_by_name("/cameras/view_1")
        assert frustum is not None
        np.testing.assert_allclose(frustum.position, reconstruction.cam_to_world[1, :3, 3], atol=1e-6)

        viewer.show_labels.value = False
        assert scene.get_handle_by_name("/labels/segment_1") is None
        viewer.min_conf.value = 9.5
        assert scene.get_handle_by_name("/points").points.shape[0] < expected
    finally:
        port = viewer.port
        viewer.close()
    assert not _port_is_open(port)


def test_camera_animation_controls_and_clean_stop(reconstruction):
    viewer = SceneViewer(host="127.0.0.1", port=0, camera_animation=True)
    try:
        viewer.set_scene(reconstruction)
        assert viewer.animate is not None and viewer.animate.value is False
        assert (viewer.anim_fps.value, viewer.anim_speed.value, viewer.anim_radius.value) == (60, 1.0, 10.0)
        viewer.animate.value = True
        assert viewer._animation_thread.is_alive()
    finally:
        viewer.close()
    assert not viewer._animation_thread.is_alive()
