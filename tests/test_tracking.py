"""Face tracking from landmarks (bare clone: synthetic MediaPipe-format landmarks from the landmark layer)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import lsq_linear

from avatar.core.errors import AvatarInputError
from avatar.core.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from avatar.morphable.landmarks import load_landmark_layer
from drivers.tracking import (
    MainFaceSelector,
    OneEuroFilter,
    TrackerConfig,
    bridge_gaps,
    observation_from_mediapipe,
    track_landmarks,
)
from drivers.tracking.landmark_fit import FitConfig, LandmarkFitter, antagonist_coupling, box_least_squares

NAMES_SMILE = ("mouthSmile_L", "mouthSmile_R")


@pytest.fixture(scope="module")
def layer():
    return load_landmark_layer()


DISTANCE_CM = 60.0  # the tracker's default camera distance


def to_mediapipe(points_cm: np.ndarray, rotation: np.ndarray, offset_cm, px_per_cm: float, width: int, height: int) -> np.ndarray:
    """Project head-frame landmarks (cm) through a pinhole camera ``DISTANCE_CM`` away, as MediaPipe reports
    them: x, y normalised by the image size, z relative depth in the scale of x at the face (normalised by
    the width)."""
    focal = px_per_cm * DISTANCE_CM
    cam = points_cm @ rotation.T + np.array([offset_cm[0], offset_cm[1], -DISTANCE_CM])  # y up, z to the viewer
    depth = -cam[:, 2]
    x = (width / 2 + focal * cam[:, 0] / depth) / width
    y = (height / 2 - focal * cam[:, 1] / depth) / height
    z = -(cam[:, 2] - cam[:, 2].mean()) * focal / depth.mean() / width
    return np.stack([x, y, z], 1).astype(np.float32)


def synthetic_track(layer, num_frames=40, seed=0, noise_px=0.0):
    """Known identity, weights and head rotations → per-frame MediaPipe-format landmarks."""
    rng = np.random.default_rng(seed)
    names = layer.expression_names
    identity = rng.standard_normal(layer.num_identity) * 0.8
    t = np.arange(num_frames) / 30.0
    weights = np.zeros((num_frames, 53))
    weights[:, names.index("jawOpen")] = 0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    for n in NAMES_SMILE:
        weights[:, names.index(n)] = np.clip(np.sin(2 * np.pi * 0.4 * t), 0, None) * 0.8
    weights[:, names.index("eyeBlink_L")] = weights[:, names.index("eyeBlink_R")] = np.exp(-(((t - 0.8) / 0.08) ** 2))
    weights[:, names.index("browInnerUp_L")] = weights[:, names.index("browInnerUp_R")] = 0.6 * np.clip(np.cos(2 * np.pi * 0.5 * t), 0, None)
    rotvecs = np.stack([0.15 * np.sin(2 * np.pi * 0.3 * t), 0.3 * np.sin(2 * np.pi * 0.2 * t + 1), 0.05 * np.cos(t)], 1)
    marks = layer.landmarks(torch.tensor(identity[None]).float().expand(num_frames, -1), torch.tensor(weights).float()).double().numpy()
    frames = []
    for k in range(num_frames):
        lm = to_mediapipe(marks[k], axis_angle_to_matrix(rotvecs[k]), (0.5 * np.sin(t[k]), 1.0), 9.0, 640, 480)
        lm[:, :2] += rng.normal(size=(478, 2)) * noise_px / np.array([640, 480])
        frames.append(lm)
    return identity, weights, rotvecs, frames


def test_box_least_squares_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((80, 12))
    b = rng.standard_normal(80)
    hessian, linear = a.T @ a + 0.01 * np.eye(12), a.T @ b
    ours = box_least_squares(hessian, linear, np.full(12, 0.5), 2000, 1e-12)
    ref = lsq_linear(np.vstack([a, 0.1 * np.eye(12)]), np.r_[b, np.zeros(12)], bounds=(0, 1), tol=1e-12).x
    assert np.all((ours >= 0) & (ours <= 1))
    assert np.allclose(ours, ref, atol=1e-5)


def test_observation_units_keep_aspect_ratio():
    lm = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.1]], np.float32)
    obs = observation_from_mediapipe(lm, 640, 480)
    assert np.allclose(obs[0], 0.0)
    assert np.allclose(obs[1], [0.5, 240 / 640, -0.1])  # x right, y up, z towards the viewer


def test_axis_angle_matches_rodrigues():
    for vec in ([0.1, -0.4, 0.2], [0.0, 0.0, 0.0], [1.2, 0.3, -0.9]):
        assert np.allclose(matrix_to_axis_angle(axis_angle_to_matrix(np.array(vec))), vec, atol=1e-7)


def test_fitter_recovers_pose_expression_and_identity(layer):
    identity, weights, rotvecs, frames = synthetic_track(layer, num_frames=12, seed=1)
    obs = np.stack([observation_from_mediapipe(f, 640, 480) for f in frames])
    focal = 9.0 * DISTANCE_CM / 640  # observation units: the image's larger side is 1
    config = FitConfig(expression_l1=0.0, expression_l2=1e-6, identity_prior=1e-4, identity_rounds=40, identity_l1=0.0, offset_frames=None)
    fitter = LandmarkFitter(layer, config, focal=focal)
    found, fits = fitter.fit_identity(obs)
    assert np.abs(found - identity).mean() < 0.1
    fit = None
    for k in range(len(frames)):
        fit = fitter.fit_frame(obs[k], fit)
        assert np.abs(fit.expression - weights[k]).max() < 0.05
        assert np.linalg.norm(matrix_to_axis_angle(fit.pose.rotation) - rotvecs[k]) < 2e-3
    assert fit.rms < 0.02


def test_antagonist_coupling_matrix():
    from avatar.core.expressions import ANTAGONIST_PAIRS, EXPRESSION_NAMES

    coupling = antagonist_coupling(EXPRESSION_NAMES, 3.0)
    assert np.array_equal(coupling, coupling.T) and np.all(np.diag(coupling) == 0)
    assert coupling.sum() == 2 * 3.0 * len(ANTAGONIST_PAIRS)
    jaw = EXPRESSION_NAMES.index("jawLeft"), EXPRESSION_NAMES.index("jawRight")
    assert coupling[jaw] == 3.0 and np.all(antagonist_coupling(EXPRESSION_NAMES, 0.0) == 0)


def test_antagonists_are_not_fitted_together(layer):
    """Landmarks that two opposing shapes explain together (jawLeft + jawRight) are fitted with both without
    the antagonist penalty, and with one of them at most with it."""
    names = layer.expression_names
    weights = np.zeros((1, 53))
    weights[0, names.index("jawLeft")] = weights[0, names.index("jawRight")] = 0.5
    marks = layer.landmarks(torch.zeros(1, layer.num_identity), torch.tensor(weights).float()).double().numpy()[0]
    obs = observation_from_mediapipe(to_mediapipe(marks, np.eye(3), (0.0, 1.0), 9.0, 640, 480), 640, 480)
    pair = [names.index("jawLeft"), names.index("jawRight")]
    found = {}
    for strength in (0.0, 10.0):
        config = FitConfig(expression_l1=0.0, expression_l2=1e-6, antagonist=strength)
        fitter = LandmarkFitter(layer, config, focal=9.0 * DISTANCE_CM / 640)
        found[strength] = fitter.fit_frame(obs, None).expression[pair]
    assert found[0.0].min() > 0.4
    assert found[10.0].min() < 0.02


def test_one_euro_filter_smooths_and_follows():
    rng = np.random.default_rng(0)
    filt = OneEuroFilter(30.0, min_cutoff=1.0, beta=0.5)
    noisy = 0.5 + 0.05 * rng.standard_normal((60, 2))
    out = np.stack([filt(x) for x in noisy])
    assert out[20:].std() < 0.5 * noisy[20:].std()
    filt.reset()
    step = np.stack([filt(np.array([0.0 if k < 5 else 1.0])) for k in range(40)])
    assert step[4, 0] == 0.0 and 0.0 < step[6, 0] < 1.0 and step[-1, 0] > 0.99


def test_bridge_gaps_interpolates_and_holds():
    values = np.array([[0.0], [9.0], [9.0], [3.0], [9.0]])
    found = np.array([False, True, False, True, False])
    values[1], values[3] = 1.0, 3.0
    assert np.allclose(bridge_gaps(values, found)[:, 0], [1.0, 1.0, 2.0, 3.0, 3.0])


def test_selector_follows_the_first_face_not_the_largest(layer):
    _, _, _, frames = synthetic_track(layer, num_frames=6, seed=2)
    main = frames[0]
    other = main.copy()
    other[:, 0] = other[:, 0] * 1.6 - 0.65  # a second person, further right and larger … eventually
    other[:, 1] = other[:, 1] * 1.1
    obs = lambda f: observation_from_mediapipe(f, 640, 480)  # noqa: E731
    selector = MainFaceSelector()
    assert selector.select([main, other * np.array([0.5, 0.5, 1.0], np.float32)], [obs(main), obs(other)]) == 0
    for k in range(1, 6):  # the other face is now the largest; order in the list changes too
        assert selector.select([other, frames[k]], [obs(other), obs(frames[k])]) == 1
    assert selector.select([], []) is None
    assert selector.missing == 1


def test_track_landmarks_end_to_end(layer):
    identity, weights, rotvecs, frames = synthetic_track(layer, num_frames=45, seed=4, noise_px=0.3)
    faces = [[f] for f in frames]
    faces[20] = []  # a frame without a face
    faces[30] = [frames[30], np.clip(frames[30] * np.array([0.6, 0.6, 1.0], np.float32) + 0.35, 0, 1)]  # a small second face
    # the fit itself (the learned read-out is tested in test_tracking_refine.py)
    config = TrackerConfig(identity_window=10, pose_calibration=False, refine=False)
    result = track_landmarks(faces, (480, 640), fps=30.0, config=config)
    assert result.weights.shape == (45, 53) and result.head_rotation.shape == (45, 3)
    assert result.face_found.tolist() == [k != 20 for k in range(45)]
    assert int(result.num_faces[30]) == 2
    names = layer.expression_names
    w = result.weights.numpy()
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    mae = np.abs(w - weights).mean()
    assert mae < 0.03
    for key in ("jawOpen", "mouthSmile_L"):
        assert np.corrcoef(w[:, names.index(key)], weights[:, names.index(key)])[0, 1] > 0.95
    assert np.abs(w[20] - 0.5 * (w[19] + w[21])).max() < 1e-5  # bridged by interpolation
    rot_err = np.degrees(np.linalg.norm(result.head_rotation.numpy() - rotvecs, axis=1))
    assert np.median(rot_err) < 1.0
    motion = result.to_motion()
    assert motion.num_frames == 45 and math.isclose(motion.fps, 30.0)


def test_track_landmarks_rejects_bad_input(layer):
    with pytest.raises(AvatarInputError, match="no face"):
        track_landmarks([[], [], []], (480, 640))
    with pytest.raises(AvatarInputError, match="478"):
        track_landmarks([[np.zeros((468, 3), np.float32)]], (480, 640))
    with pytest.raises(AvatarInputError, match="empty"):
        track_landmarks([], (480, 640))


def test_rotation_correction_is_the_predicted_person_bias(layer):
    """The calibration's rotation-bias model turns every tracked frame by the same head-frame rotation."""
    from drivers.tracking import FaceTracker

    _, _, _, frames = synthetic_track(layer, num_frames=14, seed=5, noise_px=0.2)
    bias = np.radians([2.0, -1.0, 0.5])
    offset_model = np.zeros((3, 478, 3))
    offset_model[0, 4, 1] = 0.3  # pitch bias per cm of the person's offset of landmark 4 along y

    def run(calibration, correct=True):
        tracker = FaceTracker(30.0, TrackerConfig(identity_window=8, rotation_correction=correct), layer, calibration=calibration)
        out = []
        for lm in frames:
            out += tracker.push_landmarks([lm], (480, 640))
        return tracker, out + tracker.finish()

    _, plain = run({})
    model = np.zeros((3, 1 + layer.num_identity))
    model[:, 0] = bias
    tracker, corrected = run({"identity_rotation": torch.tensor(model), "offset_rotation": torch.tensor(offset_model)})
    expected_bias = bias + np.array([0.3 * tracker.fitter.offset[4, 1], 0.0, 0.0])
    for a, b in zip(plain, corrected):
        np.testing.assert_allclose(axis_angle_to_matrix(a.head_rotation) @ axis_angle_to_matrix(expected_bias), axis_angle_to_matrix(b.head_rotation), atol=2e-3)
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-9)  # the expression is untouched
    assert abs(tracker.fitter.offset[4, 1]) > 1e-4  # the offset term took part
    _, disabled = run({"identity_rotation": torch.tensor(model)}, correct=False)
    np.testing.assert_allclose(disabled[-1].head_rotation, plain[-1].head_rotation, atol=1e-9)
