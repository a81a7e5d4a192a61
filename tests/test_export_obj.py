from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from test_export_gltf import cube_mesh  # tests/ is on sys.path under pytest's default import mode

from avatar.core.errors import AvatarInputError
from avatar.core.export.mesh import TexturedMesh, encode_png, texture_to_uint8
from avatar.core.export.obj import write_obj


def test_obj_round_trip_with_texture(tmp_path):
    mesh = cube_mesh()
    written = write_obj(tmp_path / "mesh.obj", mesh)
    assert sorted(p.name for p in written) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    assert "map_Kd mesh.png" in (tmp_path / "mesh.mtl").read_text()
    text = (tmp_path / "mesh.obj").read_text()
    assert text.count("\nv ") == 8 and text.count("\nvt ") == 24 and text.count("\nf ") == 12

    loaded = trimesh.load(tmp_path / "mesh.obj", process=False)
    assert isinstance(loaded.visual, trimesh.visual.TextureVisuals)
    np.testing.assert_array_equal(np.asarray(loaded.visual.material.image.convert("RGB")), mesh.texture)
    # trimesh splits at seams; every loaded corner must carry the position and uv we wrote
    corners = loaded.vertices[loaded.faces].reshape(-1, 3)
    corner_uv = loaded.visual.uv[loaded.faces].reshape(-1, 2)
    def corner_set(positions, uvs):
        return {(tuple(np.round(p, 5)), tuple(np.round(t, 5))) for p, t in zip(positions.astype(float), uvs.astype(float))}

    expected = corner_set(mesh.vertices[mesh.faces].reshape(-1, 3) * 0.01, mesh.uv[mesh.uv_faces].reshape(-1, 2))
    got = corner_set(corners, corner_uv)
    assert got == expected
    np.testing.assert_allclose(loaded.area, 6 * 0.1**2, rtol=1e-5)


def test_obj_shared_texture_and_refusal(tmp_path):
    mesh = cube_mesh()
    Image.fromarray(mesh.texture).save(tmp_path / "texture.png")
    write_obj(tmp_path / "mesh.obj", mesh, texture_name="texture.png", write_texture=False, scale=1.0)
    assert "map_Kd texture.png" in (tmp_path / "mesh.mtl").read_text()
    loaded = trimesh.load(tmp_path / "mesh.obj", process=False)
    np.testing.assert_allclose(loaded.bounds, [[0, 0, 0], [10, 10, 10]])
    assert loaded.visual.material.image.size == (24, 16)
    before = (tmp_path / "mesh.obj").read_bytes()
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        write_obj(tmp_path / "mesh.obj", mesh, texture_name="texture.png", write_texture=False)
    assert (tmp_path / "mesh.obj").read_bytes() == before
    write_obj(tmp_path / "mesh.obj", mesh, texture_name="texture.png", force=True)


def test_texture_inputs():
    floats = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    as_uint8 = texture_to_uint8(floats)
    assert as_uint8.dtype == np.uint8 and as_uint8[0, 0, 0] == 0 and as_uint8[-1, -1, -1] == 255
    assert texture_to_uint8(Image.fromarray(as_uint8)).shape == (2, 3, 4)
    assert encode_png(as_uint8).startswith(b"\x89PNG")
    with pytest.raises(AvatarInputError, match="H x W x 3 or 4"):
        texture_to_uint8(np.zeros((4, 4)))
    with pytest.raises(AvatarInputError, match="uint8 or finite floats"):
        texture_to_uint8(np.full((2, 2, 3), np.nan))
    grey = TexturedMesh.create(np.eye(3), [[0, 1, 2]], np.zeros((3, 2)))
    assert grey.texture.shape == (4, 4, 3)
