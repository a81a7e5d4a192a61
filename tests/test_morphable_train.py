"""Trainer pieces: mesh-folder mode end to end, resumable deformation training, part motions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from avatar.core.errors import AvatarInputError
from avatar.morphable.geometry import close_neck
from avatar.morphable.io import load_weights
from avatar.morphable.template import load_template
from research.morphable.dataset import read_mesh_folder
from research.morphable.teacher import Teacher, fit_part_motions
from research.morphable.training import Checkpoint, lr_at, new_model, train_deformation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import train_morphable  # noqa: E402

SMALL = [
    "data.surface_samples=1500", "data.near_samples=1500", "data.free_samples=300",
    "train.folder_steps=40", "train.folder_batch=1024", "train.log_every=10",
]


def _head_scans(folder: Path) -> torch.Tensor:
    """Three "scans": heads of the shipped model at known identity codes (skin only, watertight),
    written in millimetres as OBJ / PLY / GLB, with a sidecar expression for one of them."""
    from avatar.morphable.api import FaceModel

    fm = FaceModel.load()
    t = fm.template
    z = 0.8 * torch.randn(3, fm.geo_dim, generator=torch.Generator().manual_seed(4))
    verts = fm.template_vertices(z, torch.zeros(3, 53)).detach().numpy()
    for k, ext in enumerate(("obj", "ply", "glb")):
        v, f = close_neck(verts[k], t.skin_faces, t.neck_loop)
        used = np.unique(f)
        remap = np.full(len(v), -1)
        remap[used] = np.arange(len(used))
        trimesh.Trimesh(v[used] * 10.0, remap[f], process=False).export(folder / f"scan{k}.{ext}")
    (folder / "scan2.json").write_text(json.dumps({"expression": {"jawOpen": 0.0}}))
    return z


def test_mesh_folder_mode_end_to_end(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    z_true = _head_scans(scans)
    meshes = read_mesh_folder(scans, "mm", load_template().expression_names)
    assert [m["name"] for m in meshes] == ["scan0", "scan1", "scan2"] and all(m["watertight"] for m in meshes)
    assert 13.0 < meshes[0]["vertices"][:, 1].max() < 17.0  # mm → cm
    out = tmp_path / "model"
    from avatar.morphable.api import WEIGHTS_DIR

    args = ["--mesh-folder", str(scans), "--units", "mm", "--out", str(out), "--init", str(WEIGHTS_DIR), "--set", *SMALL]
    assert train_morphable.main(args) == 0
    model, _, record = load_weights(out)
    codes = torch.tensor([record["codes"][f"scan{k}"] for k in range(3)])
    assert codes.shape == (3, model.geo_dim)
    losses = record["training"]["losses"]
    assert losses["surface_mm"] < 1.0 and losses["sdf_l1_mm"] < 1.0
    # the fitted codes explain the scans far better than the mean head does
    from avatar.morphable.geometry import sample_surface

    model.seed_points = torch.from_numpy(load_template().neutral[load_template().skin_vertex_ids])
    for k, mesh in enumerate(meshes):
        pts, _, _, _ = sample_surface(mesh["vertices"], mesh["faces"], 2000, np.random.default_rng(k))
        pts = torch.from_numpy(pts)[None]
        with torch.no_grad():
            fitted = model.sdf(pts, model.codes(codes[k : k + 1], torch.zeros(1, 53))).abs().mean()
            mean_head = model.sdf(pts, model.codes(torch.zeros(1, model.geo_dim), torch.zeros(1, 53))).abs().mean()
        assert fitted < 0.5 * mean_head, (k, float(fitted), float(mean_head))
    assert train_morphable.main(args) == 2  # no overwrite without --force


def test_mesh_folder_errors(tmp_path):
    with pytest.raises(AvatarInputError, match="not found"):
        read_mesh_folder(tmp_path / "missing")
    with pytest.raises(AvatarInputError, match="no meshes"):
        read_mesh_folder(tmp_path)
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(AvatarInputError):
        read_mesh_folder(tmp_path)
    with pytest.raises(AvatarInputError, match="units"):
        read_mesh_folder(tmp_path, units="inch")


def _toy_teacher(seed=0) -> Teacher:
    s = trimesh.creation.icosphere(subdivisions=2, radius=5.0)
    rng = np.random.default_rng(seed)
    v = np.asarray(s.vertices, np.float32)
    deltas = np.zeros((len(v), 6, 3), np.float32)
    for k in range(6):  # smooth random fields
        a = rng.standard_normal((3, 3)).astype(np.float32) * 0.05
        deltas[:, k] = v @ a
    return Teacher(v, np.asarray(s.faces, np.int64), deltas, np.arange(len(v)), np.arange(len(v)))


def _toy_model(teacher, cfg):
    return new_model(cfg, teacher.vertices, teacher.faces, seed=0)


def test_deformation_training_resumes_exactly(tmp_path):
    teacher = _toy_teacher()
    mcfg = {"box_min": [-8, -8, -8], "box_max": [8, 8, 8], "canonical_levels": [[16, 1, None]],
            "deform_levels": [[8, 4, None], [16, 4, 1.0]], "hidden": [16], "basis": 8, "geo_dim": 4, "expr_dim": 2}
    tcfg = {"expression_scale": 0.5, "lr": 1e-2, "lr_grid": 1e-2, "warmup": 0.1, "deform_steps": 6, "batch": 256,
            "seed": 0, "log_every": 100, "checkpoint_every": 3}
    rng = np.random.default_rng(1)
    pts, fid = trimesh.sample.sample_surface(trimesh.Trimesh(teacher.vertices, teacher.faces), 2000, seed=1)
    tri = teacher.vertices[teacher.faces[fid]]
    bary = trimesh.triangles.points_to_barycentric(tri, pts).astype(np.float32)
    samples = {"points": torch.from_numpy(pts.astype(np.float32)), "face_id": torch.from_numpy(fid.astype(np.int64)),
               "bary": torch.from_numpy(bary)}
    del rng
    straight = _toy_model(teacher, mcfg)
    train_deformation(straight, teacher, samples, tcfg, Checkpoint(tmp_path / "a"), lambda e: None)
    # interrupted (a deadline that has passed stops after the first step, with a checkpoint), then resumed
    resumed = _toy_model(teacher, mcfg)
    half = dict(tcfg, deform_steps=6)
    first = train_deformation(resumed, teacher, samples, dict(half), Checkpoint(tmp_path / "b"), lambda e: None,
                              deadline=lambda spent: True)
    assert first["deform_steps_done"] == 1
    resumed = _toy_model(teacher, mcfg)
    train_deformation(resumed, teacher, samples, tcfg, Checkpoint(tmp_path / "b"), lambda e: None)
    for (n, a), (_, b) in zip(straight.deform.state_dict().items(), resumed.deform.state_dict().items()):
        torch.testing.assert_close(a, b, msg=n)
    assert lr_at(0, 100, 1.0, 0.1) == pytest.approx(0.1) and lr_at(99, 100, 1.0, 0.1) < 0.05


def test_part_motions_recover_rigid_moves():
    rng = np.random.default_rng(0)
    rest = rng.standard_normal((50, 3)).astype(np.float32)
    comp = np.zeros(50, np.int64)
    comp[25:] = 1
    omega, t = np.array([0.0, 0.01, 0.0]), np.array([0.1, 0.0, -0.2])
    deltas = np.zeros((50, 2, 3), np.float32)
    centre = rest[:25].mean(0)
    deltas[:25, 0] = t + np.cross(omega, rest[:25] - centre)
    deltas[25:, 1] = 0.02 * (rest[25:] - rest[25:].mean(0))  # uniform scale
    origins, motions, residual = fit_part_motions(rest, deltas, comp, 2)
    assert residual.max() < 1e-5
    np.testing.assert_allclose(motions[0, 0, :3], t, atol=1e-5)
    np.testing.assert_allclose(motions[0, 0, 3:6], omega, atol=1e-5)
    assert motions[1, 1, 6] == pytest.approx(0.02, abs=1e-5)
