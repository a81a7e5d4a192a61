"""The shipped morphable face model (bare clone: assets only)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import trimesh

from avatar.core.errors import AvatarInputError
from avatar.morphable.api import WEIGHTS_DIR, FaceModel
from avatar.morphable.geometry import close_neck, is_watertight
from avatar.morphable.io import CONFIG_FILE, WEIGHTS_FILE
from research.morphable.metrics import surface_metrics


@pytest.fixture(scope="module")
def fm() -> FaceModel:
    return FaceModel.load()


def _codes(fm, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, fm.geo_dim, generator=g)
    w = torch.zeros(batch, 53)
    names = fm.expression_names
    w[:, names.index("jawOpen")] = 0.3
    w[:, names.index("mouthSmile_L")] = 0.6
    w[:, names.index("eyeBlink_R")] = 0.8
    return z, w


def test_shipped_weights_are_small_and_described():
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir())
    assert size <= 10 * 1024 * 1024
    fm = FaceModel.load()
    assert fm.geo_dim == 100 and fm.expr_dim == 53 and fm.tex_dim == 12
    assert "command" in fm.record["training"] and "losses" in fm.record["training"]


def test_template_mode_lands_on_the_zero_level_set(fm):
    z, w = _codes(fm)
    verts = fm.template_vertices(z, w)
    assert verts.shape == (1, 26719, 3)
    skin = verts[:, fm.skin_ids[::7]]
    with torch.no_grad():
        d = fm.sdf(skin, z, w)
    assert d.abs().mean() < 0.01  # cm: 0.1 mm
    # outward/inward along the template normals gives positive/negative distances
    from renderers.mesh import vertex_normals

    t = fm.template
    n = vertex_normals(verts.detach(), torch.from_numpy(t.faces))[0, fm.skin_ids[::7]]
    with torch.no_grad():
        out = fm.sdf(skin + 0.2 * n, z, w)
        inside = fm.sdf(skin - 0.2 * n, z, w)
    assert (out > 0).float().mean() > 0.97 and (inside < 0).float().mean() > 0.97


def test_baked_targets_reproduce_direct_evaluation(fm):
    z, _ = _codes(fm)
    baked = fm.bake(z)
    assert baked.targets.shape == (53, 26719, 3) and baked.names == fm.expression_names
    w = torch.rand(3, 53, generator=torch.Generator().manual_seed(1)) * (torch.rand(3, 53) < 0.2)
    with torch.no_grad():
        direct = fm.template_vertices(z.expand(3, -1), w)
    assert (baked.blend(w) - direct).norm(dim=-1).max() < 1e-3  # cm


def _rigid_residual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-point distance left after the best rigid alignment (Kabsch) of a onto b, shape (N,)."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = torch.linalg.svd((a - ca).T @ (b - cb))
    d = torch.sign(torch.det(vt.T @ u.T))
    rotation = vt.T @ torch.diag(torch.stack([torch.ones(()), torch.ones(()), d])) @ u.T
    return ((a - ca) @ rotation.T + cb - b).norm(dim=-1)


def test_expression_leaves_skull_and_nose_shape_unchanged(fm):
    z, w = _codes(fm)
    t = fm.template
    v0 = fm.template_vertices(z, torch.zeros(1, 53))[0].detach()
    v1 = fm.template_vertices(z, w)[0].detach()
    rest = torch.from_numpy(t.neutral)
    skin = torch.zeros(len(rest), dtype=torch.bool)
    skin[fm.skin_ids] = True
    skull = skin & (rest[:, 1] > 9.0) & (rest[:, 2] < 4.0)  # top and back of the head
    moved = (v1 - v0).norm(dim=-1)
    assert skull.sum() > 300
    assert moved[skull].max() < 0.02  # cm: 0.2 mm
    # the nose may follow a smile rigidly (ICT's own smile shifts the bridge by 0.14 mm), but the bridge's
    # shape stays (the tip and nostrils do flex in the teacher too, by 0.17 mm here)
    bridge = torch.from_numpy(t.neutral[t.landmarks_68[27:30]])
    nose = (torch.cdist(rest, bridge).min(1).values < 1.0) & skin
    assert nose.sum() > 100
    assert _rigid_residual(v0[nose], v1[nose]).max() < 0.02  # cm: 0.2 mm
    # ...while the jaw does move
    chin = int(t.landmarks_68[8])
    assert moved[chin] > 0.3


def test_narrow_band_mesh_is_watertight_and_matches_template_mode(fm):
    za, w = _codes(fm, seed=1)
    zb, _ = _codes(fm, seed=2)
    z = 0.5 * (za + zb)  # an interpolated identity
    mesh = fm.mesh(z, w, mode="narrow_band", with_uv=True)
    v, f = mesh.vertices.numpy(), mesh.faces.numpy()
    assert is_watertight(f)
    assert trimesh.Trimesh(v, f, process=False).volume > 0  # outward normals
    assert mesh.uv.shape == (len(v), 2) and float(mesh.uv[:, 0].max()) <= 2.0
    t = fm.template
    skin = t.part_face_mask()
    # reference: template mode, its neck closed like the SDF's (else the extracted cap has no partner)
    tv, tf = close_neck(fm.template_vertices(z, w)[0].detach().numpy(), t.faces[skin], t.neck_loop)
    face = np.concatenate([t.face_parts[skin] == t.part_names.index("M_Face"), np.zeros(len(t.neck_loop), bool)])
    m = surface_metrics(v, f, tv, tf, face, samples=20_000, threshold=0.1)
    assert m["chamfer_l1"] < 0.05 and m["normal_consistency"] > 0.97  # cm


def test_template_mesh_keeps_topology_uvs_and_parts(fm):
    z, w = _codes(fm)
    mesh = fm.mesh(z, w, mode="template")
    t = fm.template
    assert mesh.faces.shape == (52220, 3) and torch.equal(mesh.uv_faces, torch.from_numpy(t.uv_faces))
    assert mesh.face_parts is not None and mesh.part_names == t.part_names


def test_codes_are_differentiable_and_sdf_gradient_matches_finite_differences(fm):
    z, w = _codes(fm)
    z = z.clone().requires_grad_(True)
    fm.template_vertices(z, w)[0, 1000].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    pts = fm.template_vertices(z.detach(), w)[:, fm.skin_ids[:64:8]].detach() + 0.05
    pts.requires_grad_(True)
    d = fm.sdf(pts, z.detach(), w, iterations=8).sum()
    (g,) = torch.autograd.grad(d, pts)
    eps = 2e-4  # cm; small enough to stay inside one cell of the trilinear grids (their gradient jumps at cell faces)
    for axis in range(3):
        dp = torch.zeros_like(pts)
        dp[..., axis] = eps
        with torch.no_grad():
            fd = (fm.sdf(pts + dp, z.detach(), w, iterations=8) - fm.sdf(pts - dp, z.detach(), w, iterations=8)) / (2 * eps)
        torch.testing.assert_close(g[0, :, axis], fd[0], atol=0.05, rtol=0.1)


def test_texture_decoder(fm):
    z = torch.randn(2, fm.tex_dim)
    albedo = fm.texture(z)
    assert albedo.shape == (2, 3, 256, 512) and (albedo > 0).all() and (albedo <= 1).all()
    assert fm.texture(z, height=64).shape == (2, 3, 64, 128)


def test_bad_input_is_rejected(fm):
    with pytest.raises(AvatarInputError, match="z_geo"):
        fm.template_vertices(torch.zeros(1, 7), torch.zeros(1, 53))
    with pytest.raises(AvatarInputError, match="NaN"):
        fm.sdf(torch.zeros(1, 3), torch.full((1, fm.geo_dim), float("nan")), torch.zeros(1, 53))
    with pytest.warns(UserWarning, match="clamped"):
        fm.template_vertices(torch.zeros(1, fm.geo_dim), torch.full((1, 53), 1.3))
    with pytest.raises(AvatarInputError, match="mode"):
        fm.mesh(torch.zeros(1, fm.geo_dim), torch.zeros(1, 53), mode="voxels")
    with pytest.raises(AvatarInputError, match="z_tex"):
        fm.texture(torch.zeros(1, 5))


def test_missing_or_corrupt_weights(tmp_path):
    with pytest.raises(AvatarInputError, match="missing"):
        FaceModel.load(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(WEIGHTS_DIR, bad)
    (bad / WEIGHTS_FILE).write_bytes(b"\x00" * 100)
    with pytest.raises(AvatarInputError, match="corrupt"):
        FaceModel.load(bad)
    shutil.copy(WEIGHTS_DIR / WEIGHTS_FILE, bad / WEIGHTS_FILE)
    (bad / CONFIG_FILE).write_text("{not json")
    with pytest.raises(AvatarInputError, match="corrupt"):
        FaceModel.load(bad)
