"""ICT FaceKit loader against the shared data (skips without ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from avatar.morphable.ict import NUM_EXPRESSIONS, linear_vertices, load_ict_facekit


@pytest.fixture(scope="module")
def ict(shared):
    return load_ict_facekit()


def _boundary_edges(faces):
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return uniq[counts == 1]


def test_shapes_and_dtypes(ict):
    V = 26719
    assert ict.neutral.shape == (V, 3) and ict.neutral.dtype == np.float32
    assert ict.faces.dtype == np.int32 and ict.faces.shape[1] == 3
    # 25836 quads + 548 triangles upstream
    assert ict.faces.shape[0] == 25836 * 2 + 548
    assert ict.uv_faces.shape == ict.faces.shape and ict.uv_faces.dtype == np.int32
    assert ict.face_parts.shape == (ict.faces.shape[0],) and ict.face_parts.dtype == np.int16
    assert ict.expression_deltas.shape == (NUM_EXPRESSIONS, V, 3)
    assert ict.identity_deltas.shape == (100, V, 3)
    assert ict.landmarks_68.shape == (68,) and ict.landmarks_68.dtype == np.int32
    assert ict.faces.min() >= 0 and ict.faces.max() < V


def test_expression_names_are_the_53_arkit_shapes(ict):
    names = ict.expression_names
    assert len(names) == 53 and names[0] == "browDown_L" and "jawOpen" in names
    for extra in ("PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R"):
        assert extra not in names and extra in ict.extra_expression_names
    assert ict.extra_expression_deltas.shape == (4, ict.num_vertices, 3)


def test_skin_is_one_surface_with_one_neck_loop(ict):
    skin = ict.faces[ict.part_face_mask(("M_Face", "M_BackHead"))]
    assert skin.shape[0] == 28068
    boundary = _boundary_edges(skin)
    assert len(boundary) == 54 and len(np.unique(boundary)) == 54  # a single simple loop


def test_uv_faces_are_valid(ict):
    assert ict.uv_faces.min() >= 0 and ict.uv_faces.max() < ict.uv.shape[0]
    assert np.isfinite(ict.uv).all()
    # every uv corner's triangle is non-degenerate in uv space for the skin
    skin = ict.part_face_mask(("M_Face",))
    tri = ict.uv[ict.uv_faces[skin]]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert (np.abs(area) > 0).mean() > 0.999


def test_linear_model_matches_definition(ict):
    w_id = torch.zeros(1, 100)
    w_id[0, 3] = 1.5
    w_exp = torch.zeros(1, 53)
    w_exp[0, ict.expression_names.index("jawOpen")] = 0.5
    v = linear_vertices(ict, w_id, w_exp)[0].numpy()
    ref = ict.neutral + 1.5 * ict.identity_deltas[3] + 0.5 * ict.expression_deltas[26]
    np.testing.assert_allclose(v, ref, atol=1e-4)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AvatarInputError, match="not found"):
        load_ict_facekit(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(AvatarInputError, match="cannot read"):
        load_ict_facekit(bad)
