"""The engine's one colour convention: sRGB textures and images, linear-light shading.

- **Textures** (bundle ``texture``, ``texture.png``, the GLB's ``baseColorTexture``) hold **sRGB-encoded** albedo
  in [0, 1], as glTF 2.0 and every engine expect.
- **Albedo models** (the parametric skin model and the learned texture decoder,
  :mod:`avatar.morphable.texture`) give **linear** albedo; it is encoded once, where it becomes a texture.
- **Shading** happens in linear light: ``pixel = encode(decode(texture) · shade(n))`` with the SH shading of
  :mod:`renderers.lighting` (a uniform light of radiance 1 shades to 1, so a neutral-lit frontal render shows the
  texture's colour). Photos are sRGB and are decoded before lighting is solved or divided out.

The transfer functions are IEC 61966-2-1's piecewise sRGB curve. Written here rather than taken from kornia
(``kornia.color.rgb_to_linear_rgb``) because kornia wants channels-first images and the listener's render path
does not import kornia (start-up time); they are two lines each.
"""

from __future__ import annotations

import torch

#: The exponent of the gamma-2.2 approximation of sRGB: ``encode(decode(t) · s) ≈ t · s^(1/2.2)``.
DISPLAY_GAMMA = 2.2


def srgb_to_linear(values: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values in [0, 1] to linear light (any shape)."""
    values = values.clamp(0.0, 1.0)
    return torch.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: torch.Tensor) -> torch.Tensor:
    """Encode linear-light values to sRGB in [0, 1] (any shape; values above 1 clip)."""
    values = values.clamp(0.0, 1.0)
    # clamp inside the power: its gradient at 0 is infinite, and the linear segment takes over below 0.0031308
    return torch.where(values <= 0.0031308, values * 12.92, 1.055 * values.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def srgb_shade(shade: torch.Tensor) -> torch.Tensor:
    """Linear shading as a factor on sRGB texture values, ``shade^(1/2.2)`` (the gamma-2.2 approximation).

    For renderers that multiply a texture by a per-vertex shade and write 8-bit pixels directly
    (:class:`avatar.core.code_render.CodeRenderer`): decoding and re-encoding there would cost a pass over every
    pixel. Within 3 % of the exact curve where the shading is ≥ 0.25 (15 % at 0.05, in deep shadow).
    """
    return shade.clamp_min(0.0) ** (1.0 / DISPLAY_GAMMA)


def encode_rgba(rgba: torch.Tensor) -> torch.Tensor:
    """A linear render ``(..., 4)`` (premultiplied colour, coverage) as sRGB colour over the same coverage."""
    alpha = rgba[..., 3:]
    colour = linear_to_srgb(rgba[..., :3] / alpha.clamp_min(1e-6)) * alpha
    return torch.cat([colour, alpha], -1)


__all__ = ["DISPLAY_GAMMA", "encode_rgba", "linear_to_srgb", "srgb_shade", "srgb_to_linear"]
