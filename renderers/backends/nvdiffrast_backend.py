"""nvdiffrast itself, when importable (CUDA). Never required."""

from __future__ import annotations

import functools
import importlib.util

import torch


def available() -> bool:
    """True when ``nvdiffrast.torch`` can be imported and CUDA is present."""
    return torch.cuda.is_available() and importlib.util.find_spec("nvdiffrast") is not None


@functools.lru_cache(maxsize=None)
def _context(device_index: int):
    import nvdiffrast.torch as dr

    return dr.RasterizeCudaContext(device=torch.device("cuda", device_index))


def rasterize(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, grad_db: bool = True):
    import nvdiffrast.torch as dr

    return dr.rasterize(_context(pos.device.index or 0), pos.contiguous(), tri.contiguous(), (height, width), grad_db=grad_db)


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    import nvdiffrast.torch as dr

    if attr.shape[0] == 1 and rast.shape[0] > 1:
        attr = attr.expand(rast.shape[0], -1, -1)
    return dr.interpolate(attr.contiguous(), rast, tri.contiguous())[0]


def texture(tex, uv, uv_da, mip_level_bias, filter_mode, boundary_mode, max_mip_level):
    import nvdiffrast.torch as dr

    return dr.texture(
        tex.contiguous(), uv.contiguous(), uv_da=uv_da, mip_level_bias=mip_level_bias,
        filter_mode=filter_mode, boundary_mode=boundary_mode, max_mip_level=max_mip_level,
    )


def antialias(color, rast, pos, tri, pos_gradient_boost):
    import nvdiffrast.torch as dr

    return dr.antialias(color.contiguous(), rast, pos.contiguous(), tri.contiguous(), pos_gradient_boost=pos_gradient_boost)
