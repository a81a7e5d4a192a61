"""Input checks at the public boundary; inner code trusts what passes them."""

from __future__ import annotations

import torch


class RenderInputError(ValueError):
    """Invalid input to a renderer op: the message says what is wrong and how to fix it."""


def as_batched_pos(pos: torch.Tensor) -> torch.Tensor:
    """Check clip-space positions and return them as ``[B, V, 4]``."""
    if not isinstance(pos, torch.Tensor):
        raise RenderInputError(f"pos must be a torch.Tensor, got {type(pos).__name__}")
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    if pos.dim() != 3 or pos.shape[-1] != 4:
        raise RenderInputError(
            f"pos must have shape [B, V, 4] or [V, 4] (clip-space x, y, z, w), got {list(pos.shape)}"
        )
    if not pos.is_floating_point():
        raise RenderInputError(f"pos must be a float tensor, got {pos.dtype}")
    if pos.shape[1] == 0:
        raise RenderInputError("pos has no vertices: the mesh is empty")
    if not torch.isfinite(pos).all():
        raise RenderInputError("pos contains NaN or infinite values: check the vertices and the camera")
    return pos


def check_tri(tri: torch.Tensor, num_vertices: int, what: str = "tri") -> torch.Tensor:
    """Check a ``[T, 3]`` int32 triangle tensor whose indices address ``num_vertices`` vertices."""
    if not isinstance(tri, torch.Tensor):
        raise RenderInputError(f"{what} must be a torch.Tensor, got {type(tri).__name__}")
    if tri.dtype != torch.int32:
        raise RenderInputError(f"{what} must be int32 like nvdiffrast's, got {tri.dtype}: use {what}.int()")
    if tri.dim() != 2 or tri.shape[1] != 3:
        raise RenderInputError(f"{what} must have shape [T, 3], got {list(tri.shape)}")
    if tri.shape[0] == 0:
        raise RenderInputError(f"{what} has no triangles: the mesh is empty")
    low, high = int(tri.min()), int(tri.max())
    if low < 0 or high >= num_vertices:
        raise RenderInputError(
            f"{what} indices must lie in [0, {num_vertices - 1}] but range over [{low}, {high}]"
        )
    return tri


def check_resolution(resolution) -> tuple[int, int]:
    """Check ``(height, width)`` and return it as two ints."""
    try:
        height, width = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise RenderInputError(f"resolution must be (height, width), got {resolution!r}") from None
    if height <= 0 or width <= 0:
        raise RenderInputError(f"resolution must be positive, got ({height}, {width})")
    if height > 16384 or width > 16384:
        raise RenderInputError(f"resolution ({height}, {width}) exceeds the 16384 x 16384 limit")
    return height, width


def check_rast(rast: torch.Tensor) -> torch.Tensor:
    if not isinstance(rast, torch.Tensor) or rast.dim() != 4 or rast.shape[-1] != 4:
        shape = list(rast.shape) if isinstance(rast, torch.Tensor) else type(rast).__name__
        raise RenderInputError(f"rast must be the [B, H, W, 4] output of rasterize, got {shape}")
    return rast


def check_attr(attr: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """Check vertex attributes and return them as ``[B or 1, V, C]``."""
    if not isinstance(attr, torch.Tensor) or not attr.is_floating_point():
        raise RenderInputError("attr must be a float torch.Tensor of shape [B, V, C] or [V, C]")
    if attr.dim() == 2:
        attr = attr.unsqueeze(0)
    if attr.dim() != 3:
        raise RenderInputError(f"attr must have shape [B, V, C] or [V, C], got {list(attr.shape)}")
    if attr.shape[0] not in (1, rast.shape[0]):
        raise RenderInputError(
            f"attr has batch size {attr.shape[0]} but rast has {rast.shape[0]}: use 1 or {rast.shape[0]}"
        )
    return attr
