"""Google's Face Landmarker as a second estimator: the shipped task file, the mapping to our 53, the blends."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES
from drivers.tracking.face_landmarker import TASK_FILE, GoogleBlendshapes, blend_estimates


def test_the_task_file_ships_with_its_notice():
    assert TASK_FILE.is_file() and TASK_FILE.stat().st_size > 3_000_000
    notice = TASK_FILE.parents[1] / "LICENSES" / "mediapipe-face-landmarker.NOTICE"
    assert "Apache License, Version 2.0" in notice.read_text()


def test_a_smiling_photo_scores_a_smile_and_a_blank_one_no_face(shared):
    photo = np.asarray(Image.open(shared / "media" / "photos" / "single_face.jpg").convert("RGB"))
    with GoogleBlendshapes() as estimator:
        weights = estimator.push(photo)
        assert weights.shape == (53,) and weights.dtype == np.float32
        assert weights[EXPRESSION_NAMES.index("mouthSmile_L")] > 0.5 and weights[EXPRESSION_NAMES.index("mouthSmile_R")] > 0.5
        assert weights[EXPRESSION_NAMES.index("browInnerUp_L")] == weights[EXPRESSION_NAMES.index("browInnerUp_R")]
        assert estimator.push(np.full((256, 256, 3), 128, np.uint8)) is None


def test_blends():
    ours, google = np.full((3, 53), 0.2, np.float32), np.full((3, 53), 0.6, np.float32)
    found = np.array([True, False, True])
    np.testing.assert_array_equal(blend_estimates(ours, google, found, "ours"), ours)
    mediapipe = blend_estimates(ours, google, found, "mediapipe")
    assert np.allclose(mediapipe[[0, 2]], 0.6) and np.allclose(mediapipe[1], 0.2)  # ours where Google saw no face
    with pytest.raises(AvatarInputError, match="unknown estimator"):
        blend_estimates(ours, google, found, "best")


def test_track_with_each_estimator(shared, tmp_path):
    from avatar.api import track

    clip = shared / "media" / "videos" / "pyfeat_single_face.mp4"
    ours = track(clip).weights.numpy()
    theirs = track(clip, estimator="mediapipe").weights.numpy()
    assert ours.shape == theirs.shape and not np.allclose(ours, theirs)
    smile = EXPRESSION_NAMES.index("mouthSmile_L")
    assert np.corrcoef(ours[:, smile], theirs[:, smile])[0, 1] > 0.5  # two estimators, one smile
    fused = track(clip, estimator="fused").weights.numpy()
    assert fused.min() >= 0 and fused.max() <= 1
    with pytest.raises(AvatarInputError, match="--estimator"):
        track(clip, estimator="best")
