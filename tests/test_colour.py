"""The colour convention: sRGB textures, linear-light shading, skin tones spread over the ITA categories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import renderers as dr
from avatar.core.colour import encode_rgba, linear_to_srgb, srgb_shade, srgb_to_linear
from avatar.morphable.texture import (
    MELANIN_KNOTS,
    SIGMA_BASE,
    SIGMA_CAR,
    SIGMA_HEM,
    SIGMA_MEL,
    decoder_melanin,
    melanin,
    melanin_correction,
)


def test_srgb_transfer_functions_round_trip_and_match_the_standard():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    # IEC 61966-2-1 reference points: mid grey 0.5 sRGB ≈ 0.214 linear; 0.18 linear ≈ 0.461 sRGB
    assert float(srgb_to_linear(torch.tensor(0.5))) == pytest.approx(0.2140, abs=1e-4)
    assert float(linear_to_srgb(torch.tensor(0.18))) == pytest.approx(0.4613, abs=1e-4)
    zero = torch.zeros(3, requires_grad=True)
    linear_to_srgb(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()  # finite at 0 (the linear segment), so the fitter can descend through it


def test_srgb_shade_approximates_linear_light_shading():
    texel = torch.tensor(0.6)
    for shade in (0.25, 0.5, 1.0, 1.3):
        exact = linear_to_srgb(srgb_to_linear(texel) * shade)
        assert float(texel * srgb_shade(torch.tensor(shade))) == pytest.approx(float(exact), rel=0.03)


def test_encode_rgba_keeps_coverage_and_encodes_colour():
    rgba = torch.tensor([[0.5 * 0.2140, 0.0, 0.5 * 0.2140, 0.5]])  # premultiplied mid grey at half coverage
    out = encode_rgba(rgba)
    assert torch.allclose(out, torch.tensor([[0.25, 0.0, 0.25, 0.5]]), atol=1e-3)


def test_a_neutral_light_shows_the_texture_colour():
    """Uniform light of radiance 1: the rendered sRGB pixel is the sRGB texel (what the fit's ΔE relies on)."""
    verts = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]]])
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    texture = torch.full((4, 4, 3), 0.0) + torch.tensor([0.8, 0.55, 0.45])
    camera = dr.frame_points(verts[0], (32, 32))
    out = dr.render_mesh(verts, faces, uv, faces, srgb_to_linear(texture)[None], camera, dr.ambient_sh(1.0),
                         antialias=False)
    rgba = encode_rgba(out.rgba)[0]
    inside = rgba[..., 3] > 0.99
    assert torch.allclose(rgba[inside][:, :3], torch.tensor([0.8, 0.55, 0.45]), atol=2e-3)


def _cheek_ita(c_mel: torch.Tensor) -> np.ndarray:
    from skimage.color import rgb2lab

    sigma = [torch.tensor(s) for s in (SIGMA_BASE, SIGMA_MEL, SIGMA_HEM, SIGMA_CAR)]
    linear = torch.exp(-(sigma[0] + c_mel[:, None] * sigma[1] + 0.14 * sigma[2] + 0.125 * sigma[3]))
    lab = rgb2lab(linear_to_srgb(linear).numpy()[None])[0]
    return np.degrees(np.arctan2(lab[:, 0] - 50, lab[:, 2]))


def test_default_skin_tones_are_uniform_over_the_six_ita_categories():
    z = torch.randn(6000, generator=torch.Generator().manual_seed(0))
    ita = _cheek_ita(melanin(z))
    edges = [np.inf, 55, 41, 28, 10, -30, -np.inf]
    shares = [float(((ita < hi) & (ita >= lo)).mean()) for hi, lo in zip(edges[:-1], edges[1:])]
    assert all(abs(s - 1 / 6) < 0.03 for s in shares), shares
    assert ita.min() > -60 and ita.max() < 75  # within the range of measured human skin
    assert torch.all(torch.diff(melanin(torch.linspace(-4, 4, 50))) > 0)
    assert float(melanin(torch.tensor(-10.0))) == pytest.approx(MELANIN_KNOTS[0], abs=1e-3)


def test_melanin_correction_moves_the_decoder_to_the_new_mapping():
    z = torch.zeros(3, 12)
    z[:, 0] = torch.tensor([-2.0, 0.0, 2.0])
    factor = melanin_correction(z)[:, :, 0, 0]
    delta = (melanin(z[:, 0]) - decoder_melanin(z[:, 0]))[:, None]
    assert torch.allclose(factor, torch.exp(-delta * torch.tensor(SIGMA_MEL)))
    assert float(factor[2].mean()) < 1.0  # dark codes get darker than the old mapping allowed
