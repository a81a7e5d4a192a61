"""Fast forward drawing of textured, shaded frames on the CPU (video and previews, no gradients).

:func:`draw_textured` gives the image of the op chain ::

    rast, _ = rasterize(pos, tri, resolution)
    albedo = texture(tex[None], interpolate(uv, rast, uv_tri)[0], filter_mode="linear", boundary_mode=...)
    colour = albedo * interpolate(shade, rast, tri)[0]           # without shade: albedo
    image = where(rast[..., 3:] > 0, colour, background) -> uint8 (clamp to [0, 1], x 255, rounded)

in one compiled pass per frame (:mod:`renderers.backends.cpu_draw`): one thread draws a whole frame
with its buffers in cache, and no float images pass between ops. The arithmetic is the ops', so the
frames equal the chain's up to float rounding of the texture taps (tested).
"""

from __future__ import annotations

import numpy as np
import torch

from renderers._validate import RenderInputError

_BOUNDARY_CODES = {"wrap": 0, "clamp": 1, "zero": 2}


def _array(value, dtype, name: str, ndim: int) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != ndim:
        raise RenderInputError(f"{name} must have {ndim} dimensions, got shape {tuple(array.shape)}")
    return np.ascontiguousarray(array, dtype=dtype)


def draw_textured(pos: torch.Tensor, tri: torch.Tensor, uv: torch.Tensor, uv_tri: torch.Tensor, tex: torch.Tensor,
                  resolution: tuple[int, int], shade: torch.Tensor | None = None, tri_mask: torch.Tensor | None = None,
                  background=(1.0, 1.0, 1.0), boundary_mode: str = "clamp", flip_y: bool = True,
                  parallel: bool = True) -> np.ndarray:
    """Textured, shaded frames as uint8 images (forward only; see the module docstring).

    Args:
        pos: clip-space vertex positions, shape :math:`(B, V, 4)`.
        tri: triangles, shape :math:`(T, 3)` integer indices into ``pos``.
        uv: texture coordinates, shape :math:`(V_t, 2)` (``(0, 0)`` = first texel row and column).
        uv_tri: per-triangle indices into ``uv``, shape :math:`(T, 3)`.
        tex: texture, shape :math:`(H_t, W_t, C)` float in [0, 1].
        resolution: ``(height, width)`` of the frames.
        shade: per-vertex factors multiplied into the albedo, shape :math:`(B, V, C)` or :math:`(1, V, C)`;
            ``None`` for the plain texture.
        tri_mask: triangles to draw, shape :math:`(B, T)` or :math:`(1, T)` bool (e.g. front-facing ones);
            ``None`` draws all.
        background: ``C`` values in [0, 1] where no triangle covers the pixel centre.
        boundary_mode: texture boundary, ``"clamp"``, ``"wrap"`` or ``"zero"``.
        flip_y: put row 0 at the top (image convention) instead of nvdiffrast's bottom.
        parallel: frames on all numba threads; ``False`` draws them one after another in the calling
            thread without holding the GIL (for a rendering thread next to other work).

    Returns:
        frames, shape :math:`(B, H, W, C)` uint8.

    Example:
        >>> pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> uv = torch.tensor([[0., 0], [1, 0], [0, 1]])
        >>> draw_textured(pos, tri, uv, tri, torch.full((2, 2, 3), 0.5), (4, 4)).shape
        (1, 4, 4, 3)
    """
    import numba

    from renderers.backends import cpu_draw

    pos_np = _array(pos, np.float64, "pos", 3)
    if pos_np.shape[2] != 4:
        raise RenderInputError(f"pos must have shape [B, V, 4], got {tuple(pos_np.shape)}")
    tri_np, uv_tri_np = _array(tri, np.int32, "tri", 2), _array(uv_tri, np.int32, "uv_tri", 2)
    uv_np, tex_np = _array(uv, np.float32, "uv", 2), _array(tex, np.float32, "tex", 3)
    if tri_np.shape[1] != 3 or uv_tri_np.shape != tri_np.shape:
        raise RenderInputError(f"tri and uv_tri must both have shape [T, 3], got {tri_np.shape} and {uv_tri_np.shape}")
    if tri_np.size and (tri_np.min() < 0 or tri_np.max() >= pos_np.shape[1]):
        raise RenderInputError(f"tri indexes vertices outside [0, {pos_np.shape[1]})")
    if uv_tri_np.size and (uv_tri_np.min() < 0 or uv_tri_np.max() >= uv_np.shape[0]):
        raise RenderInputError(f"uv_tri indexes texture coordinates outside [0, {uv_np.shape[0]})")
    channels = tex_np.shape[2]
    if shade is None:
        shade_np = np.zeros((1, 0, channels), np.float32)
    else:
        shade_np = _array(shade, np.float32, "shade", 3)
        if shade_np.shape[0] not in (1, pos_np.shape[0]) or shade_np.shape[1:] != (pos_np.shape[1], channels):
            raise RenderInputError(
                f"shade must have shape [B or 1, {pos_np.shape[1]}, {channels}], got {shade_np.shape}")
    if tri_mask is None:
        mask_np = np.zeros((1, 0), np.bool_)
    else:
        mask_np = _array(tri_mask, np.bool_, "tri_mask", 2)
        if mask_np.shape[0] not in (1, pos_np.shape[0]) or mask_np.shape[1] != tri_np.shape[0]:
            raise RenderInputError(f"tri_mask must have shape [B or 1, {tri_np.shape[0]}], got {mask_np.shape}")
    back = np.asarray(background, np.float32).reshape(-1)
    if back.size != channels:
        raise RenderInputError(f"background needs {channels} values, got {back.size}")
    if boundary_mode not in _BOUNDARY_CODES:
        raise RenderInputError(f"boundary_mode must be one of {sorted(_BOUNDARY_CODES)}, got {boundary_mode!r}")
    height, width = int(resolution[0]), int(resolution[1])
    if height < 1 or width < 1:
        raise RenderInputError(f"resolution must be positive, got {resolution}")
    out = np.empty((pos_np.shape[0], height, width, channels), np.uint8)
    args = (pos_np, tri_np, uv_np, uv_tri_np, tex_np, _BOUNDARY_CODES[boundary_mode], shade_np, mask_np, back,
            bool(flip_y), out)
    if out.shape[0] and parallel:
        cpu_draw.draw_frames_parallel(*args, max(1, numba.get_num_threads()))
    elif out.shape[0]:
        cpu_draw.draw_frames_serial(*args)
    return out


__all__ = ["draw_textured"]
