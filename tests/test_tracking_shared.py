"""Face tracking on real media, MediaPipe's golden blendshapes and rendered ICT heads (needs ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.core.errors import AvatarInputError
from drivers.tracking import TrackerConfig, track_frames, track_landmarks, track_video

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def videos(shared):
    return shared / "media" / "videos"


def test_golden_blendshapes_correlate(shared):
    """Our weights for MediaPipe's blendshape test landmarks agree with MediaPipe's own blendshape network."""
    from research.tracking.evaluation import load_blendshape_golden, to_arkit52

    landmarks, scores, image_size = load_blendshape_golden(shared / "data" / "mediapipe_canonical_face" / "blendshape_golden")
    result = track_landmarks([[landmarks]], image_size)
    ours = to_arkit52(result.weights.numpy()[0], result.expression_names)
    keys = sorted(k for k in scores if k in ours)
    assert len(keys) == 51
    corr = np.corrcoef([ours[k] for k in keys], [scores[k] for k in keys])[0, 1]
    assert corr > 0.3
    strongest = sorted(keys, key=lambda k: -scores[k])[:4]  # smile and brow-down, both sides
    assert np.mean([ours[k] for k in strongest]) > 0.3


def test_video_without_audio_and_silent_video(videos):
    for name in ("d0.mp4", "d18.mp4"):
        result = track_video(videos / name)
        assert result.num_frames > 60
        assert float(result.face_found.float().mean()) > 0.9
        assert np.isfinite(result.weights.numpy()).all()
        assert np.degrees(np.abs(result.head_rotation.numpy())).max() < 60


def test_follows_the_main_face_among_two(videos):
    """Two people side by side: the one chosen first is followed even when the other becomes the larger."""
    from PIL import Image

    from drivers.media import iter_frames

    left = [f.image for _, f in zip(range(36), iter_frames(videos / "d0.mp4", 30.0))]
    right = [f.image for _, f in zip(range(36), iter_frames(videos / "WDA_AlexandriaOcasioCortez_000.mp4", 30.0))]
    frames = []
    for k, (a, b) in enumerate(zip(left, right)):
        canvas = np.full((320, 640, 3), 90, np.uint8)
        size_left, size_right = (300, 200) if k < 18 else (200, 320)  # the right face outgrows the left one
        canvas[10 : 10 + size_left, 10 : 10 + size_left] = np.asarray(Image.fromarray(a).resize((size_left, size_left)))
        canvas[: size_right, 640 - size_right :] = np.asarray(Image.fromarray(b).resize((size_right, size_right)))
        frames.append(canvas)
    result = track_frames(frames, 30.0, TrackerConfig(identity_window=10))
    found = result.face_found.numpy()
    assert found.mean() > 0.9
    centre_x = result.landmarks.numpy()[found, :, 0].mean(1)
    assert (centre_x < 0.5).all()  # always the left person
    assert int(result.num_faces.max()) >= 2  # (MediaPipe may report a face twice while re-detecting)


def test_bad_inputs(shared, tmp_path, videos):
    from drivers.media import write_video

    with pytest.raises(AvatarInputError):
        track_video(shared / "media" / "audio" / "RD_Radio31_000.wav")  # audio only
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(AvatarInputError):
        track_video(empty)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((videos / "d0.mp4").read_bytes()[:2000])
    with pytest.raises(AvatarInputError):
        track_video(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(AvatarInputError):
        track_video(text)
    blank = tmp_path / "blank.mp4"
    write_video(blank, [np.full((128, 128, 3), 120, np.uint8)] * 8, fps=30.0)
    with pytest.raises(AvatarInputError, match="no face"):
        track_video(blank)


def test_rendered_jaw_opening_is_tracked(shared):
    """A rendered ICT head opening its mouth: the tracked jawOpen rises with the true one."""
    from avatar.morphable.ict import load_ict_facekit
    from research.tracking.evaluation import SyntheticFaceRenderer

    ict = load_ict_facekit()
    renderer = SyntheticFaceRenderer(ict, image_size=(320, 320))
    names = ict.expression_names
    count = 14
    weights = np.zeros((count, 53))
    weights[:, names.index("jawOpen")] = np.r_[np.zeros(6), np.linspace(0.1, 0.9, count - 6)]
    rotation = np.zeros((count, 3))
    rotation[:, 1] = np.linspace(-0.1, 0.1, count)
    frames = renderer.render(np.random.default_rng(5).standard_normal(60) * 0.7, weights, rotation, np.zeros((count, 3)))
    result = track_frames(list(frames), 30.0, TrackerConfig(identity_window=6))
    jaw = result.weights.numpy()[:, names.index("jawOpen")]
    assert np.corrcoef(jaw, weights[:, names.index("jawOpen")])[0, 1] > 0.9
    assert jaw[-1] > 0.5 and jaw[:6].max() < 0.2
