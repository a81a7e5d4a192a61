"""rasterize and interpolate: agreement with a brute-force reference, gradients, backends, errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import renderers as dr

BACKENDS = ["cpu", "torch"]


def random_mesh(num_tri: int = 60, seed: int = 0, dtype=torch.float32, behind_eye: bool = False):
    """Random overlapping triangles in clip space, w in [0.5, 2]."""
    gen = torch.Generator().manual_seed(seed)
    num_vertices = num_tri * 3
    ndc = torch.rand(num_vertices, 2, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    # Cluster corners of each triangle so triangles are smallish and overlap.
    centres = ndc.reshape(num_tri, 3, 2).mean(1, keepdim=True)
    ndc = (centres + 0.35 * (ndc.reshape(num_tri, 3, 2) - centres)).reshape(-1, 2)
    w = torch.rand(num_vertices, 1, generator=gen, dtype=torch.float64) * 1.5 + 0.5
    z = torch.rand(num_vertices, 1, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    pos = torch.cat([ndc * w, z * w, w], 1)
    if behind_eye:
        pos[0, 3] = -0.3  # one corner behind the eye: the triangle must still clip correctly
    tri = torch.arange(num_vertices, dtype=torch.int32).reshape(num_tri, 3)
    return pos.to(dtype), tri


def brute_force(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int):
    """Per-pixel, per-triangle float64 reference: ``ids [H, W]`` (0 = empty), ``depth [H, W]``."""
    pos = pos.double()
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    p = torch.stack([(xs + 0.5) * 2 / width - 1, (ys + 0.5) * 2 / height - 1, torch.ones_like(xs)], -1)
    corners = pos[tri.long()]  # [T,3,4]
    m = corners[..., [0, 1, 3]].transpose(1, 2)  # columns are vertices (x, y, w)
    det = torch.linalg.det(m)
    ok = det.abs() > 1e-12
    inv = torch.linalg.inv(torch.where(ok[:, None, None], m, torch.eye(3, dtype=m.dtype)))
    c = torch.einsum("tij,hwj->hwti", inv, p)  # [H,W,T,3]
    zw = (c * corners[None, None, :, :, 2]).sum(-1)
    inside = (c >= 0).all(-1) & (c.sum(-1) > 0) & ok & (zw >= -1) & (zw <= 1)
    depth = torch.where(inside, zw, torch.full_like(zw, float("inf")))
    best, arg = depth.min(-1)
    ids = torch.where(torch.isfinite(best), arg + 1, torch.zeros_like(arg))
    return ids, torch.where(torch.isfinite(best), best, torch.zeros_like(best))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed,behind_eye", [(0, False), (1, False), (2, True)])
def test_rasterize_matches_brute_force(backend, seed, behind_eye):
    pos, tri = random_mesh(seed=seed, behind_eye=behind_eye)
    rast, _ = dr.rasterize(pos, tri, resolution=(48, 64), backend=backend)
    ids, depth = brute_force(pos, tri, 48, 64)
    got = rast[0, ..., 3].long()
    covered = (ids > 0) | (got > 0)
    assert covered.sum() > 500
    agree = (got == ids)[covered].double().mean()
    assert agree >= 0.999
    same = (got == ids) & (ids > 0)
    assert torch.allclose(rast[0, ..., 2][same].double(), depth[same], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_barycentrics_reconstruct_pixel_centres(backend):
    pos, tri = random_mesh(seed=3)
    height, width = 40, 50
    rast, _ = dr.rasterize(pos, tri, (height, width), backend=backend)
    covered = rast[0, ..., 3] > 0
    # Interpolating clip x, y, w and dividing must land on each covered pixel centre.
    clip, _ = dr.interpolate(pos[:, [0, 1, 3]], rast, tri, backend=backend)
    ndc = clip[..., :2] / clip[..., 2:3]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    centres = torch.stack([(xs + 0.5) * 2 / width - 1, (ys + 0.5) * 2 / height - 1], -1).float()
    assert torch.allclose(ndc[0][covered], centres[covered], atol=1e-4)


def test_rast_db_matches_finite_differences():
    # One large perspective triangle: barycentrics change smoothly from pixel to pixel.
    pos = torch.tensor([[-0.9, -0.8, 0.1, 1.0], [1.6, -1.2, 0.5, 2.0], [-0.4, 1.5, 0.2, 1.5]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, rast_db = dr.rasterize(pos, tri, (64, 64), backend="cpu")
    inner = (rast[0, 1:-1, 1:-1, 3] > 0) & (rast[0, 2:, 1:-1, 3] > 0) & (rast[0, :-2, 1:-1, 3] > 0)
    inner &= (rast[0, 1:-1, 2:, 3] > 0) & (rast[0, 1:-1, :-2, 3] > 0)
    du_dx = (rast[0, 1:-1, 2:, 0] - rast[0, 1:-1, :-2, 0]) / 2
    dv_dy = (rast[0, 2:, 1:-1, 1] - rast[0, :-2, 1:-1, 1]) / 2
    assert torch.allclose(rast_db[0, 1:-1, 1:-1, 0][inner], du_dx[inner], atol=2e-4)
    assert torch.allclose(rast_db[0, 1:-1, 1:-1, 3][inner], dv_dy[inner], atol=2e-4)
    _, torch_db = dr.rasterize(pos, tri, (64, 64), backend="torch")
    assert torch.allclose(rast_db, torch_db, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_interpolate_gradients_match_finite_differences(backend):
    pos, tri = random_mesh(num_tri=12, seed=4, dtype=torch.float64)
    attr = torch.randn(pos.shape[0], 2, dtype=torch.float64)
    weights = torch.randn(1, 24, 24, 2, dtype=torch.float64)

    def loss_of(pos_, attr_):
        rast, _ = dr.rasterize(pos_, tri, (24, 24), backend=backend)
        out, _ = dr.interpolate(attr_, rast, tri, backend=backend)
        return (out * weights).sum(dim=(1, 2, 3))

    pos.requires_grad_(True)
    attr.requires_grad_(True)
    assert torch.autograd.gradcheck(loss_of, (pos, attr), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_cpu_and_torch_backends_agree():
    pos, tri = random_mesh(num_tri=80, seed=5)
    pos = pos.unsqueeze(0).repeat(2, 1, 1)
    pos[1, :, :2] += 0.05  # a different second image in the batch
    attr = torch.randn(2, pos.shape[1], 3)
    weights = torch.randn(2, 32, 40, 3)
    results = {}
    for backend in BACKENDS:
        p = pos.clone().requires_grad_(True)
        a = attr.clone().requires_grad_(True)
        rast, rast_db = dr.rasterize(p, tri, (32, 40), backend=backend)
        out, _ = dr.interpolate(a, rast, tri, backend=backend)
        (out * weights).sum().backward()
        results[backend] = (rast.detach(), rast_db, out.detach(), p.grad, a.grad)
    for cpu_value, torch_value in zip(results["cpu"], results["torch"]):
        assert torch.allclose(cpu_value, torch_value, atol=2e-4, rtol=1e-3)


def test_interpolate_with_separate_attribute_indices_and_broadcast():
    pos = torch.tensor([[-1.0, -1, 0, 1], [1, -1, 0, 1], [1, 1, 0, 1], [-1, 1, 0, 1]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    uv = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])
    uv_tri = torch.tensor([[0, 1, 2], [4, 2, 3]], dtype=torch.int32)  # second triangle uses its own uv vertex
    rast, rast_db = dr.rasterize(pos.expand(2, -1, -1), tri, (16, 16))
    out, out_da = dr.interpolate(uv, rast, uv_tri, rast_db=rast_db, diff_attrs="all")
    assert out.shape == (2, 16, 16, 2) and out_da.shape == (2, 16, 16, 4)
    # Lower-right triangle: uv equals the NDC position mapped to [0, 1].
    assert torch.allclose(out[0, 2, 13], torch.tensor([(13.5 / 16), (2.5 / 16)]), atol=1e-5)
    assert torch.allclose(out_da[0, 2, 13], torch.tensor([1 / 16, 0, 0, 1 / 16]), atol=1e-5)


def test_ranges_mode_and_context_call():
    pos, tri = random_mesh(num_tri=20, seed=6)
    ctx = dr.RasterizeCudaContext(backend="cpu")
    ranges = torch.tensor([[0, 10], [10, 10]], dtype=torch.int32)
    rast, _ = dr.rasterize(ctx, pos, tri, resolution=[32, 32], ranges=ranges)
    assert rast.shape == (2, 32, 32, 4)
    first, _ = dr.rasterize(pos, tri[:10], (32, 32))
    assert torch.equal(rast[0], first[0])
    ids = rast[1, ..., 3]
    assert ((ids == 0) | (ids > 10)).all()


def test_pixels_behind_near_or_far_plane_are_empty():
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    far = torch.tensor([[-1.0, -1, 2, 1], [1, -1, 2, 1], [-1, 1, 2, 1]])
    rast, _ = dr.rasterize(far, tri, (8, 8))
    assert rast.abs().sum() == 0


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: (torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.int32), (8, 8)), "empty"),
        (lambda: (torch.rand(3, 4), torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8)), None),
        (lambda: (torch.rand(3, 4), torch.tensor([[0, 1, 3]], dtype=torch.int32), (8, 8)), "indices"),
        (lambda: (torch.tensor([[0.0, 0, 0, float("nan")]] * 3), torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8)), "NaN"),
        (lambda: (torch.rand(3, 4), torch.tensor([[0, 1, 2]]), (8, 8)), "int32"),
        (lambda: (torch.rand(3, 4), torch.tensor([[0, 1, 2]], dtype=torch.int32), (0, 8)), "positive"),
        (lambda: (torch.rand(3, 3), torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8)), "shape"),
    ],
)
def test_degenerate_input_gets_a_clear_error(make, message):
    pos, tri, resolution = make()
    if message is None:
        dr.rasterize(pos, tri, resolution)  # valid input: no error
        return
    with pytest.raises(dr.RenderInputError, match=message):
        dr.rasterize(pos, tri, resolution)


def test_unknown_backend_is_rejected():
    pos, tri = random_mesh(num_tri=2)
    with pytest.raises(dr.RenderInputError, match="backend"):
        dr.rasterize(pos, tri, (8, 8), backend="vulkan")


@pytest.mark.skipif(
    importlib.util.find_spec("nvdiffrast") is None or not torch.cuda.is_available(),
    reason="nvdiffrast parity needs nvdiffrast and CUDA",
)
def test_parity_with_nvdiffrast():
    import nvdiffrast.torch as nv

    pos, tri = random_mesh(num_tri=200, seed=7)
    cuda_pos, cuda_tri = pos[None].cuda().contiguous(), tri.cuda()
    ctx = nv.RasterizeCudaContext()
    ref, _ = nv.rasterize(ctx, cuda_pos, cuda_tri, (64, 64))
    ours, _ = dr.rasterize(pos, tri, (64, 64), backend="cpu")
    ref = ref.cpu()
    covered = (ref[..., 3] > 0) | (ours[..., 3] > 0)
    assert (ref[..., 3] == ours[..., 3])[covered].float().mean() >= 0.99
    same = (ref[..., 3] == ours[..., 3]) & (ref[..., 3] > 0)
    assert torch.allclose(ref[..., :3][same], ours[..., :3][same], atol=1e-4)
