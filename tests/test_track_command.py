"""``avatar track``: outputs on a real clip, and bad input as a one-line error with nothing written."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.errors import AvatarInputError
from drivers.motion import Motion
from drivers.track_command import output_paths, run_track_command


def test_output_paths(tmp_path):
    motion, csv = output_paths(tmp_path / "clip.mp4", None, csv=True)
    assert motion.name == "clip.motion.npz" and csv.name == "clip.csv"
    motion, csv = output_paths(tmp_path / "clip.mp4", tmp_path / "take.motion.npz", csv=False)
    assert motion == tmp_path / "take.motion.npz" and csv is None
    with pytest.raises(AvatarInputError, match="motion.npz"):
        output_paths(tmp_path / "clip.mp4", tmp_path / "take.txt", csv=False)


def test_audio_only_and_missing_clips_are_rejected(tmp_path, shared):
    with pytest.raises(AvatarInputError, match="no video stream"):
        run_track_command(shared / "media/audio/RD_Radio31_000.wav", tmp_path / "a.motion.npz")
    with pytest.raises(AvatarInputError):
        run_track_command(tmp_path / "missing.mp4", tmp_path / "b.motion.npz")
    assert not list(tmp_path.iterdir())


def test_track_real_clip_writes_motion_and_csv(tmp_path, shared):
    out = tmp_path / "d0.motion.npz"
    result = run_track_command(shared / "media/videos/d0.mp4", out, csv=True)  # 3.1 s, no audio track
    motion = Motion.load(out)
    assert motion.weights.shape == (result.frames, 53) and abs(result.frames - 94) <= 1
    assert result.frames_with_face > 0.9 * result.frames
    assert np.isfinite(motion.weights).all() and motion.weights.max() > 0.1  # the face moves
    header = (tmp_path / "d0.csv").read_text().splitlines()[0]
    assert header.startswith("Timecode,BlendShapeCount,EyeBlinkLeft")
    with pytest.raises(AvatarInputError, match="exists"):
        run_track_command(shared / "media/videos/d0.mp4", out)
