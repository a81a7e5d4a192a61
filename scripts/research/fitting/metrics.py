"""Reconstruction error in the NoW benchmark's manner (Sanyal et al., RingNet, CVPR 2019).

NoW measures the distance from every point of a ground-truth scan, cropped to the face (a sphere of
95 mm around the nose tip), to the surface of the predicted **neutral** mesh, after aligning the
prediction to the scan: first by a similarity from corresponding landmarks, then by iterating a
similarity from closest-point pairs (ICP). Here the "scan" is a dense, area-uniform point sample of
the ground-truth skin in that sphere; the predicted surface is the fitted identity's skin. Results in
millimetres.
"""

from __future__ import annotations

import numpy as np

from avatar.core.geometry import similarity_transform

#: The 7 NoW alignment landmarks in the Multi-PIE 68 scheme: eye corners, nose tip, mouth corners.
NOW_LANDMARKS_68 = (36, 39, 42, 45, 30, 48, 54)
CROP_RADIUS_CM = 9.5


def scan_points(vertices: np.ndarray, faces: np.ndarray, nose_tip: np.ndarray, count: int = 20000,
                seed: int = 0) -> np.ndarray:
    """Area-uniform points on the triangles within :data:`CROP_RADIUS_CM` of the nose tip.

    Args:
        vertices: ground-truth vertices, shape :math:`(V, 3)` (cm).
        faces: skin triangles, shape :math:`(F, 3)`.
        nose_tip: shape :math:`(3,)`.
        count: number of points.
        seed: sampling seed.

    Returns:
        points, shape :math:`(count, 3)`.
    """
    corners = vertices[faces]  # (F, 3, 3)
    inside = (np.linalg.norm(corners - nose_tip, axis=2) < CROP_RADIUS_CM).all(1)
    corners = corners[inside]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(corners), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    c = corners[tri]
    return c[:, 0] + r1[:, None] * (c[:, 1] - c[:, 0]) + r2[:, None] * (c[:, 2] - c[:, 0])


def now_errors(pred_vertices: np.ndarray, gt_vertices: np.ndarray, faces: np.ndarray, landmarks_68: np.ndarray,
               icp_iterations: int = 10, count: int = 20000, seed: int = 0) -> np.ndarray:
    """Scan-to-mesh distances (mm) after landmark + ICP similarity alignment.

    Args:
        pred_vertices: predicted neutral vertices, shape :math:`(V, 3)` (cm).
        gt_vertices: ground-truth neutral vertices, same topology, shape :math:`(V, 3)` (cm).
        faces: skin triangles, shape :math:`(F, 3)`.
        landmarks_68: vertex ids of the 68 landmarks, shape :math:`(68,)`.
        icp_iterations: closest-point similarity refinements.
        count: scan points.
        seed: sampling seed.

    Returns:
        distance of every scan point to the aligned predicted surface, shape :math:`(count,)`, mm.
    """
    import point_cloud_utils as pcu

    ids = np.asarray(landmarks_68)[list(NOW_LANDMARKS_68)]
    scan = scan_points(gt_vertices.astype(np.float64), faces, gt_vertices[landmarks_68[30]].astype(np.float64), count, seed)
    pred = pred_vertices.astype(np.float64)
    r, s, t = similarity_transform(pred[ids], gt_vertices[ids].astype(np.float64))
    pred = s * pred @ r.T + t
    faces64 = np.ascontiguousarray(faces, dtype=np.int64)
    for _ in range(icp_iterations):
        _, fid, bary = pcu.closest_points_on_mesh(scan, pred, faces64)
        closest = pcu.interpolate_barycentric_coords(faces64, fid, bary, pred)
        r, s, t = similarity_transform(closest, scan)
        pred = s * pred @ r.T + t
    _, fid, bary = pcu.closest_points_on_mesh(scan, pred, faces64)
    closest = pcu.interpolate_barycentric_coords(faces64, fid, bary, pred)
    return np.linalg.norm(closest - scan, axis=1) * 10.0


def summary(errors_mm: np.ndarray) -> dict:
    """Median, mean and standard deviation (mm) as the NoW benchmark reports them."""
    return {"median_mm": float(np.median(errors_mm)), "mean_mm": float(np.mean(errors_mm)), "std_mm": float(np.std(errors_mm))}
