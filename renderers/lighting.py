"""Second-order spherical-harmonics (SH) lighting of Lambertian surfaces.

Convention (Ramamoorthi & Hanrahan, "An Efficient Representation for Irradiance Environment Maps",
SIGGRAPH 2001):

- The distant lighting's *radiance* ``L(ω)`` is expanded in the 9 real SH ``Y_lm`` of bands 0–2, in the
  order ``(0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2)`` with
  ``Y_00 = 0.282095``, ``Y_1m = 0.488603 (y, z, x)``, ``Y_2,-2 = 1.092548 xy``, ``Y_2,-1 = 1.092548 yz``,
  ``Y_20 = 0.315392 (3z² − 1)``, ``Y_21 = 1.092548 xz``, ``Y_22 = 0.546274 (x² − y²)``, where
  ``(x, y, z)`` is a unit direction in **world space** (the same frame as the normals).
- ``sh_coeffs[b, k, c]`` is ``L_lm`` for basis ``k`` and colour channel ``c``.
- The irradiance is ``E(n) = Σ Â_l L_lm Y_lm(n)`` with ``Â_0 = π``, ``Â_1 = 2π/3``, ``Â_2 = π/4``.
- :func:`sh_shade` returns ``E(n) / π``: the radiance a white Lambertian surface reflects, so a pixel's
  colour is ``albedo * sh_shade(...)`` and a uniform environment of radiance 1 shades to exactly 1.

A distant light of intensity ``I`` from direction ``d`` has ``L_lm = I Y_lm(d)``
(see :func:`directional_sh`).
"""

from __future__ import annotations

import math

import torch

from renderers._validate import RenderInputError

__all__ = ["SH_BASIS_CONSTANTS", "sh_basis", "sh_shade", "directional_sh", "ambient_sh", "default_sh"]

# Normalisation constants of the real SH basis, bands 0-2.
SH_BASIS_CONSTANTS = (
    0.5 * math.sqrt(1 / math.pi),  # Y00
    math.sqrt(3 / (4 * math.pi)),  # Y1-1 (y)
    math.sqrt(3 / (4 * math.pi)),  # Y10 (z)
    math.sqrt(3 / (4 * math.pi)),  # Y11 (x)
    0.5 * math.sqrt(15 / math.pi),  # Y2-2 (xy)
    0.5 * math.sqrt(15 / math.pi),  # Y2-1 (yz)
    0.25 * math.sqrt(5 / math.pi),  # Y20 (3z^2 - 1)
    0.5 * math.sqrt(15 / math.pi),  # Y21 (xz)
    0.25 * math.sqrt(15 / math.pi),  # Y22 (x^2 - y^2)
)
# Convolution with the clamped cosine divided by pi (R&H's A_l / pi), per basis function.
_BAND_OF_BASIS = (0, 1, 1, 1, 2, 2, 2, 2, 2)
_LAMBERT_OVER_PI = (1.0, 2.0 / 3.0, 0.25)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real SH basis functions of bands 0–2 at unit directions.

    Args:
        normals: unit directions, shape :math:`(*, 3)` (not renormalised here).

    Returns:
        basis values in the order documented in this module, shape :math:`(*, 9)`.

    Example:
        >>> sh_basis(torch.tensor([0.0, 0.0, 1.0]))[:3]
        tensor([0.2821, 0.0000, 0.4886])
    """
    if normals.shape[-1] != 3:
        raise RenderInputError(f"normals must have shape [..., 3], got {tuple(normals.shape)}")
    x, y, z = normals.unbind(-1)
    c = SH_BASIS_CONSTANTS
    return torch.stack(
        [
            torch.full_like(x, c[0]),
            c[1] * y,
            c[2] * z,
            c[3] * x,
            c[4] * x * y,
            c[5] * y * z,
            c[6] * (3 * z * z - 1),
            c[7] * x * z,
            c[8] * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_shade(normals: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Lambertian shading ``E(n) / π`` of unit normals under SH lighting (Ramamoorthi & Hanrahan 2001).

    Args:
        normals: world-space unit normals, shape :math:`(B, H, W, 3)` (any :math:`(B, *, 3)` works).
        sh_coeffs: radiance SH coefficients per colour channel, shape :math:`(B, 9, C)` (B may be 1).

    Returns:
        shading (irradiance / π), shape :math:`(B, H, W, C)`; multiply by the albedo for the colour.

    Example:
        >>> sh_shade(torch.tensor([[[[0.0, 0.0, 1.0]]]]), default_sh()).shape
        torch.Size([1, 1, 1, 3])
    """
    if sh_coeffs.ndim != 3 or sh_coeffs.shape[1] != 9:
        raise RenderInputError(f"sh_coeffs must have shape [B, 9, C], got {tuple(sh_coeffs.shape)}")
    if normals.ndim < 2 or sh_coeffs.shape[0] not in (1, normals.shape[0]):
        raise RenderInputError(
            f"sh_coeffs batch {sh_coeffs.shape[0]} does not match normals {tuple(normals.shape)}; use [B, 9, C] or [1, 9, C]"
        )
    scale = torch.tensor([_LAMBERT_OVER_PI[b] for b in _BAND_OF_BASIS], dtype=sh_coeffs.dtype, device=sh_coeffs.device)
    weights = sh_coeffs * scale[:, None]  # [B, 9, C]
    basis = sh_basis(normals).to(sh_coeffs.dtype)  # [B, ..., 9]
    flat = basis.reshape(basis.shape[0], -1, 9)
    shading = flat @ weights if weights.shape[0] == flat.shape[0] else flat @ weights.expand(flat.shape[0], 9, -1)
    return shading.reshape(*normals.shape[:-1], sh_coeffs.shape[-1])


def directional_sh(direction: torch.Tensor, intensity: torch.Tensor | float = 1.0) -> torch.Tensor:
    """SH coefficients of distant directional lights (``L_lm = I · Y_lm(d)``).

    Args:
        direction: direction *towards* each light (normalised here), shape :math:`(B, 3)`.
        intensity: light intensity, a number or shape :math:`(B, C)` / :math:`(C,)` (per colour).

    Returns:
        SH coefficients, shape :math:`(B, 9, C)` (C = 3 for a scalar intensity).
    """
    if direction.ndim != 2 or direction.shape[-1] != 3:
        raise RenderInputError(f"direction must have shape [B, 3], got {tuple(direction.shape)}")
    basis = sh_basis(torch.nn.functional.normalize(direction, dim=-1))  # [B, 9]
    intensity = torch.as_tensor(intensity, dtype=direction.dtype, device=direction.device)
    if intensity.ndim == 0:
        intensity = intensity.expand(3)
    if intensity.ndim == 1:
        intensity = intensity.expand(direction.shape[0], -1)
    return basis[:, :, None] * intensity[:, None, :]


def ambient_sh(radiance: torch.Tensor | float, batch_size: int = 1, channels: int = 3) -> torch.Tensor:
    """SH coefficients of a uniform environment of the given radiance (shades every normal to ``radiance``).

    Args:
        radiance: a number or per-channel values, shape :math:`(C,)` or :math:`(B, C)`.
        batch_size: batch size when ``radiance`` has no batch dimension.
        channels: number of colour channels when ``radiance`` is a number.

    Returns:
        SH coefficients (only the constant term is non-zero), shape :math:`(B, 9, C)`.
    """
    radiance = torch.as_tensor(radiance, dtype=torch.float32)
    if radiance.ndim == 0:
        radiance = radiance.expand(channels)
    if radiance.ndim == 1:
        radiance = radiance.expand(batch_size, -1)
    coeffs = radiance.new_zeros(radiance.shape[0], 9, radiance.shape[1])
    coeffs[:, 0] = radiance / SH_BASIS_CONSTANTS[0]
    return coeffs


def default_sh(
    batch_size: int = 1, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The lighting renders use by default: a soft frontal key light (from the viewer's upper right of a
    head facing +z: world +x, +y, +z) plus ambient; a normal facing the light shades to about 1.0, one at 90° to it
    to about 0.41.

    Args:
        batch_size: number of copies B.
        device: tensor device.
        dtype: tensor dtype.

    Returns:
        SH coefficients (white light), shape :math:`(B, 9, 3)`.
    """
    ambient = 0.35
    # The order-2 response to a directional light peaks at 1.0625 · I / π for n = d.
    key = (1.0 - ambient) * math.pi / 1.0625
    direction = torch.tensor([[0.35, 0.45, 1.0]], dtype=torch.float64)
    coeffs = directional_sh(direction, key) + ambient_sh(ambient).double()
    return coeffs.to(device=device, dtype=dtype).expand(batch_size, 9, 3).clone()
