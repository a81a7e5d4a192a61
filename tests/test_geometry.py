"""avatar.core.geometry: the one implementation of each rotation conversion and the similarity fit."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from avatar.core.geometry import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    similarity_transform,
)


def _rotvecs():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(500, 3)) * rng.uniform(0, 1.2, size=(500, 1))
    axes = rng.normal(size=(6, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    near_pi = axes * np.array([np.pi, np.pi - 1e-6, np.pi - 1e-3, 1e-5, 1e-9, 0.0])[:, None]
    return np.concatenate([vecs, near_pi])


def test_axis_angle_to_matrix_equals_scipy_numpy_and_torch():
    r = _rotvecs()
    expected = Rotation.from_rotvec(r).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(r), expected, atol=1e-12)
    out = axis_angle_to_matrix(torch.from_numpy(r).float())
    assert out.dtype == torch.float32 and out.shape == (len(r), 3, 3)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_matrix_to_axis_angle_equals_scipy_at_every_angle():
    matrices = Rotation.from_rotvec(_rotvecs()).as_matrix()
    ours, theirs = matrix_to_axis_angle(matrices), Rotation.from_matrix(matrices).as_rotvec()
    # at exactly pi the axis' sign is a convention: compare the rotations there
    np.testing.assert_allclose(axis_angle_to_matrix(ours), axis_angle_to_matrix(theirs), atol=1e-9)
    small = np.linalg.norm(theirs, axis=1) < 3.0
    np.testing.assert_allclose(ours[small], theirs[small], atol=1e-9)
    assert matrix_to_axis_angle(torch.eye(3)).abs().max() == 0


def test_euler_both_ways_equals_scipy_yxz():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-1.2, 1.2, size=(200, 3))
    expected = Rotation.from_euler("YXZ", angles).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]), expected, atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(expected), angles, atol=1e-9)


def test_weighted_similarity_ignores_zero_weight_outliers():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(40, 3))
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    dst = 1.7 * src @ rotation.T + np.array([0.5, -1.0, 2.0])
    dst[:5] += 10.0
    weights = np.ones(40)
    weights[:5] = 0.0
    fit = similarity_transform(src, dst, weights)
    assert abs(fit.scale - 1.7) < 1e-9 and np.allclose(fit.rotation, rotation) and np.linalg.det(fit.rotation) > 0
    np.testing.assert_allclose(fit.apply(src[5:]), dst[5:], atol=1e-9)


def test_axis_angle_gradients_are_finite_at_zero_and_match_the_formula():
    """The fit differentiates through the head rotation, which starts at or passes through zero."""
    for start in ([0.0, 0.0, 0.0], [1e-4, 0.0, 0.0], [0.05, -0.1, 0.02]):
        rotation = torch.tensor([start], dtype=torch.float64, requires_grad=True)
        weights = torch.arange(9.0, dtype=torch.float64).reshape(3, 3)
        (axis_angle_to_matrix(rotation) * weights).sum().backward()
        assert torch.isfinite(rotation.grad).all()
        numeric = []
        for k in range(3):
            step = torch.zeros(1, 3, dtype=torch.float64)
            step[0, k] = 1e-6
            plus = (axis_angle_to_matrix(rotation.detach() + step) * weights).sum()
            minus = (axis_angle_to_matrix(rotation.detach() - step) * weights).sum()
            numeric.append(float(plus - minus) / 2e-6)
        np.testing.assert_allclose(rotation.grad[0].numpy(), numeric, atol=1e-6)
