"""texture (vs grid_sample, gradients, mipmaps) and antialias (silhouette gradients, optimisation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import renderers as dr


def grid_sample_reference(tex, uv, padding_mode):
    grid = 2 * uv - 1
    out = F.grid_sample(tex.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.permute(0, 2, 3, 1)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("boundary_mode,padding_mode", [("clamp", "border"), ("zero", "zeros")])
def test_texture_matches_grid_sample(backend, boundary_mode, padding_mode):
    tex = torch.rand(2, 13, 17, 3)
    uv = torch.rand(2, 9, 11, 2) * 1.4 - 0.2  # includes coordinates outside [0, 1]
    ours = dr.texture(tex, uv, filter_mode="linear", boundary_mode=boundary_mode, backend=backend)
    assert torch.allclose(ours, grid_sample_reference(tex, uv, padding_mode), atol=1e-5)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_texture_wrap_is_periodic(backend):
    tex = torch.rand(1, 8, 8, 2)
    uv = torch.rand(1, 5, 5, 2)
    inside = dr.texture(tex, uv, filter_mode="linear", backend=backend)
    shifted = dr.texture(tex, uv + torch.tensor([1.0, -2.0]), filter_mode="linear", backend=backend)
    assert torch.allclose(inside, shifted, atol=1e-5)
    # Between the last and the first texel the lookup blends across the seam.
    edge = dr.texture(tex, torch.tensor([[[[0.0, 0.5 / 8]]]]), filter_mode="linear", backend=backend)
    assert torch.allclose(edge[0, 0, 0], 0.5 * (tex[0, 0, 0] + tex[0, 0, 7]), atol=1e-6)


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_cpu_texture_gradients_match_finite_differences(boundary_mode):
    tex = torch.rand(1, 5, 6, 2, dtype=torch.float64, requires_grad=True)
    uv = (torch.rand(1, 4, 4, 2, dtype=torch.float64) * 1.2 - 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t, u: dr.texture(t, u, filter_mode="linear", boundary_mode=boundary_mode, backend="cpu"),
        (tex, uv), eps=1e-6, atol=1e-5,
    )


def test_cpu_texture_gradients_match_grid_sample_autograd():
    tex = torch.rand(1, 32, 32, 3, requires_grad=True)
    uv = torch.rand(1, 20, 20, 2, requires_grad=True)
    weights = torch.randn(1, 20, 20, 3)
    (dr.texture(tex, uv, boundary_mode="clamp", backend="cpu") * weights).sum().backward()
    grads = tex.grad.clone(), uv.grad.clone()
    tex.grad = uv.grad = None
    (grid_sample_reference(tex, uv, "border") * weights).sum().backward()
    assert torch.allclose(grads[0], tex.grad, atol=1e-5)
    assert torch.allclose(grads[1], uv.grad, atol=1e-3)


def test_mipmapping_averages_minified_texture():
    # A checkerboard seen from far away (one pixel spans 8 texels) averages to grey.
    checker = ((torch.arange(64)[:, None] // 1 + torch.arange(64)[None, :] // 1) % 2).float()
    tex = checker[None, :, :, None].expand(1, 64, 64, 1).contiguous()
    uv = torch.rand(1, 6, 6, 2)
    uv_da = torch.tensor([8 / 64, 0.0, 0.0, 8 / 64]).expand(1, 6, 6, 4)
    mipmapped = dr.texture(tex, uv, uv_da=uv_da, filter_mode="linear-mipmap-linear")
    assert torch.allclose(mipmapped, torch.full_like(mipmapped, 0.5), atol=1e-4)
    with pytest.raises(dr.RenderInputError, match="uv_da"):
        dr.texture(tex, uv, filter_mode="linear-mipmap-linear")


def square(offset_x: float = 0.0):
    """Two triangles forming a square in clip space, shifted along x."""
    pos = torch.tensor([[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0.5, 0.5, 0, 1], [-0.5, 0.5, 0, 1]])
    pos = pos + torch.tensor([offset_x, 0, 0, 0])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    return pos, tri


def render_silhouette(pos, tri, size=32):
    rast, _ = dr.rasterize(pos, tri, (size, size))
    color = (rast[..., 3:4] > 0).float()
    return dr.antialias(color, rast, pos, tri)


def test_antialias_blends_only_silhouettes_and_matches_coverage():
    # Square spans NDC x in [-0.47, 0.53]: pixels 8.48 .. 24.48 of a 32-pixel row.
    pos, tri = square(offset_x=0.03)
    image = render_silhouette(pos, tri)[0, ..., 0]
    row = image[16]
    assert row[12] == 1 and row[2] == 0 and row[28] == 0  # interior and exterior untouched
    # Cut pixels get their covered fraction: pixel 8 is 0.52 covered, pixel 24 is 0.48 covered.
    assert abs(float(row[8]) - 0.52) < 1e-4
    assert abs(float(row[24]) - 0.48) < 1e-4
    assert abs(float(row.sum()) - 16.0) < 1e-4
    # The internal diagonal between the two triangles is not a silhouette: no blending along it.
    inner = image[10:22, 10:22]
    assert torch.all((inner == 1) | (inner == 0) | (inner > 0.999))


def test_antialias_gradient_reaches_silhouette_vertices():
    pos, tri = square(offset_x=0.03)
    pos = pos.clone().requires_grad_(True)
    image = render_silhouette(pos, tri)
    image.sum().backward()
    # Moving the right edge to the right grows the coverage; moving the left edge right shrinks it.
    assert pos.grad[1, 0] > 0 and pos.grad[2, 0] > 0
    assert pos.grad[0, 0] < 0 and pos.grad[3, 0] < 0


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_optimisation_through_antialias_matches_target_silhouette(backend):
    torch.manual_seed(0)
    target_pos = torch.tensor([[-0.6, -0.5, 0, 1], [0.5, -0.6, 0, 1], [0.1, 0.6, 0, 1.0]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    size = 48

    def silhouette(pos):
        rast, _ = dr.rasterize(pos, tri, (size, size), backend=backend)
        mask = (rast[..., 3:4] > 0).to(pos.dtype)
        return dr.antialias(mask, rast, pos, tri)

    target = silhouette(target_pos).detach()
    pos = (target_pos + torch.tensor([[0.15, 0.1, 0, 0], [-0.1, 0.12, 0, 0], [0.12, -0.15, 0, 0]])).requires_grad_(True)
    start_error = (silhouette(pos) - target).abs().mean().item()
    optimizer = torch.optim.Adam([pos], lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        loss = ((silhouette(pos) - target) ** 2).mean()
        loss.backward()
        pos.grad[:, 2:] = 0  # move in the image plane only
        optimizer.step()
    end_error = (silhouette(pos) - target).abs().mean().item()
    assert end_error < 0.1 * start_error
    assert (pos.detach() - target_pos)[:, :2].abs().max() < 0.03


def test_topology_hash_finds_neighbours():
    _, tri = square()
    topology = dr.antialias_construct_topology_hash(tri)
    # Triangle 0 = (0, 1, 2): the edge opposite vertex 1 is (2, 0), shared with triangle 1.
    assert topology.neighbor[0].tolist() == [-1, 1, -1]
    assert topology.neighbor[1].tolist() == [-1, -1, 0]


@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_antialias_matches_torch_antialias_and_its_gradients(seed):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_rasterize import random_mesh

    pos, tri = random_mesh(num_tri=40, seed=seed, dtype=torch.float64)
    pos = pos.unsqueeze(0).repeat(2, 1, 1)
    pos[1, :, 0] += 0.03
    rast, _ = dr.rasterize(pos, tri, (40, 40))
    color = torch.rand(2, 40, 40, 3, dtype=torch.float64)
    weights = torch.randn_like(color)
    results = {}
    for backend in ("cpu", "torch"):
        p, c = pos.clone().requires_grad_(True), color.clone().requires_grad_(True)
        out = dr.antialias(c, rast, p, tri, backend=backend)
        (out * weights).sum().backward()
        results[backend] = (out.detach(), p.grad, c.grad)
    assert (results["cpu"][0] - color).abs().sum() > 1  # something was blended
    for cpu_value, torch_value in zip(results["cpu"], results["torch"]):
        assert torch.allclose(cpu_value, torch_value, atol=1e-9)


def test_cpu_antialias_gradients_match_finite_differences():
    # A slanted quad: no edge passes exactly through a pixel midpoint, where |alpha - 0.5| has a kink.
    pos = torch.tensor([[-0.61, -0.43, 0, 1], [0.52, -0.57, 0, 1], [0.47, 0.55, 0, 1], [-0.55, 0.41, 0, 1]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    pos = pos.double().requires_grad_(True)
    rast, _ = dr.rasterize(pos.detach(), tri, (16, 16))
    color = torch.rand(1, 16, 16, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p, c: dr.antialias(c, rast, p, tri, backend="cpu"), (pos, color), eps=1e-7, atol=1e-5
    )
