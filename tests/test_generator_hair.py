"""Hair from text (avatar.generator.hair): parsing, the built layer measured back, generate and edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.generator.captions import split_clauses
from avatar.generator.hair import HAIR_COLOURS, HAIR_STYLES, measure_hair, parse_hair, style_hair
from avatar.generator.pipeline import face_clauses


@pytest.mark.parametrize("text, style, colour, fringe", [
    ("a woman with long red hair and light brown skin", "long", "red", None),
    ("a man with a grey bun and dark skin", "bun", "grey", None),
    ("Create an avatar of a person; the hair is short and black, and the skin is pale.", "short", "black", None),
    ("light brown skin and black hair", None, "black", None),
    ("a blonde ponytail", "ponytail", "blonde", None),
    ("a bald man with a long nose", "bald", None, None),
    ("an auburn-haired woman", None, "auburn", None),
    ("a light brown bob with a fringe", "bob", "light brown", True),
    ("curly dark brown hair", "curly", "dark brown", None),
    ("a redhead", None, "red", None),
    ("a person with a long face and light brown skin", None, None, None),  # nothing about hair
])  # fmt: skip
def test_parse_hair(text, style, colour, fringe):
    request = parse_hair(text)
    assert (request.style, request.colour, request.fringe) == (style, colour, fringe)


def test_hair_words_do_not_condition_the_face():
    assert face_clauses(split_clauses("a woman with long red hair and light brown skin")) == ["a woman", "light brown skin"]
    assert face_clauses(split_clauses("a man with a grey bun")) == []
    assert face_clauses(split_clauses("a person with a very long face")) == ["a person", "very long face"]


@pytest.fixture(scope="module")
def head_and_rest():
    from avatar.morphable.head import load_head

    head = load_head("auto")
    with torch.no_grad():
        rest = head.rest_vertices(torch.zeros(1, head.geo_dim))[0].numpy()
    return head, rest


def test_every_style_and_colour_is_measured_back(head_and_rest):
    head, rest = head_and_rest
    colours = list(HAIR_COLOURS)
    for k, style in enumerate(HAIR_STYLES):
        colour = colours[k % len(colours)]
        layer = style_hair(head, rest, style, colour, fringe=(style == "bob"), rng=np.random.default_rng(k))
        measured = measure_hair(layer, head, rest)
        assert measured["style"] == style, (style, measured)
        if style == "bald":
            assert layer is None
            continue
        assert measured["colour"] == colour and measured["fringe"] == (style == "bob")
        assert np.isfinite(layer.vertices.numpy()).all() and int(layer.faces.max()) < layer.vertices.shape[0]
    for colour in colours[len(HAIR_STYLES):]:
        assert measure_hair(style_hair(head, rest, "short", colour), head, rest)["colour"] == colour


def test_generate_and_edit_make_the_asked_hair():
    from avatar.generator.bundles import edit_bundle, generate_bundles

    out = generate_bundles("a woman with a grey bun and dark skin", n=1, seed=1, with_preview=False)
    bundle, report = out.bundles[0], out.reports[0]
    assert bundle.hair is not None and report["hair"]["measured"]["style"] == "bun"
    checks = {c["attribute"]: c["satisfied"] for c in report["requested"]}
    assert checks["hair_style"] and checks["hair_colour"] and "skin_tone" in checks
    assert not any("(hair)" in w for w in out.warnings)  # hair is modelled now, not reported as ignored
    bald = generate_bundles("a bald man", n=1, seed=1, with_preview=False)
    assert bald.bundles[0].hair is None  # a bald request stays bald
    edited = edit_bundle(bundle, "long red hair", with_preview=False)
    assert torch.equal(edited.z_geo, bundle.z_geo) and torch.equal(edited.vertices, bundle.vertices)  # hair-only edit
    assert edited.report["hair"]["measured"]["style"] == "long" and edited.report["hair"]["colour"] == "red"
    recoloured = edit_bundle(bundle, "white hair", with_preview=False)
    assert recoloured.report["hair"]["style"] == "bun" and recoloured.report["hair"]["colour"] == "white"  # style kept
    assert torch.equal(recoloured.hair.vertices, bundle.hair.vertices)  # a new colour keeps the layer's shape
    assert recoloured.report["hair"]["measured"]["colour"] == "white"


def test_generated_hair_with_a_bun_round_trips_into_a_valid_glb(tmp_path):
    import pygltflib

    from avatar.core.bundle import read_bundle, write_bundle
    from avatar.generator.bundles import generate_bundles
    from tests.test_export_gltf import assert_valid

    bundle = generate_bundles("a grey bun", n=1, seed=4, with_preview=False).bundles[0]
    folder = write_bundle(tmp_path / "g.avatar", bundle)
    back = read_bundle(folder)
    assert torch.allclose(back.hair.vertices, bundle.hair.vertices) and torch.equal(back.hair.faces, bundle.hair.faces)
    gltf = pygltflib.GLTF2().load(str(folder / "mesh.glb"))
    assert [n.name for n in gltf.nodes] == ["neck", "head", "hair"]
    assert_valid(folder / "mesh.glb")
