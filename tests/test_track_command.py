"""``avatar track``: outputs on a real clip, and bad input as a one-line error with nothing written."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.commands.track import output_paths, run_track_command
from avatar.core.errors import AvatarInputError
from avatar.core.motion import Motion


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


def test_track_preview_is_the_clip_beside_the_avatar(tmp_path, shared):
    """``--preview``: one side-by-side frame per motion frame, the clip's audio, the avatar moving with it."""
    from drivers import media
    from drivers.tracking.preview import PREVIEW_BATCH, PREVIEW_HEIGHT

    clip = shared / "media/videos/pyfeat_single_face.mp4"  # 2.4 s, 640 x 360, with an audio track
    preview = tmp_path / "side.mp4"
    result = run_track_command(clip, tmp_path / "take.motion.npz", preview=preview)
    assert result.frames > PREVIEW_BATCH  # more than one drawing batch
    frames = [f.image for f in media.iter_frames(preview, fps=None)]
    assert len(frames) == result.frames
    height, width, _ = frames[0].shape  # the clip scaled to the preview height, then the avatar (H.264: even width)
    assert height == PREVIEW_HEIGHT and abs(width - (round(640 * PREVIEW_HEIGHT / 360) + PREVIEW_HEIGHT)) <= 1
    avatar_side = np.stack([f[:, -PREVIEW_HEIGHT:] for f in frames]).astype(np.float32)
    assert (avatar_side.std(axis=0) > 8).mean() > 0.005  # the drawn head moves over the clip
    assert media.probe(preview, check_silence=False).has_audio
