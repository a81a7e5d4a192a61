"""Eye gaze: how the ``eyeLook*`` expression weights turn the eyeballs.

ICT FaceKit's ``eyeLook*`` shapes move only the eyelids and the skin around the eyes; the eyeballs
themselves are rigid parts that must be rotated, as ARKit does with its separate eye transforms. This
module defines that rotation once, for every part of the engine (tracking reads gaze from the iris
landmarks through it, the renderer turns the eyeballs with it):

- yaw (about the head's +y axis; positive turns the pupil towards the head's left, +x) and
  pitch (about the head's -x axis; positive turns the pupil up, +y), in radians, per eye;
- ``yaw_left  = (eyeLookOut_L - eyeLookIn_L) * EYE_LOOK_MAX_DEG["horizontal"]`` (the left eye's
  outer side is +x), ``yaw_right = (eyeLookIn_R - eyeLookOut_R) * EYE_LOOK_MAX_DEG["horizontal"]``,
  ``pitch = eyeLookUp * EYE_LOOK_MAX_DEG["up"] - eyeLookDown * EYE_LOOK_MAX_DEG["down"]``;
- the rotation is ``R = R_y(yaw) @ R_x(-pitch)`` about the eyeball centre (the centre of the sphere
  fitted to the sclera), in the head frame (x: head's left, y: up, z: forward).

The maxima follow the human oculomotor range used for full-scale ARKit gaze (about ±30° horizontally,
25° up, 30° down).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Eye rotation (degrees) at weight 1 of the eyeLook shapes.
EYE_LOOK_MAX_DEG = {"horizontal": 30.0, "up": 25.0, "down": 30.0}

#: Eye order used by this module: index 0 is the head's left eye (+x), index 1 the right eye.
EYES = ("L", "R")
SCLERA_PARTS = {"L": "M_ScleraLeft", "R": "M_ScleraRight"}
IRIS_PARTS = {"L": "M_IrisLeft", "R": "M_IrisRight"}


def gaze_angles(expression_weights: torch.Tensor, expression_names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """Yaw and pitch of both eyes from expression weights.

    Args:
        expression_weights: the expression code, shape :math:`(B, E)`.
        expression_names: the names of its E entries (must contain the 8 ``eyeLook*`` names).

    Returns:
        (yaw, pitch) in radians for (left, right) eye, shape :math:`(B, 2, 2)`.
    """
    names = list(expression_names)
    w = expression_weights

    def col(name: str) -> torch.Tensor:
        return w[:, names.index(name)]

    h = math.radians(EYE_LOOK_MAX_DEG["horizontal"])
    up, down = math.radians(EYE_LOOK_MAX_DEG["up"]), math.radians(EYE_LOOK_MAX_DEG["down"])
    yaw_l = (col("eyeLookOut_L") - col("eyeLookIn_L")) * h
    yaw_r = (col("eyeLookIn_R") - col("eyeLookOut_R")) * h
    pitch_l = col("eyeLookUp_L") * up - col("eyeLookDown_L") * down
    pitch_r = col("eyeLookUp_R") * up - col("eyeLookDown_R") * down
    return torch.stack([torch.stack([yaw_l, pitch_l], -1), torch.stack([yaw_r, pitch_r], -1)], 1)


def gaze_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``R_y(yaw) @ R_x(-pitch)`` from (yaw, pitch).

    Args:
        angles: (yaw, pitch) in radians, shape :math:`(..., 2)`.

    Returns:
        rotation matrices, shape :math:`(..., 3, 3)`.
    """
    yaw, pitch = angles[..., 0], angles[..., 1]
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    r_y = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*yaw.shape, 3, 3)
    r_x = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(*yaw.shape, 3, 3)
    return r_y @ r_x


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (algebraic fit).

    Args:
        points: shape :math:`(N, 3)`, N ≥ 4.

    Returns:
        centre, shape :math:`(3,)`, and radius.
    """
    p = np.asarray(points, dtype=np.float64)
    a = np.concatenate([2.0 * p, np.ones((len(p), 1))], axis=1)
    b = (p**2).sum(1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = sol[:3]
    radius = math.sqrt(sol[3] + centre @ centre)
    return centre.astype(np.float32), float(radius)


def eye_centres(vertices: np.ndarray, faces: np.ndarray, face_parts: np.ndarray, part_names) -> np.ndarray:
    """Eyeball rotation centres: the centres of spheres fitted to each sclera.

    Args:
        vertices: head vertices, shape :math:`(V, 3)`.
        faces: triangles, shape :math:`(F, 3)`.
        face_parts: part id per triangle, shape :math:`(F,)`.
        part_names: names of the part ids.

    Returns:
        centres of the (left, right) eyes, shape :math:`(2, 3)` float32.
    """
    names = list(part_names)
    centres = []
    for eye in EYES:
        ids = np.unique(faces[face_parts == names.index(SCLERA_PARTS[eye])])
        centres.append(fit_sphere(vertices[ids])[0])
    return np.stack(centres).astype(np.float32)
