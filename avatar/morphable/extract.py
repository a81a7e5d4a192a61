"""Meshes from codes: narrow-band marching cubes and template mode.

Narrow band (coarse-to-fine). The deformed surface is seeded by forward-mapping the canonical
template through the deformation field (one field evaluation per template vertex). Stage 1 solves the
inverse map exactly (fixed-point steps) on a coarse lattice (``coarse`` vertices along the box's longest
side) in a band around the seeds. Stage 2 takes the fine lattice (``resolution``, 256 by default) only
in the cells the seeded surface passes through plus one ring, reads each fine vertex's canonical
position from the trilinearly interpolated coarse inverse map, optionally refines it with fixed-point
steps, and looks the signed distance up in the canonical grid (cheap). Marching cubes (scikit-image)
runs on the fine band, everything else set to a positive distance; only the largest connected
component is kept (spurious pieces in the mouth or nostrils are dropped), and the few boundary loops left
where the zero set leaves the band (at the lips) are fanned closed, so every mesh is watertight.

Template mode. Every template vertex is carried by the deformation field (skin) or its part motion
(eyes, teeth, ...), so topology, UVs and the explicit parts are preserved for animation and export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from avatar.morphable.geometry import close_holes, largest_component
from avatar.morphable.model import MorphableSDF


@dataclass
class ExtractionStats:
    """What an extraction cost: band sizes and field evaluations."""

    coarse_vertices: int = 0
    fine_vertices: int = 0
    field_evaluations: int = 0


def _lattice(model_extent: float, resolution: int, lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Spacing = model box's longest side / (resolution - 1); a lattice aligned to multiples of it
    that covers [lo, hi] (the deformed head can leave the canonical box). Returns spacing, origin, dims."""
    spacing = model_extent / (resolution - 1)
    origin = np.floor(lo / spacing - 1) * spacing
    dims = np.ceil((hi - origin) / spacing + 1).astype(np.int64) + 1
    return spacing, origin, dims


def _seed_points(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points covering every triangle at < 0.7 spacing apart and their face normals, each (N, 3)."""
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    edge = np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=-1).max(1)
    steps = np.clip(np.ceil(edge / (0.7 * spacing)).astype(np.int64), 1, 64)
    points, normals = [], []
    for n in np.unique(steps):
        sel = steps == n
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = (i + j) <= n
        a = (i[keep] / n).astype(np.float32)
        b = (j[keep] / n).astype(np.float32)
        bary = np.stack([1 - a - b, a, b], 1)  # (S, 3)
        points.append(np.einsum("sk,tkc->tsc", bary, tri[sel]).reshape(-1, 3))
        normals.append(np.repeat(normal[sel], bary.shape[0], axis=0))
    return np.concatenate(points, 0), np.concatenate(normals, 0).astype(np.float32)


@numba.njit(cache=True)
def _mark_cells(points, origin, spacing, cdims, mask):  # pragma: no cover - compiled
    for i in range(points.shape[0]):
        gx = min(max(int(np.floor((points[i, 0] - origin[0]) / spacing)), 0), cdims[0] - 1)
        gy = min(max(int(np.floor((points[i, 1] - origin[1]) / spacing)), 0), cdims[1] - 1)
        gz = min(max(int(np.floor((points[i, 2] - origin[2]) / spacing)), 0), cdims[2] - 1)
        mask[gx, gy, gz] = True


def _cells_near(points: np.ndarray, origin: np.ndarray, spacing: float, dims: np.ndarray, ring: int) -> np.ndarray:
    """Boolean cell mask (dims - 1) of cells containing points, dilated by ``ring`` cells."""
    cdims = dims - 1
    mask = np.zeros(tuple(cdims), dtype=bool)
    _mark_cells(np.ascontiguousarray(points, dtype=np.float32), origin.astype(np.float32), np.float32(spacing), cdims.astype(np.int64), mask)
    if ring > 0:
        from scipy import ndimage

        mask = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool), iterations=ring)
    return mask


def _cell_vertices(cells: np.ndarray) -> np.ndarray:
    """Lattice-vertex mask (cells shape + 1) of all corners of the marked cells."""
    v = np.zeros(np.array(cells.shape) + 1, dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                v[dx : dx + cells.shape[0], dy : dy + cells.shape[1], dz : dz + cells.shape[2]] |= cells
    return v


@torch.no_grad()
def narrow_band_mesh(
    model: MorphableSDF,
    codes: torch.Tensor,
    template_vertices: torch.Tensor,
    template_faces: np.ndarray,
    resolution: int = 256,
    coarse: int = 64,
    iterations: int = 4,
    refine: int = 0,
    keep_largest: bool = True,
    ring: int = 1,
) -> tuple[np.ndarray, np.ndarray, ExtractionStats]:
    """Extract the zero level set of SDF(x | codes) by coarse-to-fine narrow-band marching cubes.

    Args:
        model: the morphable SDF.
        codes: ``[z_geo, expr]`` of one shape, shape :math:`(1, K)`.
        template_vertices: canonical skin vertices that seed the band, shape :math:`(V, 3)`.
        template_faces: their triangles, shape :math:`(F, 3)`.
        resolution: fine lattice vertices along the model box's longest side (256 = "256³").
        coarse: coarse lattice resolution for the exact inverse map.
        iterations: fixed-point steps on the coarse lattice.
        refine: extra fixed-point steps at the fine vertices (0 = interpolate the coarse inverse map).
        keep_largest: keep only the largest connected component.
        ring: fine cells added around the seeded band (the zero set may leave a band that is too
            tight, which would open holes where it crosses the band's edge).

    Returns:
        vertices (cm), shape :math:`(N, 3)` float32; faces, shape :math:`(M, 3)` int32; statistics.
    """
    from skimage.measure import marching_cubes

    stats = ExtractionStats()
    extent = float((model.box_max - model.box_min).max())
    matrix, bias = model.deform.code_matrix(codes)
    moved = model.forward_map(template_vertices, codes)[0]
    stats.field_evaluations += template_vertices.shape[0]
    moved_np = moved.numpy()

    # fine band: lattice cells the forward-mapped template passes through (seeds offset by ±h/2 along
    # the face normal, so cells the true zero set may cross are included), and their corners
    lo, hi = moved_np.min(0).astype(np.float64) - 1.0, moved_np.max(0).astype(np.float64) + 1.0
    f_spacing, f_origin, f_dims = _lattice(extent, resolution, lo, hi)
    seeds, normals = _seed_points(moved_np, template_faces, f_spacing)
    offsets = 0.5 * f_spacing * normals
    f_cells = _cells_near(np.concatenate([seeds + offsets, seeds - offsets]), f_origin, f_spacing, f_dims, ring=ring)
    f_vmask = _cell_vertices(f_cells)
    f_idx = np.argwhere(f_vmask)
    f_pos = (f_idx * f_spacing + f_origin).astype(np.float32)

    # coarse lattice: exact inverse map (fixed-point steps from the nearest forward-mapped vertex)
    # at the corners of the coarse cells that hold fine band vertices
    c_spacing, c_origin, c_dims = _lattice(extent, coarse, lo, hi)
    c_cells = _cells_near(f_pos, c_origin, c_spacing, c_dims, ring=0)
    c_idx = np.argwhere(_cell_vertices(c_cells))
    c_pos = torch.from_numpy((c_idx * c_spacing + c_origin).astype(np.float32))
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(moved_np).query(c_pos.numpy(), k=1, workers=-1)
    x = c_pos[None]
    p = (c_pos - (moved[nearest] - template_vertices[nearest]))[None]
    for _ in range(iterations):
        p = x - model.deform.displacement(p, matrix, bias)
    stats.coarse_vertices = int(c_idx.shape[0])
    stats.field_evaluations += iterations * int(c_idx.shape[0])
    inverse = np.zeros(tuple(c_dims) + (3,), dtype=np.float32)
    inverse[c_idx[:, 0], c_idx[:, 1], c_idx[:, 2]] = (x - p)[0].numpy()  # x - p = D(p)

    # fine vertices: canonical position from the interpolated coarse inverse map (+ optional steps)
    disp = _trilinear(inverse, (f_pos - c_origin) / c_spacing)
    q = torch.from_numpy(f_pos - disp)
    if refine > 0:
        xq = torch.from_numpy(f_pos)[None]
        q = q[None]
        for _ in range(refine):
            q = xq - model.deform.displacement(q, matrix, bias)
        q = q[0]
        stats.field_evaluations += refine * int(f_idx.shape[0])
    sdf = model.canonical_sdf(q).numpy()
    stats.fine_vertices = int(f_idx.shape[0])

    # marching cubes on the bounding sub-volume of the band
    lo = f_idx.min(0)
    hi = f_idx.max(0) + 1
    volume = np.full(tuple(hi - lo), f_spacing * 4, dtype=np.float32)
    volume[tuple((f_idx - lo).T)] = sdf
    # scikit-image processes the cube whose *upper* corner is marked in ``mask``; it may still drop a
    # few faces at the mask's edge, and the zero set may leave the band: close_holes below fans them
    mask = np.zeros(tuple(hi - lo), dtype=bool)
    mask[1:, 1:, 1:] = f_cells[lo[0] : hi[0] - 1, lo[1] : hi[1] - 1, lo[2] : hi[2] - 1]
    verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(f_spacing,) * 3, mask=mask)
    verts = (verts + lo * f_spacing + f_origin).astype(np.float32)
    faces = faces.astype(np.int32)  # skimage orients them outward for sdf < 0 inside
    if keep_largest and len(faces):
        verts, faces = largest_component(verts, faces)
    verts, faces = close_holes(verts, faces)
    return verts, faces, stats


@numba.njit(parallel=True, fastmath=True, cache=True)
def _trilinear_dense(volume, coords, out):  # pragma: no cover - compiled
    nx, ny, nz = volume.shape[0], volume.shape[1], volume.shape[2]
    for i in numba.prange(coords.shape[0]):
        gx = min(max(coords[i, 0], 0.0), nx - 1.0001)
        gy = min(max(coords[i, 1], 0.0), ny - 1.0001)
        gz = min(max(coords[i, 2], 0.0), nz - 1.0001)
        ix, iy, iz = int(gx), int(gy), int(gz)
        fx, fy, fz = gx - ix, gy - iy, gz - iz
        for corner in range(8):
            dx, dy, dz = corner >> 2, (corner >> 1) & 1, corner & 1
            w = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy) * (fz if dz else 1.0 - fz)
            for c in range(volume.shape[3]):
                out[i, c] += w * volume[ix + dx, iy + dy, iz + dz, c]


def _trilinear(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear lookup of a (X, Y, Z, C) volume at fractional lattice coords (N, 3) → (N, C)."""
    out = np.zeros((coords.shape[0], volume.shape[3]), dtype=np.float32)
    _trilinear_dense(volume, np.ascontiguousarray(coords, dtype=np.float32), out)
    return out
