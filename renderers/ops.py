"""The four nvdiffrast ops: ``rasterize``, ``interpolate``, ``texture``, ``antialias``.

Each validates its inputs once and dispatches to a backend. Calls written for nvdiffrast, with a
context as the first argument (``dr.rasterize(glctx, pos, tri, resolution=[H, W])``), work too:
:class:`RasterizeContext` (also exported as ``RasterizeCudaContext`` and ``RasterizeGLContext``)
only records which backend to use.
"""

from __future__ import annotations

import torch

from renderers._validate import (
    RenderInputError,
    as_batched_pos,
    check_attr,
    check_rast,
    check_resolution,
    check_tri,
)
from renderers.antialias import antialias as _antialias
from renderers.antialias import antialias_construct_topology_hash  # noqa: F401  (re-exported)
from renderers.backends import BACKENDS, check_backend, cpu, nvdiffrast_backend, resolve_backend, torch_backend
from renderers.texture import texture as _texture

class RasterizeContext:
    """Stands in for nvdiffrast's rasterizer contexts; holds the backend to use.

    Args:
        backend: ``"auto"``, ``"cpu"``, ``"torch"`` or ``"nvdiffrast"``.
        device: accepted for nvdiffrast compatibility and ignored.
    """

    def __init__(self, backend: str = "auto", device=None):
        self.backend = check_backend(backend)


RasterizeCudaContext = RasterizeContext
RasterizeGLContext = RasterizeContext


_RASTERIZERS = {"cpu": cpu.rasterize, "torch": torch_backend.rasterize, "nvdiffrast": nvdiffrast_backend.rasterize}
_INTERPOLATORS = {"cpu": cpu.interpolate, "torch": torch_backend.interpolate, "nvdiffrast": nvdiffrast_backend.interpolate}


def rasterize(*args, **kwargs):
    """Rasterize triangles into per-pixel barycentrics, depth and triangle ids.

    Signature: ``rasterize([ctx,] pos, tri, resolution, ranges=None, grad_db=True, backend="auto")``.

    Args:
        pos: ``[B, V, 4]`` clip-space vertex positions ``(x, y, z, w)`` (or ``[V, 4]``: one image,
            or several with ``ranges``). Differentiable.
        tri: ``[T, 3]`` int32 vertex indices.
        resolution: ``(height, width)`` in pixels.
        ranges: optional ``[N, 2]`` int32 ``(first_triangle, count)`` per output image, with ``[V, 4]`` pos.
        grad_db: also return the image-space derivatives of the barycentrics.
        backend: ``"auto"``, ``"cpu"``, ``"torch"`` or ``"nvdiffrast"``.

    Returns:
        ``rast [B, H, W, 4]``: ``(u, v, z/w, triangle_id + 1)``, all zero where no triangle covers the
        pixel centre; the point is ``u p0 + v p1 + (1 - u - v) p2`` (perspective-correct). Row 0 is
        ``y = -1`` in clip space. Differentiable w.r.t. ``pos`` through ``u, v, z/w``.
        ``rast_db [B, H, W, 4]``: ``(du/dX, du/dY, dv/dX, dv/dY)`` in pixels (``[B, H, W, 0]`` without
        ``grad_db``); it carries no gradient.

    Example:
        >>> pos = torch.tensor([[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> rast, _ = rasterize(pos, tri, resolution=(4, 4))
        >>> int(rast[0, 0, 0, 3])
        1
    """
    return _rasterize(*args, **kwargs)


def _rasterize(*args, ranges=None, grad_db=True, backend="auto", **kwargs):
    if args and isinstance(args[0], RasterizeContext):
        backend, args = args[0].backend, args[1:]
    names = ("pos", "tri", "resolution", "ranges", "grad_db")
    bound = dict(zip(names, args))
    bound.update(kwargs)
    if "ranges" in bound:
        ranges = bound.pop("ranges")
    if "grad_db" in bound:
        grad_db = bound.pop("grad_db")
    missing = [name for name in ("pos", "tri", "resolution") if name not in bound]
    if missing:
        raise RenderInputError(f"rasterize() missing {', '.join(missing)}")
    unknown = set(bound) - {"pos", "tri", "resolution"}
    if unknown:
        raise RenderInputError(f"rasterize() got unexpected arguments {sorted(unknown)}")
    pos = as_batched_pos(bound["pos"])
    tri = check_tri(bound["tri"], pos.shape[1])
    height, width = check_resolution(bound["resolution"])
    if tri.device != pos.device:
        raise RenderInputError(f"pos is on {pos.device} but tri is on {tri.device}: move them to one device")
    kind = resolve_backend(backend, pos.device)
    raster = _RASTERIZERS[kind]
    if ranges is None:
        return raster(pos, tri, height, width, grad_db)
    if pos.shape[0] != 1:
        raise RenderInputError("ranges needs pos of shape [V, 4] (range mode), got a batch")
    images, derivatives = [], []
    for first, count in torch.as_tensor(ranges).tolist():
        if count <= 0:
            rast = pos.new_zeros(1, height, width, 4)
            rast_db = pos.new_zeros(1, height, width, 4 if grad_db else 0)
        else:
            rast, rast_db = raster(pos, tri[first : first + count], height, width, grad_db)
            offset = torch.zeros(4, dtype=rast.dtype, device=rast.device)
            offset[3] = first
            rast = rast + offset * (rast[..., 3:4] > 0)
        images.append(rast)
        derivatives.append(rast_db)
    return torch.cat(images), torch.cat(derivatives)


def _attribute_derivatives(attr, rast, rast_db, tri, channels):
    """``[B, H, W, 2 * len(channels)]``: ``(dA/dX, dA/dY)`` per selected attribute channel."""
    corners = torch_backend.gather_corners(attr[..., channels], rast, tri)  # [B,H,W,3,C]
    d_u = corners[..., 0, :] - corners[..., 2, :]
    d_v = corners[..., 1, :] - corners[..., 2, :]
    d_x = d_u * rast_db[..., 0:1] + d_v * rast_db[..., 2:3]
    d_y = d_u * rast_db[..., 1:2] + d_v * rast_db[..., 3:4]
    covered = (rast[..., 3:4] > 0).to(d_x.dtype)
    return (torch.stack([d_x, d_y], -1).flatten(-2)) * covered


def interpolate(attr, rast, tri, rast_db=None, diff_attrs=None, backend="auto"):
    """Interpolate vertex attributes over the rasterized triangles.

    Args:
        attr: ``[B, V, C]`` or ``[V, C]`` vertex attributes (a batch of 1 is broadcast). Differentiable.
        rast: ``[B, H, W, 4]`` output of :func:`rasterize`. Differentiable: gradients flow through
            ``u, v`` back to the clip positions given to :func:`rasterize`.
        tri: ``[T, 3]`` int32 indices into ``attr`` — the rasterized triangles' or another index
            set with the same triangle order (e.g. UV faces with their own vertices).
        rast_db: ``[B, H, W, 4]`` second output of :func:`rasterize`, needed with ``diff_attrs``.
        diff_attrs: ``"all"`` or a list of attribute channels whose image-space derivatives to return.
        backend: ``"auto"``, ``"cpu"``, ``"torch"`` or ``"nvdiffrast"``.

    Returns:
        ``out [B, H, W, C]`` (zero where no triangle) and ``out_da [B, H, W, 2 * len(diff_attrs)]``
        holding ``(dA/dX, dA/dY)`` per selected channel (``[B, H, W, 0]`` without ``diff_attrs``).
    """
    rast = check_rast(rast)
    attr = check_attr(attr, rast)
    tri = check_tri(tri, attr.shape[1])
    kind = resolve_backend(backend, attr.device)
    out = _INTERPOLATORS[kind](attr.to(rast.dtype) if attr.dtype != rast.dtype and kind == "nvdiffrast" else attr, rast, tri)
    if diff_attrs is None:
        return out, out.new_zeros(out.shape[:3] + (0,))
    if rast_db is None or rast_db.shape[-1] != 4:
        raise RenderInputError("diff_attrs needs rast_db: pass rasterize(..., grad_db=True)'s second output")
    channels = list(range(attr.shape[-1])) if diff_attrs == "all" else [int(c) for c in diff_attrs]
    return out, _attribute_derivatives(attr, rast, rast_db, tri, channels)


texture = _texture
antialias = _antialias
