"""Analytic silhouette antialiasing with nvdiffrast's semantics (Laine et al. 2020, §3.4).

For every horizontally or vertically adjacent pixel pair whose triangle ids differ, take the
triangle in front (the only one if the other pixel is empty). Walk from its pixel centre towards
the neighbour's: the edge through which the segment leaves the triangle is found in screen space.
If that edge is a *silhouette* edge — a mesh boundary, or shared with a triangle facing the other
way — the colours are blended by how far the edge lies past the midpoint:

    alpha = distance from the front pixel's centre to the crossing, in units of the pixel spacing
    alpha > 0.5: the neighbour gets (alpha - 0.5) of the front colour
    alpha < 0.5: the front pixel gets (0.5 - alpha) of the neighbour's colour

``alpha`` is computed from clip-space positions with torch ops, so the gradient of the blend
reaches the silhouette vertices' positions — the visibility gradient that rasterization alone
lacks. The blend is a sum of per-pair terms, so autograd also carries gradients to ``color``.
"""

from __future__ import annotations

import torch

from renderers._validate import RenderInputError, as_batched_pos, check_rast, check_tri
from renderers.backends import cpu, nvdiffrast_backend, resolve_backend


class TopologyHash:
    """Edge adjacency of a triangle list: ``neighbor [T, 3]`` is the triangle across the edge
    opposite vertex ``k`` of triangle ``t`` (``-1``: boundary or non-manifold edge)."""

    def __init__(self, tri: torch.Tensor):
        tri_long = tri.long()
        num_tri = tri_long.shape[0]
        # Edge k is opposite vertex k: vertices (k+1, k+2).
        a = torch.stack([tri_long[:, 1], tri_long[:, 2], tri_long[:, 0]], 1)
        b = torch.stack([tri_long[:, 2], tri_long[:, 0], tri_long[:, 1]], 1)
        lo, hi = torch.minimum(a, b).reshape(-1), torch.maximum(a, b).reshape(-1)
        key = lo * (int(tri_long.max()) + 1) + hi
        order = torch.argsort(key)  # edge slots (t * 3 + k) grouped by undirected edge
        _, counts = torch.unique_consecutive(key[order], return_counts=True)
        group_start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        manifold = torch.repeat_interleave(counts == 2, counts)
        slot = torch.arange(order.numel(), device=tri.device)
        partner_slot = torch.where(slot == group_start, group_start + 1, group_start)
        neighbor = torch.full((num_tri * 3,), -1, dtype=torch.long, device=tri.device)
        neighbor[order[manifold]] = order[partner_slot[manifold]] // 3
        self.neighbor = neighbor.reshape(num_tri, 3)
        self.num_triangles = num_tri


_topology_cache: dict[tuple, TopologyHash] = {}


def antialias_construct_topology_hash(tri: torch.Tensor) -> TopologyHash:
    """Precompute edge adjacency for :func:`antialias` (nvdiffrast's function of the same name)."""
    check_tri(tri, int(tri.max()) + 1 if tri.numel() else 0)
    return TopologyHash(tri)


def _cached_topology(tri: torch.Tensor) -> TopologyHash:
    key = (tri.data_ptr(), tuple(tri.shape), tri._version, tri.device)
    topology = _topology_cache.get(key)
    if topology is None:
        if len(_topology_cache) > 16:
            _topology_cache.clear()
        topology = _topology_cache[key] = TopologyHash(tri)
    return topology


def _pairs(ids: torch.Tensor, depth: torch.Tensor, axis: int):
    """Adjacent pixel pairs along ``axis`` (2 = x, 1 = y) with different ids.

    Returns flat indices of the front pixel and of the other pixel, each ``[N]``.
    """
    num_batch, height, width = ids.shape
    index = torch.arange(num_batch * height * width, device=ids.device).reshape(num_batch, height, width)
    first = index.narrow(axis, 0, ids.shape[axis] - 1).reshape(-1)
    second = index.narrow(axis, 1, ids.shape[axis] - 1).reshape(-1)
    flat_ids, flat_depth = ids.reshape(-1), depth.reshape(-1)
    differ = flat_ids[first] != flat_ids[second]
    first, second = first[differ], second[differ]
    id1, id2 = flat_ids[first], flat_ids[second]
    first_in_front = (id2 == 0) | ((id1 != 0) & (flat_depth[first] <= flat_depth[second]))
    front = torch.where(first_in_front, first, second)
    other = torch.where(first_in_front, second, first)
    return front, other


def antialias(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos: torch.Tensor,
    tri: torch.Tensor,
    topology_hash: TopologyHash | None = None,
    pos_gradient_boost: float = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    """Antialias silhouette edges analytically so gradients reach silhouette vertex positions.

    Args:
        color: ``[B, H, W, C]`` shaded image (nvdiffrast row order: row 0 is the bottom).
        rast: ``[B, H, W, 4]`` output of :func:`renderers.rasterize` for ``pos`` and ``tri``.
        pos: ``[B, V, 4]`` or ``[V, 4]`` clip-space positions used to rasterize.
        tri: ``[T, 3]`` int32 triangles used to rasterize.
        topology_hash: optional :func:`antialias_construct_topology_hash` result (cached otherwise).
        pos_gradient_boost: multiplier on the gradient that reaches ``pos`` (as in nvdiffrast).
        backend: ``"auto"``, ``"cpu"`` (compiled kernels) or ``"torch"`` (any device; nvdiffrast's own
            antialias is used for ``"nvdiffrast"``).

    Returns:
        ``[B, H, W, C]`` antialiased colour, differentiable w.r.t. ``color`` and ``pos``.
    """
    check_rast(rast)
    pos = as_batched_pos(pos)
    check_tri(tri, pos.shape[1])
    if color.dim() != 4 or color.shape[:3] != rast.shape[:3]:
        raise RenderInputError(f"color must be [B, H, W, C] matching rast {list(rast.shape[:3])}, got {list(color.shape)}")
    if pos.shape[0] not in (1, rast.shape[0]):
        raise RenderInputError(f"pos batch {pos.shape[0]} must be 1 or match rast batch {rast.shape[0]}")
    topology = topology_hash or _cached_topology(tri)
    kind = resolve_backend(backend, color.device)
    if kind == "nvdiffrast":
        return nvdiffrast_backend.antialias(color, rast, pos, tri, pos_gradient_boost)
    if kind == "cpu":
        return cpu.antialias(color, rast, pos.expand(rast.shape[0], -1, -1), tri, topology.neighbor, pos_gradient_boost)
    num_batch, height, width, channels = color.shape
    ids = rast[..., 3].detach().long()
    depth = rast[..., 2].detach()

    # Screen-space vertices (pixels) and the facing of each triangle per batch item.
    w = pos[..., 3:4]
    front_of_eye = w > 0
    screen = pos[..., :2] / torch.where(front_of_eye, w, torch.ones_like(w))
    screen = (screen + 1) * 0.5 * screen.new_tensor([width, height])  # pixel units; centre at i + 0.5
    tri_long = tri.long()
    corners = screen.detach()[:, tri_long]  # [Bp,T,3,2]
    e1, e2 = corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    facing = torch.sign(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0])  # [Bp,T]
    valid_tri = front_of_eye[:, tri_long, 0].all(-1)
    neighbor = topology.neighbor  # [T,3]
    neighbor_facing = facing[:, neighbor.clamp_min(0)]  # [Bp,T,3]
    silhouette = (neighbor < 0) | (neighbor_facing != facing.unsqueeze(-1))  # [Bp,T,3]
    silhouette &= valid_tri.unsqueeze(-1)
    has_silhouette = silhouette.any(-1)

    flat_color = color.reshape(-1, channels)
    deltas, targets = [], []
    for axis in (2, 1):
        front, other = _pairs(ids, depth, axis)
        b = front // (height * width)
        bp = b if pos.shape[0] > 1 else torch.zeros_like(b)
        t = ids.reshape(-1)[front] - 1
        keep = has_silhouette[bp, t]
        front, other, b, bp, t = front[keep], other[keep], b[keep], bp[keep], t[keep]
        if front.numel() == 0:
            continue
        fy, fx = (front // width) % height, front % width
        oy, ox = (other // width) % height, other % width
        start = torch.stack([fx, fy], -1).to(color.dtype) + 0.5
        step = torch.stack([ox - fx, oy - fy], -1).to(color.dtype)
        # Edge k joins vertices k+1 and k+2; segment start + alpha * step crosses its line where
        # the 2D cross product changes sign.
        tri_corners = screen[bp.unsqueeze(1), tri_long[t]]  # [N,3,2], differentiable
        p = tri_corners.roll(-1, dims=1)
        q = tri_corners.roll(-2, dims=1)
        edge = q - p
        rel = start.unsqueeze(1) - p
        cross_start = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]
        cross_step = edge[..., 0] * step[:, None, 1] - edge[..., 1] * step[:, None, 0]
        with torch.no_grad():
            alpha_all = -cross_start / torch.where(cross_step == 0, torch.full_like(cross_step, 1e-30), cross_step)
            leaving = (cross_start * cross_step < 0) & (alpha_all >= 0) & (alpha_all <= 1)
            alpha_masked = torch.where(leaving, alpha_all, torch.full_like(alpha_all, 2.0))
            k = alpha_masked.argmin(1)
            found = alpha_masked.gather(1, k[:, None]).squeeze(1) <= 1
            found &= silhouette[bp, t, k]
        if not bool(found.any()):
            continue
        idx = torch.nonzero(found).squeeze(1)
        k = k[idx]
        alpha = -cross_start[idx, k] / cross_step[idx, k]
        if pos_gradient_boost != 1.0:
            alpha = alpha * pos_gradient_boost - alpha.detach() * (pos_gradient_boost - 1.0)
        front_i, other_i = front[idx], other[idx]
        color_front, color_other = flat_color[front_i], flat_color[other_i]
        into_other = (alpha > 0.5).unsqueeze(-1)
        weight = (alpha - 0.5).abs().unsqueeze(-1)
        delta = torch.where(into_other, color_front - color_other, color_other - color_front) * weight
        deltas.append(delta)
        targets.append(torch.where(into_other.squeeze(-1), other_i, front_i))
    if not deltas:
        return color.clone()
    out = flat_color.index_add(0, torch.cat(targets), torch.cat(deltas))
    return out.reshape(num_batch, height, width, channels)
