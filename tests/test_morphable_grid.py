"""Sparse multi-resolution grids: compiled lookup = torch lookup, gradients, masks on disk."""

from __future__ import annotations

import numpy as np
import torch

from avatar.morphable.grid import MultiResGrid, SparseGridLevel, band_keys
from avatar.morphable.io import keys_to_mask, mask_to_keys

BOX = (torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([1.0, 2.0, 1.0]))


def _sphere_points(n=4000, r=0.6, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((n, 3))
    return (r * p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)


def test_compiled_lookup_matches_torch_and_inactive_reads_zero():
    keys = torch.from_numpy(band_keys(_sphere_points(), BOX[0].numpy(), BOX[1].numpy(), 24, 0.1))
    level = SparseGridLevel(*BOX, 24, 3, keys, init_std=1.0)
    pts = torch.rand(500, 3) * (BOX[1] - BOX[0]) + BOX[0]
    with torch.no_grad():
        fast = level(pts)
    slow_rows, slow_w = level.corners(pts)
    table = torch.cat([level.features, torch.zeros(1, 3)], 0)
    slow = (table[slow_rows] * slow_w[..., None]).sum(1).detach()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    far = torch.tensor([[0.0, 1.9, 0.0]])  # far from the sphere band: every corner inactive
    with torch.no_grad():
        assert level(far).abs().max() == 0


def test_points_gradient_matches_finite_differences():
    grid = MultiResGrid(*BOX, [8, 16], [2, 2], [None, None], init_std=1.0).double()
    for level in grid.levels:
        level.box_min = level.box_min.double()
    pts = (torch.rand(20, 3, dtype=torch.float64) * 1.2 - 0.6).requires_grad_(True)
    out = grid(pts).sum()
    (g,) = torch.autograd.grad(out, pts)
    eps = 1e-6
    for axis in range(3):
        d = torch.zeros_like(pts)
        d[:, axis] = eps
        with torch.enable_grad():
            fd = (grid(pts.detach() + d).sum(-1) - grid(pts.detach() - d).sum(-1)) / (2 * eps)
        torch.testing.assert_close(g[:, axis], fd.detach(), atol=1e-5, rtol=1e-4)


def test_mask_round_trip():
    dims = (7, 9, 5)
    keys = torch.tensor(sorted(np.random.default_rng(0).choice(7 * 9 * 5, 40, replace=False)))
    back = mask_to_keys(keys_to_mask(keys, dims), dims)
    assert torch.equal(back, keys.long())
