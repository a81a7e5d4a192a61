"""CPU backend: numba kernels for visibility, barycentrics and interpolation, with hand-derived
backward passes (see :mod:`renderers.backends.cpu_kernels` for the math)."""

from __future__ import annotations

import numba
import numpy as np
import torch

from renderers.backends import cpu_kernels as kernels


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().contiguous().numpy()


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, height, width, want_db):
        pos_np, tri_np = _np(pos), _np(tri)
        num_batch, num_tri = pos_np.shape[0], tri_np.shape[0]
        coef = np.empty((num_batch, num_tri, kernels.COEF_SIZE), np.float64)  # read only where bbox is set
        bbox = np.empty((num_batch, num_tri, 4), np.int32)
        # Triangle setup in float64: the barycentric planes of small triangles are ill-conditioned.
        kernels.setup_triangles(pos_np.astype(np.float64, copy=False), tri_np, height, width, coef, bbox)
        tiles_x = -(-width // kernels.TILE)
        tiles_y = -(-height // kernels.TILE)
        num_threads = numba.get_num_threads()
        offsets, tri_list = kernels.bin_triangles(bbox, tiles_x, tiles_y, num_threads)
        rast = np.zeros((num_batch, height, width, 4), pos_np.dtype)
        rast_db = np.zeros((num_batch, height, width, 4) if want_db else (1, 1, 1, 4), pos_np.dtype)
        kernels.rasterize_tiles(coef, bbox, offsets, tri_list, tiles_x, tiles_y, rast, rast_db, want_db, num_threads)
        rast_t, rast_db_t = torch.from_numpy(rast), torch.from_numpy(rast_db)
        ctx.coef, ctx.tri_np, ctx.num_vertices = coef, tri_np, pos_np.shape[1]
        ctx.save_for_backward(rast_t)
        ctx.mark_non_differentiable(rast_db_t)  # used for mip level selection only
        return rast_t, rast_db_t

    @staticmethod
    def backward(ctx, grad_rast, grad_rast_db):
        (rast,) = ctx.saved_tensors
        grad_pos = kernels.rasterize_backward(
            ctx.coef, ctx.tri_np, rast.numpy(), _np(grad_rast), ctx.num_vertices
        )
        return torch.from_numpy(grad_pos), None, None, None, None


def rasterize(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, grad_db: bool = True):
    """See :func:`renderers.rasterize`. ``pos [B,V,4]`` on the CPU, ``tri [T,3]`` int32."""
    rast, rast_db = _Rasterize.apply(pos, tri, height, width, grad_db)
    if not grad_db:
        rast_db = torch.zeros(rast.shape[:3] + (0,), dtype=rast.dtype)
    return rast, rast_db


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr, rast, tri):
        attr_np, rast_np, tri_np = _np(attr), _np(rast), _np(tri)
        out = np.zeros(rast_np.shape[:3] + (attr_np.shape[2],), attr_np.dtype)
        kernels.interpolate_forward(attr_np, rast_np, tri_np, out)
        ctx.save_for_backward(attr, rast, tri)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        attr, rast, tri = ctx.saved_tensors
        want_attr, want_rast = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_attr, grad_rast = kernels.interpolate_backward(
            _np(attr), _np(rast), _np(tri), _np(grad_out.to(attr.dtype)), want_attr, want_rast
        )
        return (
            torch.from_numpy(grad_attr) if want_attr else None,
            torch.from_numpy(grad_rast).to(rast.dtype) if want_rast else None,
            None,
        )


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """See :func:`renderers.interpolate`. ``attr [1 or B, V, C]`` -> ``[B, H, W, C]``."""
    return _Interpolate.apply(attr, rast, tri)


_BOUNDARY_CODES = {"wrap": 0, "clamp": 1, "zero": 2}


class _TextureLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tex, uv, boundary):
        tex_np, uv_np = _np(tex), _np(uv.to(tex.dtype))
        out = np.empty(uv_np.shape[:3] + (tex_np.shape[3],), tex_np.dtype)
        kernels.texture_linear_forward(tex_np, uv_np, boundary, out)
        ctx.boundary = boundary
        ctx.save_for_backward(tex, uv)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        tex, uv = ctx.saved_tensors
        want_tex, want_uv = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_tex, grad_uv = kernels.texture_linear_backward(
            _np(tex), _np(uv.to(tex.dtype)), ctx.boundary, _np(grad_out.to(tex.dtype)), want_tex, want_uv
        )
        return (
            torch.from_numpy(grad_tex) if want_tex else None,
            torch.from_numpy(grad_uv).to(uv.dtype) if want_uv else None,
            None,
        )


def texture_linear(tex: torch.Tensor, uv: torch.Tensor, boundary_mode: str) -> torch.Tensor:
    """Bilinear texture lookup; ``tex [1 or B, Ht, Wt, C]``, ``uv [B, H, W, 2]`` -> ``[B, H, W, C]``."""
    return _TextureLinear.apply(tex, uv, _BOUNDARY_CODES[boundary_mode])


class _Antialias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, color, rast, pos, tri, neighbor, boost):
        color_np, rast_np, pos_np, tri_np = _np(color), _np(rast), _np(pos), _np(tri)
        num_batch, height, width = rast_np.shape[:3]
        screen = np.empty(pos_np.shape[:2] + (2,), np.float64)
        silhouette = np.zeros((num_batch, tri_np.shape[0], 3), np.bool_)
        kernels.silhouette_edges(pos_np, tri_np, neighbor, width, height, screen, silhouette)
        alpha = np.empty((num_batch, height, width, 2), np.float64)
        edge = np.zeros((num_batch, height, width, 2), np.int8)
        front_is_first = np.zeros((num_batch, height, width, 2), np.bool_)
        kernels.antialias_pairs(rast_np, tri_np, screen, silhouette, alpha, edge, front_is_first)
        out = np.empty_like(color_np)
        kernels.antialias_forward(color_np, alpha, front_is_first, out)
        ctx.saved = (color_np, rast_np, pos_np, tri_np, screen, alpha, edge, front_is_first, boost)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        color_np, rast_np, pos_np, tri_np, screen, alpha, edge, front_is_first, boost = ctx.saved
        grad_np = _np(grad_out.to(torch.from_numpy(color_np).dtype))
        grad_color = grad_pos = None
        if ctx.needs_input_grad[0]:
            grad_color = np.empty_like(color_np)
            kernels.antialias_backward_color(color_np, alpha, front_is_first, grad_np, grad_color)
            grad_color = torch.from_numpy(grad_color)
        if ctx.needs_input_grad[2]:
            grad_pos = np.zeros(pos_np.shape, np.float64)
            kernels.antialias_backward_pos(
                pos_np, tri_np, rast_np, screen, color_np, alpha, edge, front_is_first, grad_np, boost, grad_pos
            )
            grad_pos = torch.from_numpy(grad_pos.astype(pos_np.dtype))
        return grad_color, None, grad_pos, None, None, None


def antialias(color, rast, pos, tri, neighbor: torch.Tensor, pos_gradient_boost: float = 1.0):
    """See :func:`renderers.antialias`. ``pos`` must have the batch size of ``rast``."""
    return _Antialias.apply(color, rast, pos, tri, _np(neighbor), float(pos_gradient_boost))
