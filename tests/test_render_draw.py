"""renderers.draw_textured: the same frames as the op chain (rasterize, interpolate, texture, composite)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import renderers as dr
from renderers import RenderInputError


def _scene(batch: int = 3, num_tri: int = 80, seed: int = 0, behind_eye: bool = False):
    """Random overlapping triangles in clip space (w in [0.5, 2]), a uv atlas, a texture, shading."""
    gen = torch.Generator().manual_seed(seed)
    num_vertices = num_tri * 3
    ndc = torch.rand(batch, num_vertices, 2, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    centres = ndc.reshape(batch, num_tri, 3, 2).mean(2, keepdim=True)
    ndc = (centres + 0.35 * (ndc.reshape(batch, num_tri, 3, 2) - centres)).reshape(batch, -1, 2)
    w = torch.rand(batch, num_vertices, 1, generator=gen, dtype=torch.float64) * 1.5 + 0.5
    z = torch.rand(batch, num_vertices, 1, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    pos = torch.cat([ndc * w, z * w, w], 2).float()
    if behind_eye:
        pos[:, 0, 3] = -0.3
    tri = torch.arange(num_vertices, dtype=torch.int32).reshape(num_tri, 3)
    uv = torch.rand(num_vertices + 5, 2, generator=gen) * 1.2 - 0.1  # some outside [0, 1]: boundary modes
    uv_tri = torch.randint(0, num_vertices + 5, (num_tri, 3), generator=gen, dtype=torch.int32)
    tex = torch.rand(17, 23, 3, generator=gen)
    shade = torch.rand(batch, num_vertices, 3, generator=gen) * 1.4
    return pos, tri, uv, uv_tri, tex, shade


def _chain(pos, tri, uv, uv_tri, tex, shade, resolution, mask=None, background=(1.0, 1.0, 1.0), boundary="clamp"):
    """The op chain :func:`renderers.draw_textured` stands for, one frame at a time (mask per frame)."""
    frames = []
    for b in range(pos.shape[0]):
        keep = torch.ones(tri.shape[0], dtype=torch.bool) if mask is None else mask[b if mask.shape[0] > 1 else 0]
        faces, uv_faces = tri[keep].contiguous(), uv_tri[keep].contiguous()
        rast, _ = dr.rasterize(pos[b:b + 1], faces, resolution=resolution, grad_db=False, backend="cpu")
        uv_pix, _ = dr.interpolate(uv, rast, uv_faces, backend="cpu")
        colour = dr.texture(tex[None], uv_pix, filter_mode="linear", boundary_mode=boundary)
        if shade is not None:
            light, _ = dr.interpolate(shade[b:b + 1], rast, faces, backend="cpu")
            colour = colour * light
        colour = torch.where(rast[..., 3:] > 0, colour, torch.tensor(background, dtype=torch.float32))
        frames.append((colour.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()[0])
    return np.stack(frames)


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("boundary", ["clamp", "wrap", "zero"])
def test_draw_textured_equals_the_op_chain(parallel, boundary):
    pos, tri, uv, uv_tri, tex, shade = _scene()
    resolution = (31, 40)
    drawn = dr.draw_textured(pos, tri, uv, uv_tri, tex, resolution, shade=shade, background=(0.2, 0.5, 1.0),
                             boundary_mode=boundary, flip_y=False, parallel=parallel)
    expected = _chain(pos, tri, uv, uv_tri, tex, shade, resolution, background=(0.2, 0.5, 1.0), boundary=boundary)
    assert drawn.shape == (3, 31, 40, 3) and drawn.dtype == np.uint8
    assert (drawn != 255).any() and len(np.unique(drawn)) > 50  # something textured is drawn
    assert np.array_equal(drawn, expected)


def test_draw_textured_mask_flip_and_plain_texture():
    pos, tri, uv, uv_tri, tex, _ = _scene(seed=1, behind_eye=True)
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(pos.shape[0], tri.shape[0], generator=gen) > 0.4
    drawn = dr.draw_textured(pos, tri, uv, uv_tri, tex, (24, 24), tri_mask=mask)
    expected = _chain(pos, tri, uv, uv_tri, tex, None, (24, 24), mask=mask)
    assert np.array_equal(drawn, expected[:, ::-1])  # flip_y=True: row 0 at the top
    one = dr.draw_textured(pos, tri, uv, uv_tri, tex, (24, 24), tri_mask=mask[:1])
    assert np.array_equal(one, _chain(pos, tri, uv, uv_tri, tex, None, (24, 24), mask=mask[:1])[:, ::-1])


def test_draw_textured_rejects_bad_input():
    pos, tri, uv, uv_tri, tex, shade = _scene(batch=2)
    with pytest.raises(RenderInputError):
        dr.draw_textured(pos[..., :3], tri, uv, uv_tri, tex, (8, 8))
    with pytest.raises(RenderInputError):
        dr.draw_textured(pos, tri + 10_000, uv, uv_tri, tex, (8, 8))
    with pytest.raises(RenderInputError):
        dr.draw_textured(pos, tri, uv, uv_tri, tex, (8, 8), shade=shade[:, :5])
    with pytest.raises(RenderInputError):
        dr.draw_textured(pos, tri, uv, uv_tri, tex, (8, 8), background=(1.0, 1.0))
    with pytest.raises(RenderInputError):
        dr.draw_textured(pos, tri, uv, uv_tri, tex, (8, 8), boundary_mode="mirror")
    assert dr.draw_textured(pos[:0], tri, uv, uv_tri, tex, (8, 8)).shape == (0, 8, 8, 3)
