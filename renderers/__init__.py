"""Differentiable rasterization with nvdiffrast's API, fast on CPU.

The four ops keep nvdiffrast's names, argument order and output channels, so code written
against ``nvdiffrast.torch`` runs here unchanged::

    import renderers as dr
    rast, rast_db = dr.rasterize(pos_clip, tri, resolution=(512, 512))
    uv_pix, _ = dr.interpolate(uv, rast, uv_tri)
    color = dr.texture(tex, uv_pix)
    color = dr.antialias(color, rast, pos_clip, tri)

Backends (``backend=`` on each op): ``"cpu"`` (numba visibility kernel + hand-derived
backward), ``"torch"`` (pure torch, also on CUDA), ``"nvdiffrast"`` (when importable) and
``"auto"`` (nvdiffrast for CUDA tensors when present, ``"cpu"`` for CPU tensors, else
``"torch"``). Images follow nvdiffrast's convention: row 0 is the bottom (``y = -1``).
"""

from renderers._validate import RenderInputError
from renderers.camera import Camera, frame_points
from renderers.draw import draw_textured
from renderers.lighting import ambient_sh, default_sh, directional_sh, sh_shade
from renderers.mesh import RenderOutput, render_mesh, to_uint8_image
from renderers.ops import (
    BACKENDS,
    RasterizeContext,
    RasterizeCudaContext,
    RasterizeGLContext,
    antialias,
    antialias_construct_topology_hash,
    interpolate,
    rasterize,
    resolve_backend,
    texture,
)

__all__ = [
    "BACKENDS",
    "Camera",
    "RenderOutput",
    "ambient_sh",
    "default_sh",
    "directional_sh",
    "draw_textured",
    "frame_points",
    "render_mesh",
    "sh_shade",
    "to_uint8_image",
    "RasterizeContext",
    "RasterizeCudaContext",
    "RasterizeGLContext",
    "RenderInputError",
    "antialias",
    "antialias_construct_topology_hash",
    "interpolate",
    "rasterize",
    "resolve_backend",
    "texture",
]
