"""Texture sampling with nvdiffrast's semantics, on ``torch.nn.functional.grid_sample``.

Texel ``(i, j)`` of a ``[Ht, Wt]`` texture has its centre at ``uv = ((j + 0.5) / Wt, (i + 0.5) / Ht)``:
``u`` runs along the width, ``v`` along the height, ``v = 0`` at row 0 of the texture tensor —
exactly ``grid_sample(..., align_corners=False)`` with ``grid = 2 uv - 1``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from renderers._validate import RenderInputError
from renderers.backends import cpu, nvdiffrast_backend, resolve_backend

FILTER_MODES = ("auto", "nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("wrap", "clamp", "zero")


def _sample(tex_nchw: torch.Tensor, uv: torch.Tensor, mode: str, boundary_mode: str) -> torch.Tensor:
    """Sample ``tex_nchw [B,C,Ht,Wt]`` at ``uv [B,N,M,2]`` -> ``[B,N,M,C]``."""
    height, width = tex_nchw.shape[-2:]
    if boundary_mode == "wrap":
        # Wrap coordinates into [0, 1) and pad one texel circularly so bilinear taps wrap too.
        uv = uv - torch.floor(uv)
        tex_nchw = F.pad(tex_nchw, (1, 1, 1, 1), mode="circular")
        scale = uv.new_tensor([width / (width + 2.0), height / (height + 2.0)])
        offset = uv.new_tensor([1.0 / (width + 2.0), 1.0 / (height + 2.0)])
        grid = 2.0 * (uv * scale + offset) - 1.0
        padding = "border"
    else:
        grid = 2.0 * uv - 1.0
        padding = "border" if boundary_mode == "clamp" else "zeros"
    mode = "bilinear" if mode == "linear" else "nearest"
    out = F.grid_sample(tex_nchw, grid, mode=mode, padding_mode=padding, align_corners=False)
    return out.permute(0, 2, 3, 1)


def _mip_pyramid(tex_nchw: torch.Tensor, max_mip_level: int | None) -> list[torch.Tensor]:
    levels = [tex_nchw]
    while min(levels[-1].shape[-2:]) > 1 and (max_mip_level is None or len(levels) <= max_mip_level):
        levels.append(F.avg_pool2d(levels[-1], 2, ceil_mode=True))
    return levels


def _level_of_detail(uv_da: torch.Tensor, tex_size: tuple[int, int]) -> torch.Tensor:
    """Mip level per pixel from ``uv_da [B,H,W,4]`` = (du/dX, du/dY, dv/dX, dv/dY)."""
    height, width = tex_size
    dx = torch.stack([uv_da[..., 0] * width, uv_da[..., 2] * height], -1).norm(dim=-1)
    dy = torch.stack([uv_da[..., 1] * width, uv_da[..., 3] * height], -1).norm(dim=-1)
    return torch.log2(torch.maximum(dx, dy).clamp_min(1e-12))


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    uv_da: torch.Tensor | None = None,
    mip_level_bias: torch.Tensor | None = None,
    filter_mode: str = "auto",
    boundary_mode: str = "wrap",
    max_mip_level: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Sample a 2D texture at per-pixel texture coordinates.

    Args:
        tex: ``[B, Ht, Wt, C]`` or ``[Ht, Wt, C]`` texture (a batch of 1 is broadcast).
        uv: ``[B, H, W, 2]`` texture coordinates, usually from :func:`renderers.interpolate`.
        uv_da: optional ``[B, H, W, 4]`` image-space derivatives of ``uv`` (``interpolate(...,
            diff_attrs='all')``); enables mipmapping.
        mip_level_bias: optional ``[B, H, W]`` added to the computed mip level.
        filter_mode: ``'auto'`` (``'linear-mipmap-linear'`` when ``uv_da`` is given, else ``'linear'``),
            ``'nearest'``, ``'linear'``, ``'linear-mipmap-nearest'``, ``'linear-mipmap-linear'``.
        boundary_mode: ``'wrap'`` (nvdiffrast's default), ``'clamp'`` or ``'zero'``.
        max_mip_level: deepest mip level to build (``None``: down to 1x1).
        backend: ``"auto"``, ``"cpu"`` (a compiled bilinear kernel for ``'linear'``; other modes use
            torch), ``"torch"`` or ``"nvdiffrast"``.

    Returns:
        ``[B, H, W, C]`` sampled values; differentiable w.r.t. ``tex`` and ``uv``.

    Example:
        >>> tex = torch.rand(1, 64, 64, 3)
        >>> texture(tex, torch.full((1, 8, 8, 2), 0.5)).shape
        torch.Size([1, 8, 8, 3])
    """
    if filter_mode not in FILTER_MODES:
        raise RenderInputError(f"filter_mode must be one of {FILTER_MODES}, got {filter_mode!r}")
    if boundary_mode not in BOUNDARY_MODES:
        raise RenderInputError(f"boundary_mode must be one of {BOUNDARY_MODES} (cube maps are not supported), got {boundary_mode!r}")
    if tex.dim() == 3:
        tex = tex.unsqueeze(0)
    if tex.dim() != 4 or uv.dim() != 4 or uv.shape[-1] != 2:
        raise RenderInputError(f"tex must be [B, Ht, Wt, C] and uv [B, H, W, 2], got {list(tex.shape)} and {list(uv.shape)}")
    if tex.shape[0] not in (1, uv.shape[0]):
        raise RenderInputError(f"tex batch {tex.shape[0]} must be 1 or match uv batch {uv.shape[0]}")
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if uv_da is not None else "linear"
    if filter_mode.startswith("linear-mipmap") and uv_da is None:
        raise RenderInputError(f"filter_mode {filter_mode!r} needs uv_da: pass interpolate(..., diff_attrs='all')'s output")

    kind = resolve_backend(backend, uv.device)
    if kind == "nvdiffrast":
        return nvdiffrast_backend.texture(tex, uv, uv_da, mip_level_bias, filter_mode, boundary_mode, max_mip_level)
    if kind == "cpu" and filter_mode == "linear":
        return cpu.texture_linear(tex, uv, boundary_mode)
    tex_nchw = tex.permute(0, 3, 1, 2)
    if tex_nchw.shape[0] == 1 and uv.shape[0] > 1:
        tex_nchw = tex_nchw.expand(uv.shape[0], -1, -1, -1)
    if not filter_mode.startswith("linear-mipmap"):
        return _sample(tex_nchw, uv, filter_mode, boundary_mode)

    levels = _mip_pyramid(tex_nchw, max_mip_level)
    lod = _level_of_detail(uv_da.detach(), tex.shape[1:3])
    if mip_level_bias is not None:
        lod = lod + mip_level_bias
    lod = lod.clamp(0, len(levels) - 1)
    if filter_mode == "linear-mipmap-nearest":
        lod = torch.round(lod)
    out = None
    for index, level in enumerate(levels):
        weight = (1.0 - (lod - index).abs()).clamp_min(0)
        if index > math.ceil(float(lod.max())) or index < math.floor(float(lod.min())):
            continue
        sampled = _sample(level, uv, "linear", boundary_mode) * weight.unsqueeze(-1)
        out = sampled if out is None else out + sampled
    return out
