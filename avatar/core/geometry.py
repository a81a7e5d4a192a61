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
    ``Rotation.from_matrix(m).as_rotvec()`` (tested). Computed in NumPy float64 (the tracker calls it per
    frame, where torch's per-call overhead would triple its cost); not differentiable.

    Args:
        matrix: :math:`(..., 3, 3)` rotation matrices (NumPy or torch).

    Returns:
        :math:`(..., 3)` axis-angle (rad): NumPy float64, or a tensor of the input's dtype and device.
    """
    is_tensor = type(matrix).__module__.startswith("torch")
    m = np.asarray(matrix.detach().cpu().numpy() if is_tensor else matrix, dtype=np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.reshape(-1, 9).T
    trace = m00 + m11 + m22
    choice = np.argmax(np.stack([m00, m11, m22, trace]), axis=0)
    candidates = np.stack([  # (x, y, z, w) scaled, from the largest diagonal entry (rows 0-2) or the trace (3)
        np.stack([1.0 - trace + 2.0 * m00, m10 + m01, m20 + m02, m21 - m12], axis=-1),
        np.stack([m01 + m10, 1.0 - trace + 2.0 * m11, m21 + m12, m02 - m20], axis=-1),
        np.stack([m02 + m20, m12 + m21, 1.0 - trace + 2.0 * m22, m10 - m01], axis=-1),
        np.stack([m21 - m12, m02 - m20, m10 - m01, 1.0 + trace], axis=-1),
    ])
    quat = candidates[choice, np.arange(m.shape[0])]
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    quat[quat[:, 3] < 0] *= -1.0
    angle = 2.0 * np.arctan2(np.linalg.norm(quat[:, :3], axis=-1), quat[:, 3])
    small = angle <= 1e-3
    angle2 = angle * angle
    safe = np.where(small, 1.0, angle)
    scale = np.where(small, 2.0 + angle2 / 12.0 + 7.0 * angle2 * angle2 / 2880.0, safe / np.sin(safe / 2.0))
    out = (scale[:, None] * quat[:, :3]).reshape(*shape, 3)
    if is_tensor:
        import torch

        return torch.from_numpy(out).to(dtype=matrix.dtype, device=matrix.device)
    return out


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
