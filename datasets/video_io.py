"""Frames of a video file sampled at a given rate, read one at a time (an `ImageSource` for the predictor).

Decoding goes through OpenCV (`opencv-python-headless`, already a dependency, ships FFmpeg). Seeking in
compressed video is approximate for many codecs, so frames are only ever decoded forward: a request for an
earlier frame reopens the file. The streamed predictor asks for the keyframes (ascending), then for the
chunks in order, so a run decodes the video about twice plus the counting pass below.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)


def sampled_frame_indices(num_frames: int, video_fps: float, fps: float) -> list[int]:
    """Indices of the frames kept when sampling `fps` frames per second from a `video_fps` video: the first
    frame of every 1/fps interval (all frames when fps >= video_fps)."""
    step = video_fps / fps
    picks, next_time = [], 0.0
    for index in range(num_frames):
        # a small tolerance so that 30 fps sampled at 10 keeps exactly every third frame
        if index + 1e-6 >= next_time:
            picks.append(index)
            next_time = math.floor(index / step + 1e-6 + 1) * step
    return picks


class VideoFrames:
    """The frames of `path` sampled at `fps` per second, as (H, W, 3) uint8 RGB, read on demand.

    Construction counts the frames (one decoding pass without colour conversion: the container's frame count
    is often wrong) and raises ValueError naming the file for anything unreadable.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video {self.path} does not exist; check the --video argument")
        if not fps > 0:
            raise ValueError(f"--fps {fps} must be positive (frames sampled per second of video)")
        self.fps = float(fps)
        capture = self._open()
        try:
            self.video_fps = float(capture.get(_cv2().CAP_PROP_FPS))
            if not self.video_fps > 0:
                raise ValueError(
                    f"video {self.path} declares no frame rate; re-encode it (e.g. ffmpeg -i IN -r 30 OUT.mp4)"
                )
            num_frames = 0
            while capture.grab():
                num_frames += 1
        finally:
            capture.release()
        if num_frames == 0:
            raise ValueError(f"video {self.path} has no decodable frames; check the file or re-encode it")
        self.num_frames = num_frames
        self.frames = sampled_frame_indices(num_frames, self.video_fps, self.fps)
        self._capture = None
        self._position = 0  # index of the next frame the open capture decodes
        self._height_width = self._first_frame_size()

    def __len__(self) -> int:
        return len(self.frames)

    def size(self, index: int) -> tuple[int, int]:
        return self._height_width

    def read(self, index: int) -> np.ndarray:
        frame = self.frames[index]
        if self._capture is None or frame < self._position:
            self.close()
            self._capture, self._position = self._open(), 0
        while self._position < frame:
            if not self._capture.grab():
                raise self._truncated(frame)
            self._position += 1
        ok, bgr = self._capture.read()
        if not ok:
            raise self._truncated(frame)
        self._position += 1
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        if rgb.shape[:2] != self._height_width:
            raise ValueError(
                f"video {self.path}: frame {frame} is {rgb.shape[1]}x{rgb.shape[0]}, the first was "
                f"{self._height_width[1]}x{self._height_width[0]}; videos that change size are not supported"
            )
        return rgb

    @property
    def names(self) -> list[str]:
        """View names: the source frame numbers, zero-padded so that file names sort in time order."""
        digits = len(str(self.num_frames - 1))
        return [f"frame_{frame:0{digits}d}" for frame in self.frames]

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _first_frame_size(self) -> tuple[int, int]:
        capture = self._open()
        try:
            ok, bgr = capture.read()
        finally:
            capture.release()
        if not ok:
            raise ValueError(f"video {self.path}: the first frame cannot be decoded; re-encode the video")
        return int(bgr.shape[0]), int(bgr.shape[1])

    def _open(self):
        capture = _cv2().VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise ValueError(
                f"cannot open video {self.path}: not a video OpenCV/FFmpeg can decode; "
                "pass a video file (mp4, avi, mkv, ...) to --video or extract frames and use --images"
            )
        return capture

    def _truncated(self, frame: int) -> ValueError:
        return ValueError(
            f"video {self.path}: frame {frame} of {self.num_frames} could not be decoded (the file changed or "
            "is damaged); re-encode the video"
        )


def _cv2():
    import cv2  # imported on use: reading images must not pay for OpenCV's start-up

    return cv2
