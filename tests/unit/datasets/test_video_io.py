"""Video frames sampled at a rate, read on demand, with clear errors for files that are not videos."""

import cv2
import numpy as np
import pytest

from datasets.video_io import VideoFrames, sampled_frame_indices


def _write_video(path, num_frames: int, fps: float, size=(64, 48)):
    """Frame k is flat grey 10 k: its level tells which frame a read returned (MJPG keeps flat levels)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for k in range(num_frames):
        writer.write(np.full((size[1], size[0], 3), 10 * k, np.uint8))
    writer.release()
    return path


def test_sampling_keeps_the_first_frame_of_every_interval():
    assert sampled_frame_indices(20, 10.0, 2.0) == [0, 5, 10, 15]
    assert sampled_frame_indices(10, 30.0, 10.0) == [0, 3, 6, 9]
    assert sampled_frame_indices(4, 10.0, 25.0) == [0, 1, 2, 3]  # faster than the video: every frame
    # NTSC rate: the last of 300 frames shows t = 9.98 s, so the t = 10 s sample does not exist
    assert sampled_frame_indices(300, 29.97, 1.0) == list(range(0, 300, 30))


def test_frames_are_sampled_at_the_rate_and_read_in_any_order(tmp_path):
    video = VideoFrames(_write_video(tmp_path / "clip.avi", 20, 10.0), fps=2.0)
    assert len(video) == 4 and video.num_frames == 20 and video.size(0) == (48, 64)
    assert video.names == ["frame_00", "frame_05", "frame_10", "frame_15"]
    for index in (1, 3, 0, 2):  # a backwards request reopens the file
        frame = video.read(index)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert abs(int(np.median(frame)) - 10 * video.frames[index]) <= 3
    video.close()


def test_bad_videos_give_one_clear_error(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    with pytest.raises(ValueError, match=r"notes\.mp4.*--video"):
        VideoFrames(fake, fps=1.0)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        VideoFrames(tmp_path / "missing.mp4", fps=1.0)
    with pytest.raises(ValueError, match="--fps"):
        VideoFrames(_write_video(tmp_path / "ok.avi", 3, 10.0), fps=0)
