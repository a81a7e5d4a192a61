"""Hair shells over the head model's scalp: where hair may grow, a shell from a thickness field, its texture.

Shared by the photo fit (:mod:`avatar.fitting.hair`: thickness from the photo's silhouette, colour from its
pixels) and the text generator (:mod:`avatar.generator.hair`: thickness and colour from a named style). A shell
is the scalp's own triangles pushed out along the vertex normals, so it reuses the head's atlas UVs; extra
pieces (a bun, a ponytail) are closed meshes of their own whose UVs point at the atlas' unused corner, which
:func:`bake` fills with the hair's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import renderers as dr

#: Thickness bounds of a shell (cm).
MIN_THICKNESS_CM, MAX_THICKNESS_CM = 0.3, 8.0


@dataclass(frozen=True)
class Scalp:
    """Where hair may grow on one head (neutral, head frame, cm), and the heights that place styles on it.

    Attributes:
        skin: vertices of the skin parts (face and back of the head), shape :math:`(V,)` bool.
        candidate: vertices where hair may grow (crown, sides above the brows, back above the nose, forehead),
            shape :math:`(V,)` bool.
        forehead: the forehead part of ``candidate`` (hair there is a fringe), shape :math:`(V,)` bool.
        y_brow: brow height (cm).
        y_nose: nose-tip height.
        y_chin: chin height.
        z_ear: depth of the ears (the jaw's ends): behind it is the back of the head.
        top: the highest point of the head, shape :math:`(3,)`.
    """

    skin: np.ndarray
    candidate: np.ndarray
    forehead: np.ndarray
    y_brow: float
    y_nose: float
    y_chin: float
    z_ear: float
    top: np.ndarray


def scalp(head, rest: np.ndarray) -> Scalp:
    """The :class:`Scalp` of a head model's neutral mesh ``rest`` :math:`(V, 3)` (positions from its 68 landmark
    vertices: brows, nose tip, chin, jaw ends; only skin parts — face and back of the head — grow hair)."""
    lm = rest[head.landmarks_68]
    y_brow = float(lm[[19, 24], 1].mean())
    y_nose = float(lm[30, 1])
    z_ear = float(lm[[0, 16], 2].mean())
    skin_parts = [head.part_names.index(p) for p in ("M_Face", "M_BackHead")]
    on_skin = np.zeros(len(rest), bool)
    on_skin[np.unique(head.faces.numpy()[np.isin(head.face_parts, skin_parts)])] = True
    y, z = rest[:, 1], rest[:, 2]
    back = (z <= z_ear - 1.5) & (y >= y_nose)
    side = (z <= z_ear) & (y >= y_brow)
    crown = y >= y_brow + 3.0
    forehead = (z > z_ear) & (y >= y_brow + 0.5) & ~crown
    return Scalp(on_skin, on_skin & (back | side | crown | forehead), on_skin & forehead, y_brow, y_nose, float(lm[8, 1]), z_ear,
                 rest[np.argmax(np.where(on_skin, y, -np.inf))].copy())


def neighbour_mean(values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Mean of each vertex's edge neighbours in ``faces`` (vertices without one get 0); values :math:`(V,)` or :math:`(V, C)`."""
    total = np.zeros_like(values)
    count = np.zeros(len(values))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        np.add.at(total, faces[:, a], values[faces[:, b]])
        np.add.at(total, faces[:, b], values[faces[:, a]])
        np.add.at(count, faces[:, a], 1)
        np.add.at(count, faces[:, b], 1)
    return total / np.maximum(count, 1)[:, None] if values.ndim > 1 else total / np.maximum(count, 1)


def smooth(values: np.ndarray, faces: np.ndarray, rounds: int) -> np.ndarray:
    """``rounds`` steps of halfway-to-the-neighbours smoothing over the mesh."""
    for _ in range(rounds):
        values = 0.5 * values + 0.5 * neighbour_mean(values, faces)
    return values


def shell(head, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The head's triangles whose three corners are kept, re-indexed.

    Args:
        head: the head model.
        keep: vertices of the shell, shape :math:`(V,)` bool.

    Returns:
        the head-vertex ids of the shell's vertices :math:`(H,)`, its triangles :math:`(F_h, 3)` (into those
        ids), and the head's atlas uv triangles of them :math:`(F_h, 3)`; ``None`` if fewer than 50 triangles.
    """
    faces = head.faces.numpy()
    triangle = keep[faces].all(1)
    if int(triangle.sum()) < 50:
        return None
    ids, inverse = np.unique(faces[triangle], return_inverse=True)
    return ids, inverse.reshape(-1, 3), head.atlas.uv_faces[triangle]


def bake(colours: np.ndarray, faces: np.ndarray, uv: np.ndarray, uv_faces: np.ndarray, size: int,
         fill: np.ndarray) -> np.ndarray:
    """Per-vertex sRGB colours :math:`(H, 3)` in [0, 1] rasterized into the atlas (row 0 at the top); texels no
    triangle covers get ``fill`` (sRGB, 0–255, :math:`(3,)`). Returns :math:`(S, S, 3)` in [0, 1]."""
    corners = uv[uv_faces.reshape(-1)]  # (3F, 2), v up
    clip = np.concatenate([corners * 2.0 - 1.0, np.zeros((len(corners), 1)), np.ones((len(corners), 1))], 1)
    tri = torch.arange(len(corners), dtype=torch.int32).reshape(-1, 3)
    rast, _ = dr.rasterize(torch.from_numpy(clip.astype(np.float32))[None], tri, resolution=(size, size))
    attributes = torch.from_numpy(colours[faces.reshape(-1)].astype(np.float32))[None]
    painted, _ = dr.interpolate(attributes, rast, tri)
    covered = (rast[..., 3] > 0)[..., None]
    out = torch.where(covered, painted, torch.from_numpy(np.asarray(fill, np.float32) / 255.0))[0]
    return out.flip(0).clamp(0, 1).numpy()  # rasterizer row 0 = v 0 (bottom) → image row 0 = top


__all__ = ["MAX_THICKNESS_CM", "MIN_THICKNESS_CM", "Scalp", "bake", "neighbour_mean", "scalp", "shell", "smooth"]
