"""``render_mesh``: one call from a textured, lit triangle mesh to images, built on the four core ops.

Image convention of everything returned here: **row 0 is the top** of the image (as in image files and
photos, and :meth:`renderers.camera.Camera.project`); the core ops' nvdiffrast-convention outputs
(row 0 at clip-space y = -1, the bottom) are flipped once at the end.

Texture convention: ``texture`` is an image with row 0 at the top (as loaded from a PNG) and ``uv`` are
OBJ-style coordinates with ``v = 0`` at the bottom edge of that image and ``v = 1`` at the top; u and v
wrap (ICT's UDIM-style u in [0, 7) samples the same image once per tile).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from renderers import ops
from renderers._validate import RenderInputError
from renderers.camera import Camera
from renderers.lighting import sh_shade

__all__ = ["RenderOutput", "render_mesh", "vertex_normals", "to_uint8_image", "DEFAULT_ALBEDO"]

DEFAULT_ALBEDO = 0.7  # flat grey used when no texture is given


class RenderOutput(NamedTuple):
    """What :func:`render_mesh` returns; every image has row 0 at the top.

    Attributes:
        rgba: colour premultiplied by coverage (composited over transparent black) and coverage, shape
            :math:`(B, H, W, 4)`; silhouettes are antialiased when asked.
        depth: depth along the viewing axis (view-space ``-z``), 0 where no surface, shape :math:`(B, H, W, 1)`.
        normals: world-space unit normals interpolated from smooth vertex normals, 0 where no surface,
            shape :math:`(B, H, W, 3)`.
        mask: 1 where a triangle covers the pixel centre else 0, shape :math:`(B, H, W, 1)`.
    """

    rgba: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    mask: torch.Tensor


_incidence_cache: dict[tuple, torch.Tensor] = {}


def _vertex_face_incidence(faces: torch.Tensor, num_vertices: int, dtype: torch.dtype) -> torch.Tensor:
    """Sparse CSR ``[V, F]`` matrix with a 1 where vertex ``v`` is a corner of face ``f`` (cached)."""
    key = (faces.data_ptr(), tuple(faces.shape), faces._version, faces.device, num_vertices, dtype)
    matrix = _incidence_cache.get(key)
    if matrix is None:
        corner_vertex = faces.long().reshape(-1)
        order = torch.argsort(corner_vertex, stable=True)
        rows = torch.bincount(corner_vertex, minlength=num_vertices)
        crow = torch.cat([rows.new_zeros(1), torch.cumsum(rows, 0)])
        columns = order // 3  # face of each corner, grouped by vertex
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            matrix = torch.sparse_csr_tensor(
                crow, columns, torch.ones(columns.numel(), dtype=dtype, device=faces.device),
                size=(num_vertices, faces.shape[0]),
            )
        if len(_incidence_cache) > 8:
            _incidence_cache.clear()
        _incidence_cache[key] = matrix
    return matrix


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Smooth vertex normals: area-weighted face normals summed at each vertex, then normalised.

    The sum is a sparse vertex-face incidence product (an order of magnitude faster than
    ``index_add`` on a CPU), differentiable w.r.t. ``verts``.

    Args:
        verts: vertex positions, shape :math:`(B, V, 3)`.
        faces: triangle vertex indices (counter-clockwise seen from outside), shape :math:`(F, 3)`.

    Returns:
        unit normals (0 for vertices no triangle uses), shape :math:`(B, V, 3)`.
    """
    faces_long = faces.long()
    v0, v1, v2 = verts[:, faces_long[:, 0]], verts[:, faces_long[:, 1]], verts[:, faces_long[:, 2]]
    face_normals = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # [B,F,3], length = 2 × area
    incidence = _vertex_face_incidence(faces, verts.shape[1], verts.dtype)
    batch = verts.shape[0]
    summed = incidence @ face_normals.permute(1, 0, 2).reshape(faces.shape[0], batch * 3)  # [V, B*3]
    summed = summed.reshape(verts.shape[1], batch, 3).permute(1, 0, 2)
    return torch.nn.functional.normalize(summed, dim=-1, eps=1e-20)


def _batched(x: torch.Tensor, ndim: int, name: str, shape_text: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise RenderInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == ndim - 1:
        x = x.unsqueeze(0)
    if x.ndim != ndim:
        raise RenderInputError(f"{name} must have shape {shape_text}, got {tuple(x.shape)}")
    return x


def _expand_batch(x: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    if x.shape[0] != 1:
        raise RenderInputError(f"{name} has batch size {x.shape[0]} but the render batch is {batch}; use 1 or {batch}")
    return x.expand(batch, *x.shape[1:])


def _check_index(faces: torch.Tensor, count: int, name: str) -> torch.Tensor:
    if not isinstance(faces, torch.Tensor) or faces.ndim != 2 or faces.shape[-1] != 3:
        raise RenderInputError(f"{name} must be a [F, 3] integer tensor, got {getattr(faces, 'shape', type(faces))}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise RenderInputError(f"{name} must hold int32 or int64 indices, got {faces.dtype}")
    if faces.shape[0] == 0:
        raise RenderInputError(f"{name} has no triangles: the mesh is empty")
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or high >= count:
        raise RenderInputError(f"{name} indices must lie in [0, {count - 1}] but range over [{low}, {high}]")
    return faces.to(torch.int32).contiguous()


def render_mesh(
    verts: torch.Tensor,
    faces: torch.Tensor,
    uv: torch.Tensor | None,
    uv_faces: torch.Tensor | None,
    texture: torch.Tensor | None,
    camera: Camera,
    light: torch.Tensor | None = None,
    backend: str = "auto",
    antialias: bool = True,
) -> RenderOutput:
    """Render a textured triangle mesh with SH lighting; differentiable w.r.t. verts, texture, light, camera.

    ``colour = albedo · sh_shade(normal, light)`` (unlit albedo when ``light`` is None), where the albedo is
    the bilinearly sampled ``texture`` (or :data:`DEFAULT_ALBEDO` grey when it is None).

    Args:
        verts: world-space vertex positions, shape :math:`(B, V, 3)` or :math:`(V, 3)`.
        faces: triangles (counter-clockwise seen from outside), shape :math:`(F, 3)` int32 or int64.
        uv: texture coordinates (OBJ convention, v up), shape :math:`(V_t, 2)` or :math:`(B, V_t, 2)`;
            may be None without a texture.
        uv_faces: uv index per triangle corner, shape :math:`(F, 3)`; may be None without a texture.
        texture: albedo image, row 0 at the top, shape :math:`(B, H_t, W_t, C)` or :math:`(H_t, W_t, C)`
            (C = 3 for colour), or None for a flat grey.
        camera: the cameras (batch B or 1); they set the image size (H, W).
        light: SH lighting coefficients, shape :math:`(B, 9, C)` or :math:`(1, 9, C)`
            (see :mod:`renderers.lighting`), or None for unlit albedo.
        backend: core-op backend, ``"auto" | "cpu" | "torch" | "nvdiffrast"``.
        antialias: antialias silhouettes (needed for gradients w.r.t. silhouette positions).

    Returns:
        :class:`RenderOutput` with ``rgba (B, H, W, C+1)``, ``depth (B, H, W, 1)``, ``normals (B, H, W, 3)``,
        ``mask (B, H, W, 1)``; row 0 at the top.

    Example:
        >>> cam = Camera.look_at(torch.tensor([[0.0, 0, 3]]), torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]),
        ...                      fov_y_deg=40.0, image_size=(32, 32))
        >>> verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]])
        >>> out = render_mesh(verts, torch.tensor([[0, 1, 2]]), None, None, None, cam)
        >>> out.rgba.shape
        torch.Size([1, 32, 32, 4])
    """
    verts = _batched(verts, 3, "verts", "[B, V, 3] or [V, 3]")
    if verts.shape[-1] != 3 or verts.shape[1] == 0:
        raise RenderInputError(f"verts must have shape [B, V, 3] with V > 0, got {tuple(verts.shape)}")
    if not verts.is_floating_point():
        raise RenderInputError(f"verts must be a float tensor, got {verts.dtype}")
    if not isinstance(camera, Camera):
        raise RenderInputError(f"camera must be a renderers.camera.Camera, got {type(camera).__name__}")
    faces = _check_index(faces, verts.shape[1], "faces")
    if texture is not None:
        texture = _batched(texture, 4, "texture", "[B, Ht, Wt, C] or [Ht, Wt, C]")
        if uv is None or uv_faces is None:
            raise RenderInputError("a texture needs uv and uv_faces; pass both, or texture=None for a flat albedo")
        uv = _batched(uv, 3, "uv", "[Vt, 2] or [B, Vt, 2]")
        if uv.shape[-1] != 2:
            raise RenderInputError(f"uv must have shape [Vt, 2], got {tuple(uv.shape)}")
        uv_faces = _check_index(uv_faces, uv.shape[1], "uv_faces")
        if uv_faces.shape[0] != faces.shape[0]:
            raise RenderInputError(
                f"uv_faces has {uv_faces.shape[0]} triangles but faces has {faces.shape[0]}; they must match one to one"
            )
    if light is not None and (light.ndim != 3 or light.shape[1] != 9):
        raise RenderInputError(f"light must be SH coefficients of shape [B, 9, C], got {tuple(light.shape)}")

    sizes = [verts.shape[0], camera.batch_size]
    sizes += [texture.shape[0], uv.shape[0]] if texture is not None else []
    sizes += [light.shape[0]] if light is not None else []
    batch = max(sizes)
    verts = _expand_batch(verts, batch, "verts")
    if camera.batch_size != batch:
        camera = Camera(_expand_batch(camera.view, batch, "camera"), camera.projection.expand(batch, 4, 4),
                        camera.image_size)

    pos_clip = camera.to_clip(verts).contiguous()
    rast, _ = ops.rasterize(pos_clip, faces, resolution=camera.image_size, grad_db=False, backend=backend)
    mask = (rast[..., 3:] > 0).to(verts.dtype)

    if texture is None:
        channels = light.shape[-1] if light is not None else 3
        albedo = torch.full((*rast.shape[:3], channels), DEFAULT_ALBEDO, dtype=verts.dtype, device=verts.device)
    else:
        uv_gl = torch.stack([uv[..., 0], 1 - uv[..., 1]], dim=-1)  # v up (OBJ) → texture row index down
        _expand_batch(uv_gl, batch, "uv")  # checks the batch; the ops broadcast a batch of 1 themselves
        _expand_batch(texture, batch, "texture")
        uv_pix, _ = ops.interpolate(uv_gl.contiguous(), rast, uv_faces, backend=backend)
        albedo = ops.texture(texture.contiguous(), uv_pix, filter_mode="linear", boundary_mode="wrap")

    normals_v = vertex_normals(verts, faces)
    normals, _ = ops.interpolate(normals_v.contiguous(), rast, faces, backend=backend)
    normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12) * mask

    if light is not None:
        if light.shape[-1] != albedo.shape[-1] and light.shape[-1] != 1:
            raise RenderInputError(
                f"light has {light.shape[-1]} colour channels but the texture has {albedo.shape[-1]}"
            )
        colour = albedo * sh_shade(normals, _expand_batch(light, batch, "light").to(albedo.dtype))
    else:
        colour = albedo
    rgba = torch.cat([colour * mask, mask], dim=-1)
    if antialias:
        rgba = ops.antialias(rgba.contiguous(), rast, pos_clip, faces)

    depth_v = camera.depth(verts).unsqueeze(-1).contiguous()
    depth, _ = ops.interpolate(depth_v, rast, faces, backend=backend)
    depth = depth * mask

    flip = lambda image: image.flip(1)  # noqa: E731 — nvdiffrast row 0 = bottom → image row 0 = top
    return RenderOutput(flip(rgba), flip(depth), flip(normals), flip(mask))


def to_uint8_image(rgba: torch.Tensor, background: tuple[float, ...] | None = None) -> np.ndarray:
    """Rendered images as uint8 arrays for writing PNGs (values clipped to [0, 1], no gamma applied).

    Args:
        rgba: premultiplied colour + coverage as :func:`render_mesh` returns, shape :math:`(B, H, W, 4)` or
            :math:`(H, W, 4)` (row 0 at the top).
        background: an RGB colour in [0, 1] to composite over (returns RGB); None keeps straight
            (un-premultiplied) RGBA for a transparent PNG.

    Returns:
        uint8 array, shape :math:`(B, H, W, 3 or 4)` or :math:`(H, W, 3 or 4)` as the input.
    """
    if not isinstance(rgba, torch.Tensor) or rgba.ndim not in (3, 4) or rgba.shape[-1] != 4:
        raise RenderInputError(f"rgba must have shape [B, H, W, 4] or [H, W, 4], got {getattr(rgba, 'shape', None)}")
    rgba = rgba.detach().to("cpu", torch.float32).clamp(0, 1)
    colour, alpha = rgba[..., :3], rgba[..., 3:]
    if background is not None:
        bg = torch.tensor(background, dtype=torch.float32).reshape(3)
        image = colour + (1 - alpha) * bg
    else:
        image = torch.cat([torch.where(alpha > 0, colour / alpha.clamp_min(1e-8), colour), alpha], dim=-1)
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
