import math

import pytest
import torch

from renderers._validate import RenderInputError
from renderers.lighting import ambient_sh, default_sh, directional_sh, sh_basis, sh_shade


def _unit(shape, dtype=torch.float32):
    return torch.nn.functional.normalize(torch.randn(*shape, 3, dtype=dtype), dim=-1)


def test_basis_is_orthonormal_on_the_sphere():
    # Monte-Carlo integral of Y_i Y_j over the sphere ≈ δ_ij.
    torch.manual_seed(3)
    directions = _unit((200_000,), torch.float64)
    basis = sh_basis(directions)
    gram = basis.T @ basis * (4 * math.pi / directions.shape[0])
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), atol=0.02, rtol=0)


def test_constant_sh_shades_uniformly():
    normals = _unit((2, 8, 8))
    coeffs = ambient_sh(torch.tensor([[0.2, 0.5, 0.9], [1.0, 1.0, 1.0]]))
    shading = sh_shade(normals, coeffs)
    assert shading.shape == (2, 8, 8, 3)
    torch.testing.assert_close(shading, torch.tensor([[0.2, 0.5, 0.9], [1.0, 1.0, 1.0]])[:, None, None].expand_as(shading))


def test_directional_light_known_values():
    # Order-2 irradiance of a distant light: E(n)/π = I/π · (1/4 + P1(c)/2 + 5/16 P2(c)), c = n·d
    # (the clamped-cosine kernel truncated after band 2, Ramamoorthi & Hanrahan 2001).
    direction = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8]]), dim=-1)
    intensity = 2.0
    normals = _unit((1, 4, 16))
    shading = sh_shade(normals, directional_sh(direction, intensity))[..., 0]
    c = (normals * direction[:, None, None]).sum(-1)
    expected = intensity / math.pi * (0.25 + 0.5 * c + 5 / 16 * 0.5 * (3 * c * c - 1))
    torch.testing.assert_close(shading, expected, atol=1e-5, rtol=1e-5)
    # The truncated kernel approximates max(c, 0) to within 0.1 of the peak everywhere.
    assert float((shading - intensity / math.pi * c.clamp_min(0)).abs().max()) < 0.1 * intensity / math.pi
    # n = d gives 1.0625 I/π exactly.
    at_light = sh_shade(direction[:, None, None], directional_sh(direction, intensity))
    torch.testing.assert_close(at_light, torch.full((1, 1, 1, 3), 1.0625 * intensity / math.pi))


def test_default_sh_is_soft_and_frontal():
    coeffs = default_sh(batch_size=2)
    assert coeffs.shape == (2, 9, 3)
    front = sh_shade(torch.tensor([[[0.0, 0.0, 1.0]]]).expand(2, 1, 3), coeffs)
    back = sh_shade(torch.tensor([[[0.0, 0.0, -1.0]]]).expand(2, 1, 3), coeffs)
    assert torch.all(front > 0.8) and torch.all(front <= 1.0)
    assert torch.all(back > 0.2) and torch.all(back < front)
    assert float(sh_shade(_unit((1, 500)), coeffs[:1]).min()) > 0.2  # no black regions


def test_batch_broadcast_and_bad_input():
    normals = _unit((3, 5, 7))
    single = default_sh(1)
    torch.testing.assert_close(sh_shade(normals, single), sh_shade(normals, single.expand(3, 9, 3)))
    with pytest.raises(RenderInputError):
        sh_shade(normals, torch.zeros(3, 4, 3))
    with pytest.raises(RenderInputError):
        sh_shade(normals, torch.zeros(2, 9, 3))


def test_gradcheck_sh_shade():
    normals = _unit((2, 3, 4), torch.float64).requires_grad_()
    coeffs = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_shade, (normals, coeffs))
