"""The shipped MediaPipe → ICT landmark correspondence, the landmark layer and the gaze convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from avatar.morphable import gaze
from avatar.morphable.landmarks import (
    FACE_OVAL,
    IRIS_LEFT,
    IRIS_RIGHT,
    LIPS_INNER,
    MEDIAPIPE_68,
    REGIONS,
    LandmarkLayer,
    load_landmark_layer,
    load_landmark_map,
    load_mediapipe_calibration,
)
from avatar.morphable.template import load_template

# Multi-PIE 68 mirror partner of each point (left <-> right).
MIRROR_68 = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60] + [67, 66, 65]
)  # fmt: skip


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def landmark_map():
    return load_landmark_map()


@pytest.fixture(scope="module")
def neutral_landmarks(template, landmark_map):
    return landmark_map.interpolate(torch.from_numpy(template.neutral.copy())).numpy()


def test_map_is_well_formed(template, landmark_map):
    assert landmark_map.num_landmarks == 478
    assert np.array_equal(template.faces[landmark_map.triangles], landmark_map.vertex_ids)
    assert np.all(landmark_map.barycentric >= 0)
    assert np.allclose(landmark_map.barycentric.sum(1), 1.0, atol=1e-5)
    assert np.all((landmark_map.weight > 0) & (landmark_map.weight <= 1))
    assert landmark_map.info["mean_residual_cm"] < 0.2


def test_contour_points_weigh_less(landmark_map):
    oval = landmark_map.weight[list(FACE_OVAL)]
    inner = landmark_map.weight[landmark_map.region == REGIONS.index("face")]
    assert oval.max() < np.median(inner)


def test_mediapipe_68_matches_template_landmarks(template, neutral_landmarks):
    """The 51 inner Multi-PIE points land on the template's own 68-point vertices (within a few mm)."""
    ours = neutral_landmarks[list(MEDIAPIPE_68[17:])]
    theirs = template.neutral[template.landmarks_68[17:]]
    distance = np.linalg.norm(ours - theirs, axis=1)
    assert distance.mean() < 0.4 and distance.max() < 1.0


def test_mapped_points_are_mirror_symmetric(neutral_landmarks):
    pts = neutral_landmarks[list(MEDIAPIPE_68)]
    mirrored = pts[MIRROR_68] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(mirrored - pts).max() < 0.15


def test_skin_points_on_skin_and_iris_points_on_eyeballs(template, landmark_map):
    parts = np.asarray(template.part_names)[template.face_parts[landmark_map.triangles]]
    assert set(parts[:468]) <= {"M_Face", "M_BackHead"}
    assert set(parts[list(IRIS_LEFT)]) == {gaze.SCLERA_PARTS["L"]}
    assert set(parts[list(IRIS_RIGHT)]) == {gaze.SCLERA_PARTS["R"]}


def test_inner_lips_split_upper_and_lower(neutral_landmarks):
    upper = neutral_landmarks[list(LIPS_INNER[0][1:-1]), 1]
    lower = neutral_landmarks[list(LIPS_INNER[1][1:-1]), 1]
    assert upper.mean() >= lower.mean()


def test_layer_matches_map_and_template(template, landmark_map, neutral_landmarks):
    layer = load_landmark_layer()
    assert layer.mean.shape == (478, 3) and layer.expression_basis.shape == (53, 478, 3)
    assert layer.num_identity >= 20
    assert layer.expression_names == template.expression_names
    calibration = load_mediapipe_calibration()
    offset = torch.zeros(478, 3) if calibration is None else calibration["mean_offset"]
    assert offset.abs().max() < 1.5  # MediaPipe's offsets are millimetres, not centimetres
    assert torch.allclose(layer.mean, torch.from_numpy(neutral_landmarks) + offset, atol=1e-4)
    assert torch.equal(layer.landmarks()[0], layer.mean)


def test_layer_is_linear_and_identity_freezes():
    layer = load_landmark_layer()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 10, generator=g)
    w = torch.rand(2, 53, generator=g)
    both = layer.landmarks(z, w)
    assert torch.allclose(both - layer.mean, (layer.landmarks(z) - layer.mean) + (layer.landmarks(None, w) - layer.mean), atol=1e-4)
    frozen = layer.with_identity(z[0])
    assert frozen.num_identity == 0
    assert torch.allclose(frozen.landmarks(None, w[:1]), both[:1], atol=1e-4)
    with pytest.raises(AvatarInputError):
        layer.landmarks(None, torch.zeros(1, 52))


def test_layer_round_trip(tmp_path):
    layer = load_landmark_layer()
    small = LandmarkLayer(layer.mean, layer.identity_basis[:3], layer.expression_basis, layer.weight, layer.expression_names)
    small.save(tmp_path / "layer.safetensors")
    again = LandmarkLayer.load(tmp_path / "layer.safetensors")
    assert torch.equal(again.identity_basis, small.identity_basis)
    assert again.expression_names == small.expression_names
    with pytest.raises(AvatarInputError):
        small.save(tmp_path / "layer.safetensors")  # exists, no force
    with pytest.raises(AvatarInputError):
        LandmarkLayer.load(tmp_path / "missing.safetensors")


def test_gaze_moves_iris_rows():
    layer = load_landmark_layer()
    names = layer.expression_names
    left, right = list(IRIS_LEFT), list(IRIS_RIGHT)
    up = layer.expression_basis[names.index("eyeLookUp_L")]
    assert up[left, 1].min() > 0.3 and up[right].abs().max() < 1e-6
    out_left = layer.expression_basis[names.index("eyeLookOut_L")]
    assert out_left[left, 0].min() > 0.3  # the left eye's outer side is +x
    out_right = layer.expression_basis[names.index("eyeLookOut_R")]
    assert out_right[right, 0].max() < -0.3


def test_gaze_rotation_is_a_rotation():
    angles = torch.tensor([[0.3, -0.2], [0.0, 0.5]])
    rot = gaze.gaze_rotation(angles)
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    forward = rot @ torch.tensor([0.0, 0.0, 1.0])
    assert forward[0, 0] > 0 and forward[0, 1] < 0 and forward[1, 1] > 0  # yaw → +x, pitch up → +y


@pytest.mark.shared
def test_shipped_layer_equals_ict_restriction(shared, landmark_map):
    from avatar.morphable.ict import load_ict_facekit

    ict = load_ict_facekit()
    layer = load_landmark_layer()
    k = layer.num_identity
    centres = gaze.eye_centres(ict.neutral, ict.faces, ict.face_parts, ict.part_names)
    fresh = LandmarkLayer.from_vertex_model(
        landmark_map, ict.neutral, ict.identity_deltas[:k], ict.expression_deltas, ict.expression_names, centres,
        calibration=load_mediapipe_calibration(),
    )  # fmt: skip
    assert torch.allclose(fresh.mean, layer.mean, atol=1e-5)
    assert torch.allclose(fresh.expression_basis, layer.expression_basis, atol=2e-3)
    assert torch.allclose(fresh.identity_basis, layer.identity_basis, atol=2e-3)
    # the layer reproduces the full model's vertices at the landmarks
    g = torch.Generator().manual_seed(0)
    z, w = torch.randn(1, k, generator=g), torch.rand(1, 53, generator=g) * 0.3
    w[:, [i for i, n in enumerate(ict.expression_names) if n.startswith("eyeLook")]] = 0
    verts = ict.vertices(z, w)
    offset = load_mediapipe_calibration()["mean_offset"]
    assert torch.allclose(landmark_map.interpolate(verts) + offset, layer.landmarks(z, w), atol=5e-3)


def test_rotation_bias_regression_recovers_a_linear_model():
    """scripts/build_landmark_map.py step 6: cross-validated ridge on identity code + offset directions."""
    import importlib.util

    from avatar.core.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("build_landmark_map", REPO_ROOT / "scripts" / "build_landmark_map.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rng = np.random.default_rng(0)
    n, k, num_landmarks = 200, 6, 20
    codes = rng.standard_normal((n, k))
    offsets = rng.standard_normal((n, 3, num_landmarks, 3)) * np.array([1.0, 0.3, 0.1])[None, :, None, None]
    offsets = offsets.sum(1) * 0.05  # a few strong directions
    true_identity = np.zeros((3, 1 + k))
    true_identity[:, 0] = [0.01, -0.005, 0.0]
    true_identity[0, 1:3] = [0.02, -0.01]
    true_offset = np.zeros((3, num_landmarks, 3))
    true_offset[0] = 0.1 * rng.standard_normal((num_landmarks, 3))
    biases = true_identity[:, 0] + codes @ true_identity[:, 1:].T + np.einsum("ald,nld->na", true_offset, offsets)
    biases += 0.002 * rng.standard_normal(biases.shape)
    identity_rotation, offset_rotation, report = build.fit_rotation_bias(biases, codes, offsets, components=(0, 20, 60))
    predicted = identity_rotation[:, 0] + codes @ identity_rotation[:, 1:].T + np.einsum("ald,nld->na", offset_rotation, offsets)
    assert np.sqrt(((predicted - biases) ** 2).mean()) < 0.004
    assert report["cross_validated_rms_deg_xyz"][0] < 0.5 * report["bias_rms_deg_xyz"][0]
    assert report["chosen_xyz"][2]["ridge"] is None or abs(identity_rotation[2, 1:]).max() < 0.01
