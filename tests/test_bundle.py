"""avatar.core.bundle and avatar.core.avatar.Avatar: write/read round trip, exports valid and re-loadable, rendering."""

from __future__ import annotations

import json

import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from avatar.api import load
from avatar.core.avatar import Avatar
from avatar.core.bundle import (
    GLB_FILE,
    JSON_FILE,
    OBJ_FILE,
    TENSOR_FILE,
    TEXTURE_FILE,
    AvatarBundle,
    read_bundle,
    write_bundle,
)
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES
from avatar.morphable.template import load_template
from avatar.morphable.uv_atlas import atlas_layout


@pytest.fixture(scope="module")
def bundle() -> AvatarBundle:
    """A bundle made from the shipped template: a small made-up jawOpen and smile target, a UV gradient texture."""
    t = load_template()
    atlas = atlas_layout(t.faces, t.uv, t.uv_faces, t.face_parts, t.part_names)
    vertices = torch.from_numpy(np.array(t.neutral))
    deltas = torch.zeros(53, *vertices.shape)
    chin = vertices[:, 1] < -4
    deltas[t.expression_names.index("jawOpen"), chin, 1] = -1.0
    deltas[t.expression_names.index("mouthSmile_L"), :, 0] = 0.01 * vertices[:, 0]
    coords = torch.linspace(0, 1, 64)
    texture = torch.stack(torch.meshgrid(coords, coords, indexing="ij") + (torch.full((64, 64), 0.5),), -1)
    return AvatarBundle(
        z_geo=torch.randn(100), z_tex=torch.randn(12), expression=torch.rand(53), head_rotation=torch.tensor([0.0, 0.2, 0.0]),
        head_translation=torch.zeros(3), vertices=vertices, expression_deltas=deltas,
        faces=torch.from_numpy(np.array(t.faces)), uv=torch.from_numpy(atlas.uv), uv_faces=torch.from_numpy(atlas.uv_faces),
        face_parts=torch.from_numpy(np.array(t.face_parts)), part_names=t.part_names, expression_names=t.expression_names,
        neck_pivot=torch.from_numpy(np.array(t.neck_pivot)), texture=texture, sh_light=torch.randn(9, 1),
        meta={"created_by": "test"}, preview=np.zeros((12, 12, 3), np.uint8), report={"num_faces_detected": 1},
    )


@pytest.fixture(scope="module")
def written(bundle, tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("b") / "face.avatar", bundle)


def test_round_trip(bundle, written):
    back = read_bundle(written)
    for name in ("z_geo", "z_tex", "expression", "head_rotation", "vertices", "uv", "sh_light"):
        assert torch.allclose(getattr(back, name), getattr(bundle, name)), name
    assert torch.allclose(back.expression_deltas, bundle.expression_deltas, atol=2e-3)  # float16 storage
    assert torch.equal(back.faces, bundle.faces) and torch.equal(back.uv_faces, bundle.uv_faces)
    assert back.expression_names == bundle.expression_names and back.part_names == bundle.part_names
    assert torch.allclose(back.texture, bundle.texture, atol=1 / 255)
    assert back.report == bundle.report and back.preview.shape == (12, 12, 3)
    meta = json.loads((written / JSON_FILE).read_text())
    assert meta["format"] == "avatar-bundle/1" and meta["codes"]["z_geo"] == 100 and meta["created_by"] == "test"
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".tmp-")]


def test_safetensors_readable_without_the_library(written):
    from safetensors.numpy import load_file

    arrays = load_file(str(written / TENSOR_FILE))
    assert arrays["vertices"].shape == (26719, 3) and arrays["expression_deltas"].shape == (53, 26719, 3)
    assert arrays["expression_deltas"].dtype == np.float16 and arrays["faces"].dtype == np.int32


def test_glb_has_named_morph_targets_texture_and_pivot(bundle, written):
    gltf = pygltflib.GLTF2().load(str(written / GLB_FILE))
    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(ARKIT_NAMES)  # what three.js and Unity ARKit mappers look for
    assert len(mesh.primitives[0].targets) == 52
    assert [n.name for n in gltf.nodes] == ["neck", "head"]
    assert np.allclose(gltf.nodes[0].translation, bundle.neck_pivot.numpy() * 0.01, atol=1e-6)
    assert gltf.images[0].mimeType == "image/png"
    scene = trimesh.load(written / GLB_FILE)
    geometry = list(scene.geometry.values())[0]
    assert geometry.visual.material.baseColorTexture is not None
    extent = geometry.bounds[1] - geometry.bounds[0]
    assert 0.15 < extent[1] < 0.5  # metres: a head and neck


def test_glb_passes_khronos_validator(written):
    from test_export_gltf import validate

    issues = validate(written / GLB_FILE)["issues"]
    assert issues["numErrors"] == 0, json.dumps(issues["messages"][:10], indent=1)


def test_obj_reloads_with_its_texture(written):
    mesh = trimesh.load(written / OBJ_FILE, process=False)
    assert mesh.visual.kind == "texture"
    assert mesh.visual.material.image is not None and mesh.visual.material.image.size == (64, 64)
    assert (written / TEXTURE_FILE).is_file() and (written / "mesh.mtl").read_text().strip().endswith("texture.png")


def test_existing_folder_needs_force(bundle, written):
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        write_bundle(written, bundle)
    before = (written / TENSOR_FILE).stat().st_mtime_ns
    write_bundle(written, bundle, force=True)
    assert (written / TENSOR_FILE).stat().st_mtime_ns >= before
    assert read_bundle(written).vertices.shape == (26719, 3)


def test_read_errors(tmp_path, written):
    with pytest.raises(AvatarInputError, match="not found"):
        read_bundle(tmp_path / "absent.avatar")
    (tmp_path / "file.avatar").write_text("x")
    with pytest.raises(AvatarInputError, match="is a file"):
        read_bundle(tmp_path / "file.avatar")
    empty = tmp_path / "empty.avatar"
    empty.mkdir()
    with pytest.raises(AvatarInputError, match="missing"):
        read_bundle(empty)
    import shutil

    broken = tmp_path / "broken.avatar"
    shutil.copytree(written, broken)
    (broken / TENSOR_FILE).write_bytes(b"garbage")
    with pytest.raises(AvatarInputError, match="corrupt"):
        read_bundle(broken)


def test_avatar_vertices_render_and_save(bundle, tmp_path):
    avatar = Avatar(bundle)
    neutral = avatar.vertices()
    assert torch.allclose(neutral, bundle.vertices)
    jaw = avatar.vertices({"jawOpen": 0.5})
    assert torch.allclose(jaw - neutral, 0.5 * bundle.expression_deltas[bundle.expression_names.index("jawOpen")], atol=1e-5)
    weights = np.zeros(53, np.float32)
    weights[bundle.expression_names.index("jawOpen")] = 0.5
    assert torch.allclose(avatar.vertices(weights), jaw)
    turned = avatar.vertices(pose=[0.0, 0.5, 0.0])
    pivot = bundle.neck_pivot
    assert torch.allclose((turned - pivot).norm(dim=1), (neutral - pivot).norm(dim=1), atol=1e-4)
    image = avatar.render(expression={"jawOpen": 0.4}, yaw=0.3, size=64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image < 250).any(axis=-1).mean() > 0.1  # the head covers part of the frame
    rgba = avatar.render(size=(48, 32), background=None, light="photo")
    assert rgba.shape == (48, 32, 4) and rgba[..., 3].max() == 255 and rgba[0, 0, 3] == 0
    out = avatar.save(tmp_path / "copy.avatar")
    assert torch.allclose(load(out).vertices(), neutral)


def test_avatar_takes_arkit_and_ict_names(bundle):
    """`Avatar.render(expression={"mouthSmileLeft": .4})` is the same as ICT's `mouthSmile_L`."""
    avatar = Avatar(bundle)
    arkit = {"mouthSmileLeft": 0.4, "eyeBlinkRight": 1.0, "browInnerUp": 0.5, "tongueOut": 1.0}
    ict = {"mouthSmile_L": 0.4, "eyeBlink_R": 1.0, "browInnerUp_L": 0.5, "browInnerUp_R": 0.5}
    assert torch.equal(avatar.expression_weights(arkit), avatar.expression_weights(ict))
    assert np.array_equal(avatar.render(expression=arkit, size=48), avatar.render(expression=ict, size=48))


def test_avatar_input_errors(bundle):
    avatar = Avatar(bundle)
    with pytest.raises(AvatarInputError, match="unknown expression name"):
        avatar.vertices({"smile": 1.0})
    with pytest.raises(AvatarInputError, match="53 weights"):
        avatar.vertices(np.zeros(5))
    with pytest.raises(AvatarInputError, match="pose"):
        avatar.vertices(pose=[0.0, 1.0])
    with pytest.raises(AvatarInputError, match="size"):
        avatar.render(size=0)
    with pytest.raises(AvatarInputError, match="finite"):
        avatar.render(yaw=float("nan"))
