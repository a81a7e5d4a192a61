from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh

from avatar.core.errors import AvatarInputError
from avatar.core.export.gltf import glb_bytes, write_glb
from avatar.core.export.mesh import TexturedMesh, split_uv_seams
from avatar.core.paths import REPO_ROOT

# .ci/run installs the npm package here (ignored by git); the tests skip without Node or the package.
VALIDATOR_MODULE = REPO_ROOT / "cache" / "node" / "node_modules" / "gltf-validator"
VALIDATOR_SCRIPT = Path(__file__).with_name("gltf_validate.js")


def validate(path: Path) -> dict:
    """The Khronos glTF-Validator's report for ``path``."""
    node = shutil.which("node")
    if node is None or not (VALIDATOR_MODULE / "package.json").is_file():
        pytest.skip("Node or the npm package gltf-validator is absent (.ci/run installs it)")
    result = subprocess.run([node, str(VALIDATOR_SCRIPT), str(VALIDATOR_MODULE), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_valid(path: Path) -> None:
    issues = validate(path)["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, json.dumps(issues["messages"][:10], indent=1)


def cube_mesh() -> TexturedMesh:
    """A unit cube whose six faces each have their own uv square: every vertex sits on a seam."""
    vertices = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float32) * 10.0
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces, uv, uv_faces = [], [], []
    for side, (a, b, c, d) in enumerate(quads):
        u0, v0 = (side % 3) / 3, (side // 3) / 2
        base = len(uv)
        uv += [(u0, v0), (u0 + 1 / 3, v0), (u0 + 1 / 3, v0 + 0.5), (u0, v0 + 0.5)]
        faces += [(a, b, c), (a, c, d)]
        uv_faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    texture = np.zeros((16, 24, 3), np.uint8)
    texture[:8, :, 0] = 255  # top half red, bottom half blue (row 0 = top)
    texture[8:, :, 2] = 255
    return TexturedMesh.create(vertices, np.array(faces), np.array(uv, np.float32), np.array(uv_faces), texture)


def read_accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """Dense float values of an accessor, applying sparse substitution."""
    accessor = gltf.accessors[index]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[accessor.type]
    blob = gltf.binary_blob()
    dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32}[accessor.componentType]

    def view(view_index, count, view_dtype, view_width):
        view = gltf.bufferViews[view_index]
        return np.frombuffer(blob, view_dtype, count * view_width, view.byteOffset).reshape(count, view_width)

    values = view(accessor.bufferView, accessor.count, dtype, width).copy() if accessor.bufferView is not None else np.zeros((accessor.count, width), dtype)
    if accessor.sparse is not None:
        sparse = accessor.sparse
        rows = view(sparse.indices.bufferView, sparse.count, np.uint32, 1)[:, 0]
        values[rows] = view(sparse.values.bufferView, sparse.count, dtype, width)
    return values


def test_split_uv_seams_duplicates_seam_vertices_only():
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    same = split_uv_seams(faces, faces)
    np.testing.assert_array_equal(same.vertex_ids, [0, 1, 2, 3])
    np.testing.assert_array_equal(same.faces, faces)
    split = split_uv_seams(faces, np.array([[0, 1, 2], [3, 2, 4]]))  # vertex 0 has uv 0 and uv 3
    np.testing.assert_array_equal(split.vertex_ids, [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(split.vertex_ids[split.faces], faces)
    np.testing.assert_array_equal(split.uv_ids[split.faces], [[0, 1, 2], [3, 2, 4]])


def test_glb_round_trip(tmp_path):
    mesh = cube_mesh()
    deltas = cube_morphs(mesh)
    pivot = np.array([5.0, 0.0, 5.0], np.float32)
    path = write_glb(tmp_path / "cube.glb", mesh, morph_deltas=deltas, morph_names=["jawOpen", "grow"], neck_pivot=pivot)
    split = split_uv_seams(mesh.faces, mesh.uv_faces)
    assert len(split.vertex_ids) == 24

    gltf = pygltflib.GLTF2.load(path)
    gl_mesh = gltf.meshes[0]
    assert gl_mesh.extras["targetNames"] == ["jawOpen", "grow"] and gl_mesh.weights == [0.0, 0.0]
    primitive = gl_mesh.primitives[0]
    np.testing.assert_allclose(read_accessor(gltf, primitive.attributes.POSITION), mesh.vertices[split.vertex_ids] * 0.01, atol=1e-7)
    uv = read_accessor(gltf, primitive.attributes.TEXCOORD_0)
    np.testing.assert_allclose(uv[:, 0], mesh.uv[split.uv_ids, 0], atol=1e-7)
    np.testing.assert_allclose(uv[:, 1], 1.0 - mesh.uv[split.uv_ids, 1], atol=1e-7)  # top-left origin
    normals = read_accessor(gltf, primitive.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    centre = mesh.vertices[split.vertex_ids] - 5.0
    assert (np.sum(normals * centre, axis=1) > 0).all()  # outward
    assert gltf.accessors[primitive.targets[0]["POSITION"]].sparse is not None
    assert gltf.accessors[primitive.targets[1]["POSITION"]].sparse is None
    for k, target in enumerate(primitive.targets):  # pygltflib reads targets as dicts
        np.testing.assert_allclose(read_accessor(gltf, target["POSITION"]), deltas[k][split.vertex_ids] * 0.01, atol=1e-7)

    neck, head = gltf.nodes[gltf.scenes[0].nodes[0]], gltf.nodes[1]
    assert neck.name == "neck" and neck.children == [1] and head.mesh == 0
    np.testing.assert_allclose(neck.translation, pivot * 0.01, atol=1e-7)
    np.testing.assert_allclose(np.add(neck.translation, head.translation), 0.0, atol=1e-9)
    assert gltf.images[0].mimeType == "image/png"

    scene = trimesh.load(path, process=False)
    (geometry,) = scene.geometry.values()
    assert len(geometry.vertices) == 24 and len(geometry.faces) == 12
    image = np.asarray(geometry.visual.material.baseColorTexture.convert("RGB"))
    np.testing.assert_array_equal(image, mesh.texture)
    np.testing.assert_allclose(geometry.visual.uv, mesh.uv[split.uv_ids], atol=1e-6)  # trimesh flips v back
    world = scene.to_geometry()
    np.testing.assert_allclose(world.vertices, mesh.vertices[split.vertex_ids] * 0.01, atol=1e-7)


def test_rotating_the_neck_turns_the_head_about_the_pivot(tmp_path):
    mesh = cube_mesh()
    pivot = np.array([5.0, -3.0, 2.0])
    gltf = pygltflib.GLTF2.load_from_bytes(glb_bytes(mesh, neck_pivot=pivot, scale=1.0))
    neck, head = gltf.nodes[0], gltf.nodes[1]
    quarter_turn_about_y = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    neck_matrix = trimesh.transformations.translation_matrix(neck.translation) @ quarter_turn_about_y
    world = neck_matrix @ trimesh.transformations.translation_matrix(head.translation)
    np.testing.assert_allclose(world @ np.r_[pivot, 1.0], np.r_[pivot, 1.0], atol=1e-9)  # the pivot stays put


def cube_morphs(mesh: TexturedMesh) -> np.ndarray:
    """Two targets: one moving a cube side (stored sparse), one moving every vertex (dense)."""
    deltas = np.zeros((2, 8, 3), np.float32)
    deltas[0, [1, 3, 5, 7], 2] = 2.0
    deltas[1] = mesh.vertices * 0.5
    return deltas


@pytest.mark.parametrize("with_morphs", [True, False])
def test_glb_passes_the_khronos_validator(tmp_path, with_morphs):
    mesh = cube_mesh()
    options = {"morph_deltas": cube_morphs(mesh), "morph_names": ["jawOpen", "grow"]} if with_morphs else {}
    path = write_glb(tmp_path / "cube.glb", mesh, neck_pivot=(5.0, 0.0, 5.0), **options)
    gltf = pygltflib.GLTF2.load(path)
    assert bool(gltf.meshes[0].primitives[0].targets) == with_morphs == bool(gltf.meshes[0].extras)
    assert_valid(path)


def test_glb_refuses_overwrite_and_bad_morphs(tmp_path):
    mesh = cube_mesh()
    write_glb(tmp_path / "a.glb", mesh)
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        write_glb(tmp_path / "a.glb", mesh)
    write_glb(tmp_path / "a.glb", mesh, force=True)
    with pytest.raises(AvatarInputError, match="2 morph names for 1 morph targets"):
        glb_bytes(mesh, morph_deltas=np.zeros((1, 8, 3)), morph_names=["a", "b"])
    with pytest.raises(AvatarInputError, match="K x 8 x 3"):
        glb_bytes(mesh, morph_deltas=np.zeros((1, 7, 3)), morph_names=["a"])
    with pytest.raises(AvatarInputError, match="faces index vertices"):
        TexturedMesh.create(mesh.vertices, mesh.faces + 8, mesh.uv, mesh.uv_faces)


def template_glb(path: Path) -> tuple[Path, int]:
    """A GLB of the shipped template with three random targets; returns it and its split vertex count."""
    template = pytest.importorskip("avatar.morphable.template").load_template()
    rng = np.random.default_rng(0)
    mesh = TexturedMesh.create(template.neutral, template.faces, template.uv, template.uv_faces, rng.random((64, 64, 3)))
    deltas = np.zeros((3, len(template.neutral), 3), np.float32)
    deltas[0, template.landmarks_68] = rng.normal(0, 0.3, (68, 3))
    deltas[2] = rng.normal(0, 0.1, deltas[2].shape)
    write_glb(path, mesh, morph_deltas=deltas, morph_names=["a", "b", "c"], neck_pivot=template.neck_pivot)
    return path, len(split_uv_seams(template.faces, template.uv_faces).vertex_ids)


def test_template_glb_reloads(tmp_path):
    path, num_vertices = template_glb(tmp_path / "template.glb")
    (geometry,) = trimesh.load(path, process=False).geometry.values()
    assert len(geometry.vertices) == num_vertices and geometry.visual.material.baseColorTexture.size == (64, 64)


def test_template_glb_is_valid(tmp_path):
    assert_valid(template_glb(tmp_path / "template.glb")[0])


@pytest.mark.shared
def test_ict_glb_with_53_expressions_is_valid(shared, tmp_path):
    from avatar.morphable.ict import load_ict_facekit

    ict = load_ict_facekit()
    mesh = TexturedMesh.create(ict.neutral, ict.faces, ict.uv, ict.uv_faces)
    path = write_glb(tmp_path / "ict.glb", mesh, morph_deltas=ict.expression_deltas, morph_names=ict.expression_names)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0 and report["info"]["hasMorphTargets"]
    assert pygltflib.GLTF2.load(path).meshes[0].extras["targetNames"] == list(ict.expression_names)
