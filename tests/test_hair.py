"""The hair layer of `avatar fit`: made for people with hair, not for bald heads, written, read, exported, drawn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pygltflib
import pytest
import torch

from avatar.core.bundle import read_bundle, write_bundle


@pytest.fixture(scope="module")
def fitted(shared):
    from avatar.fitting.pipeline import fit_photo, to_bundle

    output = fit_photo(shared / "media" / "photos" / "single_face.jpg")
    return output, to_bundle(output)


def test_a_person_with_hair_gets_a_hair_layer_that_fills_the_silhouette(fitted):
    output, bundle = fitted
    assert bundle.hair is not None and output.report["hair"]["triangles"] > 1000
    # rigid shell over the scalp: outside the head, no further than the clamp
    hair = bundle.hair.vertices
    assert float(hair[:, 1].max()) > float(bundle.vertices[:, 1].max())
    # the silhouette against the person mask above the chin: with the hair, better than the bald head
    from avatar.fitting.detect import person_mask
    from avatar.fitting.pipeline import silhouette_iou
    from avatar.fitting.preview import overlay_image

    person = person_mask(output.photo.image)
    size = output.photo.image.shape[:2]
    bald = overlay_image(output.head, output.fit, output.unwrap.texture, size, output.photo.original_size)
    with_hair = silhouette_iou(output.overlay, output.photo, output.observation, person)
    assert with_hair > silhouette_iou(bald, output.photo, output.observation, person) + 0.05
    assert output.report["head_silhouette_iou"] == pytest.approx(with_hair, abs=1e-4)
    # the photo's hair is dark: so is the layer's colour
    assert float(bundle.hair.texture.mean()) < 0.35


def test_hair_layer_round_trips_and_is_its_own_glb_node(fitted, tmp_path):
    from tests.test_export_gltf import assert_valid

    _, bundle = fitted
    folder = write_bundle(tmp_path / "a.avatar", bundle)
    assert (folder / "hair.png").is_file()
    back = read_bundle(folder)
    assert torch.allclose(back.hair.vertices, bundle.hair.vertices)
    assert torch.equal(back.hair.faces, bundle.hair.faces)
    assert float((back.hair.texture - bundle.hair.texture).abs().max()) <= 1 / 255 + 1e-6
    gltf = pygltflib.GLTF2().load(str(folder / "mesh.glb"))
    assert [n.name for n in gltf.nodes] == ["neck", "head", "hair"]
    assert gltf.nodes[0].children == [1, 2] and not gltf.meshes[1].primitives[0].targets
    assert_valid(folder / "mesh.glb")


def test_renders_draw_the_hair_above_the_forehead(fitted):
    from avatar.core.avatar import Avatar
    from avatar.core.code_render import CodeRenderer

    _, bundle = fitted
    bald = replace(bundle, hair=None)
    codes = torch.zeros(2, 59)
    codes[1, 54] = 0.5  # turned: the hair turns with the head
    for frames, frames_bald in ((CodeRenderer(bundle, 128).render(codes), CodeRenderer(bald, 128).render(codes)),
                                (Avatar(bundle).render(size=128)[None], Avatar(bald).render(size=128)[None])):
        top = slice(8, 40)  # the crown, above the forehead
        dark = (frames[:, top].astype(int).sum(-1) < 150).mean()
        assert dark > (frames_bald[:, top].astype(int).sum(-1) < 150).mean() + 0.05


def test_a_bald_head_stays_bald():
    """A render of the bald model (no hair anywhere) gets no hair layer."""
    from avatar.fitting.pipeline import fit_photo
    from avatar.morphable.head import load_head
    from research.fitting.synthetic import render_synthetic

    head = load_head("auto")
    photo = render_synthetic(head, np.random.default_rng(3), max_yaw_deg=10.0)
    output = fit_photo(photo.image, quality="fast", head=head)
    assert output.hair is None and output.report["hair"] is None


def test_rigid_pose_recovers_a_batch_of_head_poses():
    from avatar.core.bundle import rigid_pose
    from avatar.core.geometry import axis_angle_to_matrix

    rest = torch.randn(200, 3) * 8
    pivot = torch.tensor([0.0, 3.0, -1.0])
    rotations = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [0.0, 0.8, 0.0]]))
    shifts = torch.tensor([[[0.0, 0.0, 0.0]], [[1.0, -2.0, 0.5]], [[0.0, 0.0, 3.0]]])
    posed = (rest - pivot) @ rotations.transpose(-1, -2) + pivot + shifts
    rotation, translation = rigid_pose(rest, posed, pivot)
    assert torch.allclose(rotation, rotations, atol=1e-4) and torch.allclose(translation, shifts, atol=1e-3)


def test_the_built_in_avatar_has_the_astronauts_hair(tmp_path):
    from avatar.morphable.default_avatar import read_default_avatar, write_default_avatar

    bundle = read_default_avatar()
    assert bundle.hair is not None and bundle.hair.faces.shape[0] > 1000
    again = read_default_avatar(write_default_avatar(bundle, tmp_path / "a.npz"))
    assert torch.allclose(again.hair.vertices, bundle.hair.vertices)
