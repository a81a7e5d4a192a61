"""What the model learns from the ICT teacher: canonical skin, per-code displacements, explicit parts.

The canonical head is ICT's neutral (mean identity, no expression). For a code vector
``c = [z_geo (100), expr (53)]`` the teacher moves every vertex by ``Σ_k c_k Δ_k`` — exactly the
deformation field the model distils (on the surface and, by closest-point extension, near it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from avatar.morphable.geometry import close_neck
from avatar.morphable.ict import ICTFaceKit
from avatar.morphable.template import SKIN_PARTS, Template


@dataclass(frozen=True)
class Teacher:
    """Canonical skin and per-code displacements (numpy; centimetres).

    Attributes:
        vertices: canonical watertight skin vertices (template ids, neck centroid appended), shape :math:`(V+1, 3)`.
        faces: watertight skin triangles, shape :math:`(F_s, 3)`.
        deltas: per-vertex displacement of every code at unit weight, shape :math:`(V+1, K, 3)`.
        skin_ids: template ids of the skin vertices, shape :math:`(V_s,)`.
        face_region_ids: template ids of the M_Face vertices (the evaluation region), shape :math:`(V_f,)`.
    """

    vertices: np.ndarray
    faces: np.ndarray
    deltas: np.ndarray
    skin_ids: np.ndarray
    face_region_ids: np.ndarray


def build_teacher(ict: ICTFaceKit, template: Template, geo_dim: int = 100) -> Teacher:
    """Canonical skin + displacements of the first ``geo_dim`` identity modes and the 53 expressions."""
    verts, faces = close_neck(ict.neutral, ict.faces[ict.part_face_mask(SKIN_PARTS)], template.neck_loop)
    deltas = np.concatenate([ict.identity_deltas[:geo_dim], ict.expression_deltas], 0).transpose(1, 0, 2)
    deltas = np.concatenate([deltas, deltas[template.neck_loop].mean(0, keepdims=True)], 0)
    face_ids = np.unique(ict.faces[ict.part_face_mask(("M_Face",))])
    return Teacher(
        vertices=verts.astype(np.float32),
        faces=faces.astype(np.int64),
        deltas=np.ascontiguousarray(deltas, dtype=np.float32),
        skin_ids=np.unique(ict.faces[ict.part_face_mask(SKIN_PARTS)]),
        face_region_ids=face_ids,
    )


def explicit_components(template: Template) -> tuple[np.ndarray, np.ndarray, int]:
    """Connected components of the non-skin parts (eyes, teeth, gums, lashes, ...).

    Returns:
        vertex ids, shape :math:`(P,)`; component per vertex, shape :math:`(P,)`; component count.
    """
    faces = template.faces[~template.part_face_mask(SKIN_PARTS)]
    n = len(template.neutral)
    graph = coo_matrix(
        (np.ones(faces.size), (faces[:, [0, 1, 2]].ravel(), faces[:, [1, 2, 0]].ravel())), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    ids = np.unique(faces)
    _, component = np.unique(labels[ids], return_inverse=True)
    return ids.astype(np.int64), component.astype(np.int64), int(component.max()) + 1


def fit_part_motions(
    rest: np.ndarray, deltas: np.ndarray, component: np.ndarray, num_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares rigid+scale motion per component and code: ``δv ≈ t + ω × r + s r``.

    Args:
        rest: canonical part vertices, shape :math:`(P, 3)`.
        deltas: their displacements per code, shape :math:`(P, K, 3)`.
        component: component per vertex, shape :math:`(P,)`.
        num_components: J.

    Returns:
        origins, shape :math:`(J, 3)`; motions, shape :math:`(K, J, 7)`; rms residual per component (cm),
        shape :math:`(J,)` (over codes at unit weight).
    """
    K = deltas.shape[1]
    origins = np.zeros((num_components, 3), np.float32)
    motions = np.zeros((K, num_components, 7), np.float32)
    residual = np.zeros(num_components, np.float32)
    for j in range(num_components):
        sel = component == j
        r = rest[sel] - rest[sel].mean(0)
        origins[j] = rest[sel].mean(0)
        n = r.shape[0]
        # rows: 3 per vertex; columns: t (3), ω (3), s (1); ω × r = -[r]_x ω
        A = np.zeros((n, 3, 7), np.float64)
        A[:, :, :3] = np.eye(3)
        rx, ry, rz = r[:, 0], r[:, 1], r[:, 2]
        A[:, 0, 4], A[:, 0, 5] = rz, -ry
        A[:, 1, 3], A[:, 1, 5] = -rz, rx
        A[:, 2, 3], A[:, 2, 4] = ry, -rx
        A[:, :, 6] = r
        A = A.reshape(-1, 7)
        b = deltas[sel].transpose(0, 2, 1).reshape(-1, K)  # (3n, K)
        sol, *_ = np.linalg.lstsq(A, b, rcond=None)
        motions[:, j] = sol.T
        residual[j] = np.sqrt(((A @ sol - b) ** 2).sum(0).mean() / n)
    return origins, motions, residual
