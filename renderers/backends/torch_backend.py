"""Pure-torch backend: runs wherever torch runs (CPU, CUDA); autograd supplies the gradients.

Visibility is found without gradients by enumerating each triangle's candidate pixels and a
two-pass ``scatter_reduce`` depth test (nearest ``z/w``, then lowest triangle id among exact ties,
the CPU kernel's rule). The barycentrics of the visible triangle are then recomputed from ``pos``
with differentiable torch ops, so gradients reach vertex positions. Math as in
:mod:`renderers.backends.cpu_kernels`.
"""

from __future__ import annotations

import torch

# Candidate (triangle, pixel) pairs evaluated at once; bounds memory for large triangles.
_CANDIDATES_PER_CHUNK = 1 << 22


def _inverse_rows(verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adjugate rows and determinant of ``M`` whose columns are the vertices' ``(x, y, w)``.

    Args:
        verts: ``[..., 3, 3]`` — three vertices, each ``(x, y, w)``.

    Returns:
        ``adj [..., 3, 3]`` (row ``i`` = cross product of the other two vertices) and ``det [...]``;
        ``M^-1 = adj / det``.
    """
    v0, v1, v2 = verts.unbind(-2)
    adj = torch.stack([torch.cross(v1, v2, dim=-1), torch.cross(v2, v0, dim=-1), torch.cross(v0, v1, dim=-1)], -2)
    det = (v0 * adj[..., 0, :]).sum(-1)
    return adj, det


def _pixel_ndc(x: torch.Tensor, y: torch.Tensor, height: int, width: int, dtype) -> torch.Tensor:
    return torch.stack([(x.to(dtype) + 0.5) * (2.0 / width) - 1.0, (y.to(dtype) + 0.5) * (2.0 / height) - 1.0], -1)


@torch.no_grad()
def _visible_triangles(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Triangle id + 1 per pixel ``[B, H, W]`` (int64, 0 = empty), without gradients."""
    num_batch, device = pos.shape[0], pos.device
    work = torch.float64 if device.type == "cpu" else torch.float32
    corners = pos.to(work)[:, tri.long()]  # [B,T,3,4]
    xyw = corners[..., [0, 1, 3]]
    adj, det = _inverse_rows(xyw)
    w = corners[..., 3]
    ndc = corners[..., :2] / w.clamp_min(1e-30).unsqueeze(-1)
    all_front = (w > 0).all(-1)
    scale = xyw.abs().sum(-1).prod(-1)
    zn = corners[..., 2] / w.clamp_min(1e-30)
    depth_culled = all_front & (((zn > 1).all(-1)) | ((zn < -1).all(-1)))
    valid = (det.abs() > 1e-14 * scale) & (w > 0).any(-1) & ~depth_culled
    lo = ndc.amin(-2).clamp(-2, 2)
    hi = ndc.amax(-2).clamp(-2, 2)
    size = torch.tensor([width, height], device=device, dtype=work)
    box_lo = torch.ceil((lo + 1) * 0.5 * size - 0.5 - 1e-7).clamp_min(0)
    box_hi = torch.minimum(torch.floor((hi + 1) * 0.5 * size - 0.5 + 1e-7), size - 1)
    # A vertex behind the eye makes the projected extent unbounded: test the whole image.
    box_lo = torch.where(all_front.unsqueeze(-1), box_lo, torch.zeros_like(box_lo))
    box_hi = torch.where(all_front.unsqueeze(-1), box_hi, size - 1)
    extent = (box_hi - box_lo + 1).clamp_min(0).long()
    extent = extent * valid.unsqueeze(-1)
    counts = (extent[..., 0] * extent[..., 1]).reshape(-1)  # [B*T]
    inv = (adj / torch.where(valid, det, torch.ones_like(det))[..., None, None]).reshape(-1, 3, 3)
    z = corners[..., 2].reshape(-1, 3)
    box_lo, extent = box_lo.long().reshape(-1, 2), extent.reshape(-1, 2)

    num_pixels = num_batch * height * width
    best_depth = torch.full((num_pixels,), float("inf"), dtype=work, device=device)
    candidates = []
    order = torch.nonzero(counts > 0).squeeze(1)
    chunk_begin = 0
    while chunk_begin < order.numel():
        # Grow the chunk until it holds about _CANDIDATES_PER_CHUNK candidate pixels.
        run = torch.cumsum(counts[order[chunk_begin:]], 0)
        chunk_end = chunk_begin + max(1, int(torch.searchsorted(run, _CANDIDATES_PER_CHUNK)))
        items = order[chunk_begin:chunk_end]
        chunk_begin = chunk_end
        n = counts[items]
        item = torch.repeat_interleave(items, n)
        local = torch.arange(int(n.sum()), device=device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        ex = extent[item, 0]
        px = box_lo[item, 0] + local % ex
        py = box_lo[item, 1] + local // ex
        p = torch.cat([_pixel_ndc(px, py, height, width, work), torch.ones_like(px, dtype=work).unsqueeze(-1)], -1)
        c = (inv[item] @ p.unsqueeze(-1)).squeeze(-1)
        zw = (c * z[item]).sum(-1)
        inside = (c >= 0).all(-1) & (c.sum(-1) > 0) & (zw >= -1) & (zw <= 1)
        b = item // tri.shape[0]
        pixel = (b * height + py) * width + px
        pixel, zw, item = pixel[inside], zw[inside], item[inside]
        best_depth.scatter_reduce_(0, pixel, zw, reduce="amin")
        candidates.append((pixel, zw, item))
    ids = torch.full((num_pixels,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    for pixel, zw, item in candidates:
        winner = zw == best_depth[pixel]
        tri_id = item[winner] % tri.shape[0]
        ids.scatter_reduce_(0, pixel[winner], tri_id + 1, reduce="amin")
    ids = torch.where(ids == torch.iinfo(torch.int64).max, torch.zeros_like(ids), ids)
    return ids.reshape(num_batch, height, width)


def barycentrics(pos: torch.Tensor, tri: torch.Tensor, ids: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Differentiable ``(u, v, z/w)`` at covered pixels.

    Args:
        pos: ``[B, V, 4]`` clip-space positions.
        tri: ``[T, 3]`` int32 triangles.
        ids: ``[B, H, W]`` int64 triangle id + 1 per pixel (0 = empty).

    Returns:
        ``[B, H, W, 4]``: ``u, v, z/w, triangle_id + 1`` (zeros where empty), differentiable w.r.t. ``pos``.
    """
    num_batch = pos.shape[0]
    flat_ids = ids.reshape(-1)
    covered = torch.nonzero(flat_ids).squeeze(1)
    rast = torch.zeros(num_batch * height * width, 4, dtype=pos.dtype, device=pos.device)
    if covered.numel() > 0:
        b = covered // (height * width)
        y = (covered // width) % height
        x = covered % width
        t = flat_ids[covered] - 1
        corners = pos[b.unsqueeze(1), tri.long()[t]]  # [N,3,4]
        adj, det = _inverse_rows(corners[..., [0, 1, 3]])
        p = torch.cat([_pixel_ndc(x, y, height, width, pos.dtype), torch.ones_like(x, dtype=pos.dtype).unsqueeze(-1)], -1)
        c = (adj @ p.unsqueeze(-1)).squeeze(-1) / det.unsqueeze(-1)
        s = c.sum(-1)
        zw = (c * corners[..., 2]).sum(-1)
        values = torch.stack([c[:, 0] / s, c[:, 1] / s, zw, (t + 1).to(pos.dtype)], -1)
        rast = rast.index_put((covered,), values)
    return rast.reshape(num_batch, height, width, 4)


def rast_derivatives(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """``(du/dX, du/dY, dv/dX, dv/dY)`` per pixel ``[B, H, W, 4]`` in pixel units (no gradient)."""
    with torch.no_grad():
        num_batch, height, width = rast.shape[:3]
        ids = rast[..., 3].long().reshape(-1)
        covered = torch.nonzero(ids).squeeze(1)
        out = torch.zeros(num_batch * height * width, 4, dtype=rast.dtype, device=rast.device)
        if covered.numel() > 0:
            b = covered // (height * width)
            t = ids[covered] - 1
            corners = pos.to(torch.float64 if pos.device.type == "cpu" else pos.dtype)[b.unsqueeze(1), tri.long()[t]]
            adj, det = _inverse_rows(corners[..., [0, 1, 3]])
            m = adj / det[:, None, None]
            y = (covered // width) % height
            x = covered % width
            p = torch.cat([_pixel_ndc(x, y, height, width, m.dtype), torch.ones_like(x, dtype=m.dtype)[:, None]], -1)
            c = (m @ p.unsqueeze(-1)).squeeze(-1)
            s_inv = 1.0 / c.sum(-1)
            u, v = c[:, 0] * s_inv, c[:, 1] * s_inv
            sa, sb = m[:, :, 0].sum(-1), m[:, :, 1].sum(-1)
            out[covered] = torch.stack(
                [
                    (m[:, 0, 0] - u * sa) * s_inv * (2.0 / width),
                    (m[:, 0, 1] - u * sb) * s_inv * (2.0 / height),
                    (m[:, 1, 0] - v * sa) * s_inv * (2.0 / width),
                    (m[:, 1, 1] - v * sb) * s_inv * (2.0 / height),
                ],
                -1,
            ).to(rast.dtype)
        return out.reshape(num_batch, height, width, 4)


def rasterize(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, grad_db: bool = True):
    """See :func:`renderers.rasterize`."""
    ids = _visible_triangles(pos, tri, height, width)
    rast = barycentrics(pos, tri, ids, height, width)
    rast_db = rast_derivatives(pos, tri, rast) if grad_db else rast.new_zeros(rast.shape[:3] + (0,))
    return rast, rast_db


def gather_corners(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Attributes of each pixel's triangle corners ``[B, H, W, 3, C]`` (triangle 0's where empty).

    Args:
        attr: ``[1 or B, V, C]``; rast: ``[B, H, W, 4]``; tri: ``[T, 3]`` int32.
    """
    ids = rast[..., 3].detach().long()
    corner_idx = tri.long()[(ids - 1).clamp_min(0)]  # [B,H,W,3]
    if attr.shape[0] == 1:
        return attr[0][corner_idx]
    batch = torch.arange(rast.shape[0], device=attr.device)[:, None, None, None]
    return attr[batch, corner_idx]


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """See :func:`renderers.interpolate`. ``attr [1 or B, V, C]`` -> ``[B, H, W, C]``."""
    corners = gather_corners(attr, rast, tri)
    u, v = rast[..., 0:1], rast[..., 1:2]
    out = u * corners[..., 0, :] + v * corners[..., 1, :] + (1 - u - v) * corners[..., 2, :]
    return out * (rast[..., 3:4] > 0).to(out.dtype)
