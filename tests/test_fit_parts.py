"""Building blocks of the fitter checked on hand-made cases: UV atlas, camera, optimiser, lighting,
texture fill, the NoW-style metric, skin masks and the face-model adapter (no MediaPipe, no shared data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import renderers as dr
from avatar.core.geometry import similarity_transform
from avatar.fitting.camera import Crop, fit_camera, intrinsics
from avatar.fitting.masks import face_skin_mask, skin_colour_mask
from avatar.fitting.optimize import Adam, pinhole, solve_lighting
from avatar.fitting.texture import pull_push
from avatar.morphable.template import load_template
from avatar.morphable.uv_atlas import (
    ATLAS_REGIONS,
    FACE_REGION,
    atlas_layout,
    atlas_to_tile,
    mirror_face_uv,
    region_of_part,
    tile_to_atlas,
)
from research.fitting.metrics import now_errors


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def layout(template):
    return atlas_layout(template.faces, template.uv, template.uv_faces, template.face_parts, template.part_names)


def test_atlas_puts_every_part_in_its_own_region(template, layout):
    assert layout.uv.min() >= 0 and layout.uv.max() <= 1
    for part_id, name in enumerate(template.part_names):
        u0, v0, u1, v1 = region_of_part(name).box
        corners = layout.uv[layout.uv_faces[template.face_parts == part_id]].reshape(-1, 2)
        assert (corners[:, 0] >= u0 - 1e-6).all() and (corners[:, 0] <= u1 + 1e-6).all(), name
        assert (corners[:, 1] >= v0 - 1e-6).all() and (corners[:, 1] <= v1 + 1e-6).all(), name
    # each atlas uv keeps its triangle corner's vertex
    assert np.array_equal(layout.uv_vertex_ids[layout.uv_faces], template.faces)


def test_regions_do_not_overlap_except_shared_overlays():
    boxes = {tuple(r.box) for r in ATLAS_REGIONS}
    boxes = sorted(boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_u = min(a[2], b[2]) - max(a[0], b[0])
            overlap_v = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_u <= 1e-9 or overlap_v <= 1e-9, (a, b)


def test_tile_mapping_round_trip_and_face_mirror(template, layout):
    uv = np.random.default_rng(0).random((50, 2)).astype(np.float32)
    for region in ATLAS_REGIONS:
        tile = uv * np.array([region.tile_u[1] - region.tile_u[0], 1]) + np.array([region.tile_u[0], 0])
        assert np.allclose(atlas_to_tile(tile_to_atlas(tile, region), region), tile, atol=1e-5)
    # the face tile is symmetric: the mirror of every face atlas uv is (nearly) another face atlas uv
    face = layout.uv[np.unique(layout.uv_faces[template.face_parts == template.part_names.index("M_Face")])]
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(face).query(mirror_face_uv(face))
    assert np.median(distance) < 1e-5
    assert FACE_REGION.box[2] - FACE_REGION.box[0] == pytest.approx(0.75)


def test_pinhole_matches_renderers_camera():
    torch.manual_seed(0)
    points = torch.randn(1, 20, 3) * 5
    rotation = torch.tensor([[0.1, -0.3, 0.05]])
    pivot = torch.tensor([0.0, 3.7, -0.5])
    translation = torch.tensor([[1.0, -2.0, 60.0]])
    focal = torch.tensor([900.0])
    principal = (320.0, 240.0)
    ours = pinhole(points, rotation, pivot, translation, focal, principal)
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    posed = (points - pivot) @ axis_angle_to_rotation_matrix(rotation)[0].T + pivot
    theirs = fit_camera(focal, translation, principal, (480, 640)).project(posed)
    assert torch.allclose(ours, theirs, atol=1e-3)


def test_crop_intrinsics_agree_with_photo_projection():
    focal, translation = torch.tensor([800.0]), torch.tensor([[0.5, 1.0, 50.0]])
    crop = Crop(100.0, 80.0, 0.5, 128)
    points = torch.randn(1, 10, 3)
    photo_px = fit_camera(focal, translation, (320, 240), (480, 640)).project(points)
    crop_px = fit_camera(focal, translation, (320, 240), (480, 640), crop).project(points)
    assert torch.allclose(crop.to_photo(crop_px), photo_px, atol=1e-3)
    assert torch.allclose(crop.from_photo(photo_px), crop_px, atol=1e-3)
    assert intrinsics(focal, (320, 240), crop)[0, 0, 0] == pytest.approx(400.0)


def test_adam_minimises_a_quadratic():
    x = torch.tensor([3.0, -2.0], requires_grad=True)
    optimiser = Adam({"x": (x, 0.1)})
    for _ in range(300):
        optimiser.zero_grad()
        ((x - torch.tensor([1.0, 0.5])) ** 2).sum().backward()
        optimiser.step()
    assert torch.allclose(x.detach(), torch.tensor([1.0, 0.5]), atol=1e-2)


def test_solve_lighting_recovers_sh_and_albedo():
    torch.manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(4000, 3) + torch.tensor([0.0, 0.0, 1.5]), dim=-1)
    sh = torch.zeros(9)
    sh[0] = 1 / dr.lighting.SH_BASIS_CONSTANTS[0]
    sh[1:] = torch.tensor([0.3, 0.5, -0.2, 0.05, 0.1, -0.1, 0.02, 0.08])
    albedo = torch.tensor([0.7, 0.5, 0.4])
    shade = dr.sh_shade(normals[None], sh.reshape(1, 9, 1))[0]
    photo = albedo * shade
    found_sh, found_albedo = solve_lighting(photo, normals, None, iterations=20, ridge=1e-6)
    assert torch.allclose(found_albedo, albedo, atol=0.02)
    assert torch.allclose(found_sh[1:4], sh[1:4], atol=0.05)


def test_pull_push_fills_holes_and_keeps_known_values():
    values = torch.zeros(32, 32, 3)
    values[:, :16] = torch.tensor([1.0, 0.0, 0.0])
    values[:, 16:] = torch.tensor([0.0, 0.0, 1.0])
    weight = torch.ones(32, 32)
    weight[8:24, 8:24] = 0  # a hole across the colour edge
    filled = pull_push(values * weight[..., None], weight)
    assert torch.allclose(filled[weight == 1], values[weight == 1])
    assert filled[16, 9, 0] > filled[16, 9, 2]  # left of the hole stays red-ish
    assert filled[16, 22, 2] > filled[16, 22, 0]  # right stays blue-ish
    assert torch.isfinite(filled).all()


def test_now_metric_is_zero_for_similar_shapes_and_grows_with_error(template):
    skin = template.faces[template.part_face_mask(("M_Face",))]
    gt = template.neutral.astype(np.float64)
    angle = 0.3
    rotation = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    moved = 1.1 * gt @ rotation.T + np.array([2.0, -1.0, 5.0])
    errors = now_errors(moved, gt, skin, template.landmarks_68, icp_iterations=3, count=3000)
    assert np.median(errors) < 0.01  # mm: the similarity alignment undoes scale, rotation, translation
    bumped = gt.copy()
    bumped[:, 2] += 0.1 * np.exp(-((gt[:, 0] / 3) ** 2 + ((gt[:, 1] - 2) / 3) ** 2))  # 1 mm bump on the face
    errors = now_errors(bumped, gt, skin, template.landmarks_68, icp_iterations=3, count=3000)
    assert 0.05 < np.median(errors) < 1.0


def test_similarity_recovers_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    dst = 2.5 * src @ q.T + np.array([1.0, 2.0, 3.0])
    r, s, t = similarity_transform(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(r, q) and np.allclose(t, [1, 2, 3])


def test_skin_colour_mask_drops_hair_coloured_pixels():
    image = np.zeros((64, 64, 3), np.float32)
    image[:] = (0.8, 0.6, 0.5)  # skin
    image[:, :8] = (0.1, 0.08, 0.06)  # dark hair strip
    image[:, 56:] = (0.3, 0.5, 0.9)  # blue background
    image[:, 20:40] *= np.linspace(0.6, 1.2, 20)[None, :, None]  # shading keeps the chromaticity
    region = np.ones((64, 64))
    mask = skin_colour_mask(image, region)
    assert mask[:, :8].max() == 0 and mask[:, 56:].max() == 0 and mask[:, 10:50].min() == 1


def test_face_skin_mask_covers_the_face_but_not_the_eyes():
    from avatar.morphable.landmarks import IRIS_LEFT, load_landmark_map  # noqa: F401

    template = load_template()
    landmark_map = load_landmark_map()
    points3 = landmark_map.interpolate(torch.from_numpy(np.array(template.neutral))).numpy()
    pixels = np.stack([128 + points3[:, 0] * 8, 128 - points3[:, 1] * 8], 1)  # frontal orthographic, 8 px/cm
    mask = face_skin_mask(pixels, (256, 256))
    iris = pixels[IRIS_LEFT[0]].round().astype(int)
    cheek = ((pixels[205] + pixels[425]) / 2).round().astype(int)  # between the cheeks: the nose
    assert mask[iris[1], iris[0]] == 0
    assert mask[cheek[1], cheek[0]] == 1
    assert 0.05 < mask.mean() < 0.6


def test_face_model_bases_match_template_mode(template):
    """The adapter's explicit bases reproduce the implicit model's template mode exactly."""
    from avatar.morphable.api import FaceModel
    from avatar.morphable.head import face_model_bases
    from avatar.morphable.io import build_model
    from avatar.morphable.texture import TextureDecoder

    config = {"box_min": [-15.0, -22.0, -12.0], "box_max": [15.0, 17.0, 16.0], "canonical_levels": [[8, 1, None]],
              "deform_levels": [[8, 4, None], [16, 4, None]], "hidden": [16], "basis": 8, "geo_dim": 6, "expr_dim": 53}
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        model.deform.head.normal_(0, 0.05)
        model.deform.head_bias.normal_(0, 0.05)
    face_model = FaceModel(model.eval(), TextureDecoder(12, 16, 2), template, {})
    rest, bases = face_model_bases(face_model)
    z = torch.randn(2, 6)
    w = torch.rand(2, 53)
    direct = face_model.template_vertices(z, w)
    linear = rest + torch.einsum("bk,kvd->bvd", torch.cat([z, w], 1), bases)
    assert torch.allclose(direct, linear, atol=1e-4)


def test_skin_model_albedo_prior_keeps_geometry_and_saturates():
    """The fitter's albedo prior is the bounded parametric skin model; geometry and atlas are unchanged."""
    from avatar.fitting.optimize import FitConfig
    from avatar.morphable.head import load_head, with_skin_model_albedo

    head = load_head("face_model")
    skin = with_skin_model_albedo(head)
    assert FitConfig().albedo_prior == "skin_model"
    assert skin.mean is head.mean and skin.identity_basis is head.identity_basis and skin.atlas is head.atlas
    assert skin.tex_dim == head.tex_dim == 12
    assert "albedo_prior" in skin.info and "albedo_prior" not in head.info
    z = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        near, far = skin.albedo(z, 64, face_only=True), skin.albedo(8 * z, 64, face_only=True)
        learned = head.albedo(z, 64, face_only=True)
    face = near.abs().sum(-1) > 0
    # the learned decoder reproduces the skin model for codes from its training distribution ...
    assert (near - learned)[face].abs().mean() < 0.03
    # ... and the skin model stays a plausible albedo far outside it
    assert float(far[face].min()) >= 0.0 and float(far[face].max()) <= 0.8


def test_import_mediapipe_defers_pyplot_until_used():
    """MediaPipe imports without matplotlib; its plotting helper still gets the real pyplot on first use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from avatar.core.mediapipe_import import import_mediapipe\n"
        "mp = import_mediapipe()\n"
        "assert 'matplotlib' not in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
        "assert mp.solutions.face_mesh.FaceMesh is not None\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "figure = drawing_utils.plt.figure\n"
        "import matplotlib.pyplot as plt\n"
        "assert figure is plt.figure and type(sys.modules['matplotlib.pyplot']).__name__ == 'module'\n"
        "assert import_mediapipe() is mp\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_feature_tolerance_penalises_only_feature_drift_beyond_it():
    """The photometric stage's landmark tolerance: free within it, quadratic beyond, tighter on the features."""
    from avatar.fitting.optimize import LandmarkTargets, _tolerance_penalty

    points = torch.rand(10, 2) * 100
    feature = torch.tensor([1.0] * 4 + [0.0] * 6)
    targets = LandmarkTargets(points, torch.zeros(10), torch.ones(10), 140.0, 50.0, feature)
    off_contour = points.clone()
    off_contour[4:] += torch.tensor([1.5, 0.0])  # 3 % of the eye distance, on the contour only
    off_feature = points.clone()
    off_feature[:4] += torch.tensor([1.5, 0.0])
    assert float(_tolerance_penalty(off_contour[None], targets, 0.05, 0.02)) == 0.0
    assert float(_tolerance_penalty(off_feature[None], targets, 0.05, None)) == 0.0
    assert float(_tolerance_penalty(off_feature[None], targets, 0.05, 0.02)) == pytest.approx(0.01**2, rel=1e-3)


def test_head_silhouette_iou_compares_above_the_chin_around_the_face():
    from avatar.fitting.preview import head_silhouette_iou

    alpha = np.zeros((100, 100), np.uint8)
    person = np.zeros((100, 100), np.float32)
    alpha[30:80, 40:60] = 255  # the rendered head and neck
    person[20:100, 35:65] = 1.0  # the person with hair above and shoulders below
    box, chin = (40.0, 40.0, 60.0, 70.0), 70.0
    # above the chin: head 40 rows x 20 = 800 px inside a person region of 50 x 30 = 1500 px
    assert head_silhouette_iou(alpha, person, box, chin) == pytest.approx(800 / 1500)
    assert head_silhouette_iou(alpha, alpha / 255.0, box, chin) == pytest.approx(1.0)
    far = np.zeros_like(person)
    far[:, 90:] = 1.0  # someone else beside the region does not count
    assert head_silhouette_iou(alpha, np.maximum(alpha / 255.0, far), box, chin) == pytest.approx(1.0)


@pytest.mark.parametrize("melanin_code, low, high", [(-2.0, -3.0, -0.3), (2.0, 1.5, 4.0)])
def test_fit_finds_the_skin_tone_of_light_and_dark_faces(melanin_code, low, high):
    """The lighting stage picks the melanin code before the photometric fit (dark faces used to start mid-tone).

    The code is not recoverable exactly (the scene's light level trades against it), but light and dark faces land
    on their own side of the range (measured: −0.5…−0.8 and 3.1–3.2; a mid-tone face 0.5)."""
    from avatar.fitting.pipeline import fit_photo
    from avatar.morphable.head import load_head
    from research.fitting.synthetic import render_synthetic

    head = load_head("auto")
    z_tex = torch.zeros(1, 12)
    z_tex[0, 0] = melanin_code
    photo = render_synthetic(head, np.random.default_rng(5), z_tex=z_tex, max_yaw_deg=10.0)
    fitted = fit_photo(photo.image, quality="fast", head=head, with_preview=False)
    assert low < float(fitted.fit.state.z_tex[0, 0]) < high
