"""Surface metrics (numpy at this IO edge): Chamfer-L1, normal consistency, F-score, on a region.

Both meshes are sampled uniformly by area. The *region* is given on the ground-truth mesh as a triangle
mask (e.g. ICT's M_Face); predicted samples count when their closest ground-truth point lies in the
region, so a model is neither rewarded nor punished for what it does elsewhere.
"""

from __future__ import annotations

import numpy as np

from avatar.morphable.geometry import sample_surface


def _closest(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import point_cloud_utils as pcu

    d, fid, bary = pcu.closest_points_on_mesh(
        np.ascontiguousarray(points, np.float64), np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(faces, np.int64)
    )
    return np.asarray(d), np.asarray(fid), np.asarray(bary)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def surface_metrics(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    gt_region: np.ndarray,
    samples: int = 50_000,
    threshold: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Chamfer-L1, normal consistency and F-score of a predicted mesh against ground truth on a region.

    Args:
        pred_vertices: shape :math:`(V_p, 3)`; pred_faces: shape :math:`(F_p, 3)`.
        gt_vertices: shape :math:`(V_g, 3)`; gt_faces: shape :math:`(F_g, 3)`.
        gt_region: triangle mask of the region on the ground truth, shape :math:`(F_g,)`.
        samples: points sampled on each surface.
        threshold: F-score distance threshold (same units as the meshes).
        seed: sampling seed.

    Returns:
        ``chamfer_l1`` (mean of the two directed mean distances), ``normal_consistency`` (mean |cos|
        both ways), ``fscore`` (harmonic mean of precision and recall at ``threshold``), in mesh units.
    """
    rng = np.random.default_rng(seed)
    weights = gt_region.astype(np.float64)
    g_pts, g_nrm, _, _ = sample_surface(gt_vertices, gt_faces, samples, rng, face_weights=weights)
    p_pts, p_nrm, _, _ = sample_surface(pred_vertices, pred_faces, samples, rng)
    # predicted points that belong to the region: closest ground-truth triangle is in the region
    d_pg, fid_pg, _ = _closest(p_pts, gt_vertices, gt_faces)
    keep = gt_region[fid_pg]
    d_pg, fid_pg = d_pg[keep], fid_pg[keep]
    p_nrm_k = p_nrm[keep]
    d_gp, fid_gp, _ = _closest(g_pts, pred_vertices, pred_faces)
    gt_n = _face_normals(gt_vertices, gt_faces)
    pr_n = _face_normals(pred_vertices, pred_faces)
    nc_pg = np.abs((p_nrm_k * gt_n[fid_pg]).sum(1))
    nc_gp = np.abs((g_nrm * pr_n[fid_gp]).sum(1))
    precision = float((d_pg < threshold).mean()) if len(d_pg) else 0.0
    recall = float((d_gp < threshold).mean())
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "chamfer_l1": 0.5 * (float(d_pg.mean()) + float(d_gp.mean())),
        "normal_consistency": 0.5 * (float(nc_pg.mean()) + float(nc_gp.mean())),
        "fscore": fscore,
        "precision": precision,
        "recall": recall,
    }
