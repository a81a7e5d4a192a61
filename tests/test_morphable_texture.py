"""Parametric skin model and the texture decoder's form."""

from __future__ import annotations

import torch

from avatar.morphable.template import load_template
from avatar.morphable.texture import REGIONS, TextureDecoder, atlas_uv, landmark_uv, parametric_albedo, region_masks


def _masks():
    t = load_template()
    return torch.from_numpy(region_masks(landmark_uv(t.faces, t.uv_faces, t.uv, t.landmarks_68), 64))


def test_parametric_albedo_range_and_tone():
    masks = _masks()
    assert masks.shape == (len(REGIONS), 64, 128)
    z = torch.zeros(3, 12)
    z[1, 0], z[2, 0] = 2.0, -2.0  # melanin up / down
    albedo = parametric_albedo(z, masks)
    assert albedo.shape == (3, 3, 64, 128) and albedo.min() >= 0 and albedo.max() <= 1
    mean = albedo.mean((1, 2, 3))
    assert mean[2] > mean[0] > mean[1]  # more melanin, darker skin


def test_lips_are_redder_than_the_cheek_and_tile1_is_skin():
    masks = _masks()
    albedo = parametric_albedo(torch.zeros(1, 12), masks)[0]
    lips = masks[REGIONS.index("lips")] > 0.9
    redness = albedo[0] / albedo[1]
    assert redness[lips].mean() > redness[:, 80:].mean()


def test_decoder_shapes_and_atlas_uv():
    dec = TextureDecoder(12, 32, 4)
    out = dec(torch.zeros(2, 12), height=64)
    assert out.shape == (2, 3, 64, 128) and (out > 0).all() and (out <= 1).all()
    uv = torch.tensor([[1.5, 0.25]])
    assert torch.allclose(atlas_uv(uv), torch.tensor([[0.75, 0.25]]))
