"""The shipped template asset (works from a bare clone)."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.core.errors import AvatarInputError
from avatar.morphable.template import load_template


def test_template_loads_with_expected_content():
    t = load_template()
    assert t.neutral.shape == (26719, 3) and t.neutral.dtype == np.float32
    assert t.faces.shape == (52220, 3) and t.faces.dtype == np.int32
    assert t.uv_faces.shape == t.faces.shape and t.uv_faces.max() < len(t.uv)
    assert t.face_parts.shape == (52220,)
    assert len(t.part_names) == 12 and t.part_names[:2] == ("M_Face", "M_BackHead")
    assert len(t.expression_names) == 53 and "jawOpen" in t.expression_names
    assert t.landmarks_68.shape == (68,) and t.landmarks_68.max() < 26719
    assert t.units == "cm"


def test_skin_and_neck_loop():
    t = load_template()
    skin = t.skin_faces
    assert skin.shape == (28068, 3)
    loop = t.neck_loop
    assert loop.shape == (54,)
    # consecutive loop vertices share a skin edge used by exactly one triangle
    edges = np.sort(skin[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = {tuple(e) for e in uniq[counts == 1]}
    for a, b in zip(loop, np.roll(loop, -1)):
        assert tuple(sorted((int(a), int(b)))) in boundary


def test_neck_pivot_is_inside_the_head_at_ear_height():
    t = load_template()
    p = t.neck_pivot
    assert p.shape == (3,) and p[0] == 0.0
    ears = t.neutral[t.landmarks_68[[0, 16]]]
    assert abs(p[1] - ears[:, 1].mean()) < 1e-5
    skin = t.neutral[t.skin_vertex_ids]
    assert (skin.min(0) < p).all() and (p < skin.max(0)).all()


def test_missing_asset_is_a_clear_error(tmp_path):
    with pytest.raises(AvatarInputError, match="template asset missing"):
        load_template(tmp_path)
    with pytest.raises(AvatarInputError, match="unknown template parts"):
        load_template().part_face_mask(("M_Nose",))
