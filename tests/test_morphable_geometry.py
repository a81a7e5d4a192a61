"""Watertight skin, signed distances, sampling, mesh clean-up and surface metrics."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from avatar.morphable.geometry import close_neck, is_watertight, largest_component, sample_surface, signed_distance
from avatar.morphable.template import load_template
from research.morphable.metrics import surface_metrics


def test_template_skin_closes_to_a_genus0_watertight_surface():
    t = load_template()
    v, f = close_neck(t.neutral, t.skin_faces, t.neck_loop)
    assert is_watertight(f)
    mesh = trimesh.Trimesh(v, f, process=False)
    mesh.remove_unreferenced_vertices()
    assert mesh.is_winding_consistent and mesh.volume > 0  # outward normals
    assert mesh.euler_number == 2


def test_signed_distance_of_a_sphere():
    s = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    pts = np.array([[0, 0, 0], [0, 0, 2], [0.5, 0, 0]], np.float32)
    sdf, _, _ = signed_distance(pts, s.vertices, s.faces)
    np.testing.assert_allclose(sdf, [-1, 1, -0.5], atol=2e-3)


def test_sampling_and_largest_component():
    s = trimesh.creation.icosphere(subdivisions=3)
    small = trimesh.creation.icosphere(subdivisions=1, radius=0.1)
    v = np.concatenate([s.vertices, small.vertices + 3]).astype(np.float32)
    f = np.concatenate([s.faces, small.faces + len(s.vertices)])
    kept_v, kept_f = largest_component(v, f)
    assert len(kept_f) == len(s.faces) and np.abs(kept_v).max() < 1.01
    p, n, fid, bary = sample_surface(s.vertices, s.faces, 1000, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    assert (np.einsum("ij,ij->i", p, n) > 0).all()  # outward
    np.testing.assert_allclose(bary.sum(1), 1, atol=1e-6)


def test_surface_metrics_of_identical_and_offset_spheres():
    s = trimesh.creation.icosphere(subdivisions=4)
    region = np.ones(len(s.faces), bool)
    same = surface_metrics(s.vertices, s.faces, s.vertices, s.faces, region, 5000, 0.01)
    assert same["chamfer_l1"] < 1e-6 and same["normal_consistency"] > 0.999 and same["fscore"] == 1.0
    bigger = surface_metrics(s.vertices * 1.05, s.faces, s.vertices, s.faces, region, 5000, 0.01)
    assert abs(bigger["chamfer_l1"] - 0.05) < 0.005 and bigger["fscore"] < 0.05


def test_close_holes_fans_simple_and_pinched_loops():
    from avatar.morphable.geometry import close_holes

    sphere = trimesh.creation.icosphere(2)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    around_zero = np.flatnonzero((f == 0).any(1))
    pinched = np.delete(f, [around_zero[0], around_zero[2]], axis=0)  # two holes touching at vertex 0
    three = np.delete(f, [0, 50, 100], axis=0)
    for faces in (pinched, three):
        v2, f2 = close_holes(v, faces)
        assert is_watertight(f2)
        assert trimesh.Trimesh(v2, f2, process=False).volume == pytest.approx(sphere.volume, rel=0.02)
    assert close_holes(v, f)[1] is f  # nothing to close
