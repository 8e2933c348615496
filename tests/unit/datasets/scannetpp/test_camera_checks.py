"""Impossible intrinsics are refused where cameras.txt is read, naming the file, line and field."""

import numpy as np
import pytest

from datasets.preprocess.errors import BadSceneInput
from datasets.preprocess.undistort import undistortion_maps
from datasets.scannetpp import colmap
from datasets.scannetpp.camera_checks import camera_problems
from datasets.scannetpp.record import CameraModel

GOOD = CameraModel("OPENCV_FISHEYE", 1752, 1168, (789.5, 790.25, 876.0, 584.0, 0.01, -0.002, 0.0, 0.0))


def _with(**changes) -> CameraModel:
    names = ("fx", "fy", "cx", "cy")
    params = list(GOOD.params)
    for name, value in changes.items():
        params[names.index(name)] = value
    return CameraModel(GOOD.model, GOOD.width, GOOD.height, tuple(params))


def test_a_real_camera_passes():
    assert camera_problems(GOOD) == []
    assert camera_problems(CameraModel("SIMPLE_PINHOLE", 640, 480, (500.0, 320.0, 240.0))) == []


@pytest.mark.parametrize(
    "camera, words",
    [
        (_with(fx=-789.5), "focal length"),
        (_with(fy=0.0), "focal length"),
        (_with(cx=1800.0), "principal point"),
        (_with(cy=-3.0), "principal point"),
        (_with(fx=float("nan")), "NaN"),
        (CameraModel("PINHOLE", 0, 480, (500.0, 500.0, 320.0, 240.0)), "WIDTH HEIGHT"),
        (CameraModel("SIMPLE_RADIAL", 640, 480, (-500.0, 320.0, 240.0, 0.1)), "focal length"),
    ],
)
def test_impossible_intrinsics_are_named(camera, words):
    problems = camera_problems(camera)
    assert problems and words in problems[0]


def test_read_cameras_names_file_line_and_camera(tmp_path):
    path = tmp_path / "cameras.txt"
    colmap.write_cameras(path, {1: GOOD, 2: _with(fx=-789.5)})
    with pytest.raises(ValueError, match=r"cameras\.txt: line 5: CAMERA_ID 2: impossible OPENCV_FISHEYE.*fx=-789\.5"):
        colmap.read_cameras(path)


def test_single_focal_models_read_their_own_layout():
    radial = CameraModel("RADIAL", 640, 480, (500.0, 320.0, 240.0, 0.1, 0.01))
    assert (radial.fx, radial.fy, radial.cx, radial.cy, radial.distortion) == (
        500.0,
        500.0,
        320.0,
        240.0,
        (0.1, 0.01),
    )


def test_distortion_no_lens_has_fails_the_undistortion():
    # Positive focal lengths, but coefficients that make OpenCV's new camera degenerate: a fisheye k1 of
    # -50 gives a NaN focal length, a tangential p1 of 1e5 a negative one.
    for model, distortion in (("OPENCV_FISHEYE", (-50.0, 0.0, 0.0, 0.0)), ("OPENCV", (0.0, 0.0, 1e5, 0.0))):
        wild = CameraModel(model, 640, 480, (500.0, 500.0, 320.0, 240.0, *distortion))
        with pytest.raises(BadSceneInput, match="cannot be undistorted"):
            undistortion_maps(wild)
    maps = undistortion_maps(CameraModel("PINHOLE", 640, 480, (500.0, 500.0, 320.0, 240.0)))
    assert np.isfinite(maps.intrinsics).all()
