"""Small geometry every layer shares: rotations both ways, the weighted similarity fit, export normals.

One implementation of each (they were written three to five times before). Light to import: NumPy only at
module level (torch and trimesh are imported by the functions that need them); kornia and
``scipy.spatial`` are not used because their import costs ``avatar listen`` 0.3 s each
(docs/DECISIONS.md, "One geometry module").

Conventions (docs/ARCHITECTURE.md): rotations act on column vectors (``x' = R x``); axis-angle vectors
are in radians, their direction the axis, their length the angle. The head frame has x to the head's
own left, y up, z out of the face. Euler angles are intrinsic Y-X-Z, ``R = R_y(yaw) R_x(pitch) R_z(roll)``,
each positive by the right-hand rule about its axis.

Rotation functions take a torch tensor (any float dtype, any leading batch shape) and return the same
kind; NumPy arrays are accepted too and come back as float64 NumPy arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Similarity", "axis_angle_to_matrix", "euler_to_matrix", "matrix_to_axis_angle", "matrix_to_euler",
           "similarity_transform", "vertex_normals"]


def _as_tensor(x):
    """``(tensor, was_numpy)``: NumPy input becomes a float64 tensor."""
    import torch

    if isinstance(x, torch.Tensor):
        return x, False
    return torch.as_tensor(np.asarray(x, dtype=np.float64)), True


def axis_angle_to_matrix(rotation):
    """Rotation matrices of axis-angle vectors (Rodrigues' formula).

    ``R = I + (sin θ / θ) K + ((1 - cos θ) / θ²) K²`` with ``K`` the cross-product matrix of the
    rotation vector and ``θ`` its length; below ``θ = 1e-3`` the two factors come from their Taylor
    series, so the result is smooth through zero (and differentiable there). The same matrices as
    kornia's ``axis_angle_to_rotation_matrix`` and scipy's ``Rotation.from_rotvec`` (tested).

    Args:
        rotation: :math:`(..., 3)` axis-angle (rad).

    Returns:
        :math:`(..., 3, 3)`, the same dtype.
    """
    import torch

    rotation, was_numpy = _as_tensor(rotation)
    theta2 = (rotation * rotation).sum(dim=-1)[..., None, None]
    small = theta2 < 1e-6  # θ < 1e-3
    # the square root of a safe value: sqrt's gradient at 0 is infinite, and torch.where would turn the unused
    # branch's 0 · inf into NaN gradients at the zero rotation
    safe = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    sin_term = torch.where(small, 1.0 - theta2 / 6.0, safe.sin() / safe)
    cos_term = torch.where(small, 0.5 - theta2 / 24.0, 2.0 * ((safe / 2).sin() / safe) ** 2)  # 1 - cos = 2 sin²(θ/2)
    x, y, z = rotation.unbind(dim=-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotation.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    matrix = eye + sin_term * cross + cos_term * (cross @ cross)
    return matrix.numpy() if was_numpy else matrix


def matrix_to_axis_angle(matrix):
    """Axis-angle vectors of rotation matrices, angles in [0, π].

    Through the unit quaternion (Shepperd's choice of the largest of the trace and the diagonal, so it is
    stable at every angle, π included), then ``θ = 2 atan2(|v|, w)``; equal to scipy's
    ``Rotation.from_matrix(m).as_rotvec()`` (tested). Not differentiable at the branch changes.

    Args:
        matrix: :math:`(..., 3, 3)` rotation matrices.

    Returns:
        :math:`(..., 3)` axis-angle (rad), the same dtype.
    """
    import torch

    matrix, was_numpy = _as_tensor(matrix)
    m = matrix.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    decision = torch.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], trace], dim=-1)
    choice = decision.argmax(dim=-1)
    quat = torch.empty(m.shape[0], 4, dtype=m.dtype, device=m.device)  # x, y, z, w
    for i in range(3):  # the largest diagonal entry
        j, k = (i + 1) % 3, (i + 2) % 3
        rows = choice == i
        if bool(rows.any()):
            r = m[rows]
            quat[rows, i] = 1.0 - trace[rows] + 2.0 * r[:, i, i]
            quat[rows, j] = r[:, j, i] + r[:, i, j]
            quat[rows, k] = r[:, k, i] + r[:, i, k]
            quat[rows, 3] = r[:, k, j] - r[:, j, k]
    rows = choice == 3  # the trace
    if bool(rows.any()):
        r = m[rows]
        quat[rows, 0] = r[:, 2, 1] - r[:, 1, 2]
        quat[rows, 1] = r[:, 0, 2] - r[:, 2, 0]
        quat[rows, 2] = r[:, 1, 0] - r[:, 0, 1]
        quat[rows, 3] = 1.0 + trace[rows]
    quat = quat / quat.norm(dim=-1, keepdim=True)
    quat = torch.where(quat[:, 3:] < 0, -quat, quat)
    vector = quat[:, :3]
    angle = 2.0 * torch.atan2(vector.norm(dim=-1), quat[:, 3])
    small = angle <= 1e-3
    angle2 = angle * angle
    safe = torch.where(small, torch.ones_like(angle), angle)
    scale = torch.where(small, 2.0 + angle2 / 12.0 + 7.0 * angle2 * angle2 / 2880.0, safe / torch.sin(safe / 2.0))
    out = (scale[:, None] * vector).reshape(*matrix.shape[:-2], 3)
    return out.numpy() if was_numpy else out


def euler_to_matrix(yaw, pitch, roll):
    """``R = R_y(yaw) R_x(pitch) R_z(roll)`` (intrinsic Y-X-Z: turn, then nod, then tilt).

    In the head frame: yaw > 0 turns the face toward its own left, pitch > 0 tips the chin down, roll > 0
    lifts the left ear.

    Args:
        yaw, pitch, roll: :math:`(...)` radians (tensors of one shape, or numbers).

    Returns:
        :math:`(..., 3, 3)`.
    """
    import torch

    was_numpy = not isinstance(yaw, torch.Tensor)
    yaw, pitch, roll = (a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, np.float64))
                        for a in (yaw, pitch, roll))
    yaw, pitch, roll = torch.broadcast_tensors(yaw, pitch, roll)
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (torch.cos, torch.sin))
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    r_y = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*yaw.shape, 3, 3)
    r_x = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*yaw.shape, 3, 3)
    r_z = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*yaw.shape, 3, 3)
    matrix = r_y @ r_x @ r_z
    return matrix.numpy() if was_numpy else matrix


def matrix_to_euler(matrix):
    """(yaw, pitch, roll) of :func:`euler_to_matrix`, read off the matrix (pitch in [-π/2, π/2]).

    Equal to scipy's ``Rotation.from_matrix(m).as_euler("YXZ")`` away from gimbal lock (tested).

    Args:
        matrix: :math:`(..., 3, 3)`.

    Returns:
        :math:`(..., 3)` yaw, pitch, roll (rad).
    """
    import torch

    matrix, was_numpy = _as_tensor(matrix)
    yaw = torch.atan2(matrix[..., 0, 2], matrix[..., 2, 2])
    pitch = torch.asin((-matrix[..., 1, 2]).clamp(-1.0, 1.0))
    roll = torch.atan2(matrix[..., 1, 0], matrix[..., 1, 1])
    out = torch.stack([yaw, pitch, roll], dim=-1)
    return out.numpy() if was_numpy else out


class Similarity(NamedTuple):
    """``dst ≈ scale · rotation @ src + translation``."""

    rotation: np.ndarray  #: (3, 3), a proper rotation (det +1)
    scale: float
    translation: np.ndarray  #: (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """The transform of ``points (N, 3)``."""
        return self.scale * points @ self.rotation.T + self.translation


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """Weighted least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991), reflections excluded.

    Args:
        src: :math:`(N, 3)`.
        dst: :math:`(N, 3)`.
        weights: :math:`(N,)` non-negative, or ``None`` for equal weights.

    Returns:
        the :class:`Similarity`.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = (u * d) @ vt
    scale = float((sig * d).sum() / (w * (xs**2).sum(1)).sum())
    return Similarity(rotation, scale, mu_d - scale * rotation @ mu_s)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals for mesh files (trimesh's angle-weighted ones); vertices without a proper
    triangle get +z.

    Rendering uses :func:`renderers.mesh.vertex_normals` instead (torch, area-weighted, differentiable):
    the renderers sit below this package and cannot import it.

    Args:
        vertices: :math:`(V, 3)` positions.
        faces: :math:`(F, 3)` vertex ids.

    Returns:
        :math:`(V, 3)` float32 unit normals.
    """
    import trimesh

    normals = trimesh.Trimesh(np.asarray(vertices, np.float64), faces, process=False).vertex_normals
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-8, normals / np.maximum(length, 1e-8), [0.0, 0.0, 1.0])
    return normals.astype(np.float32)
