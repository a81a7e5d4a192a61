import numpy as np
import pytest
import torch

from renderers._validate import RenderInputError
from renderers.camera import Camera
from renderers.lighting import ambient_sh, default_sh
from renderers.mesh import render_mesh, to_uint8_image, vertex_normals

UP = torch.tensor([[0.0, 1.0, 0.0]])


def _quad(size: float = 1.0):
    """A square in the z = 0 plane facing +z, with uv (OBJ convention, v up) spanning [0, 1]²."""
    verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * size
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    uv = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    return verts, faces, uv, faces.clone()


def _cube():
    corners = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    faces = torch.tensor(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=torch.int32
    )
    return corners, faces


def _ortho(size=(64, 64), eye=(0.0, 0.0, 10.0)):
    return Camera.orthographic(torch.tensor([eye]), torch.zeros(1, 3), UP, view_height=4.0, image_size=size,
                               near=1.0, far=20.0)


def test_quad_covers_expected_pixels_orthographic():
    verts, faces, uv, uv_faces = _quad()
    out = render_mesh(verts, faces, uv, uv_faces, None, _ortho(), light=None, antialias=False)
    assert out.rgba.shape == (1, 64, 64, 4) and out.depth.shape == (1, 64, 64, 1)
    assert out.normals.shape == (1, 64, 64, 3) and out.mask.shape == (1, 64, 64, 1)
    expected = torch.zeros(64, 64)
    expected[16:48, 16:48] = 1  # pixel centres (j + 0.5) · 4/64 − 2 inside (−1, 1)
    torch.testing.assert_close(out.mask[0, ..., 0], expected)
    torch.testing.assert_close(out.depth[0, ..., 0], expected * 10.0)
    torch.testing.assert_close(out.normals[0][expected > 0], torch.tensor([0.0, 0.0, 1.0]).expand(32 * 32, 3))
    torch.testing.assert_close(out.rgba[0, ..., :3][expected > 0], torch.full((32 * 32, 3), 0.7))
    torch.testing.assert_close(out.rgba[0, ..., 3], expected)


def test_row_zero_is_the_top_and_texture_orientation():
    # Only the upper half of the quad: the mask must sit in the upper rows.
    verts, faces, uv, uv_faces = _quad()
    upper = verts.clone()
    upper[:, 1] = upper[:, 1].clamp_min(0)
    out = render_mesh(upper, faces, uv, uv_faces, None, _ortho(), antialias=False)
    rows = out.mask[0, ..., 0].sum(dim=1)
    assert rows[:32].sum() > 0 and rows[32:].sum() == 0
    # Texture image: top half red, bottom half blue (row 0 = top). uv v = 1 is the quad's top edge.
    texture = torch.zeros(8, 8, 3)
    texture[:4, :, 0] = 1
    texture[4:, :, 2] = 1
    # Left half green marker in the top half only: tells u orientation too.
    texture[:4, :4] = torch.tensor([0.0, 1.0, 0.0])
    out = render_mesh(verts, faces, uv, uv_faces, texture, _ortho(), antialias=False)
    rgb = out.rgba[0, ..., :3]
    torch.testing.assert_close(rgb[20, 40], torch.tensor([1.0, 0.0, 0.0]))  # upper right: red
    torch.testing.assert_close(rgb[20, 20], torch.tensor([0.0, 1.0, 0.0]))  # upper left: green
    torch.testing.assert_close(rgb[44, 30], torch.tensor([0.0, 0.0, 1.0]))  # lower: blue


def test_perspective_quad_matches_projected_corners():
    verts, faces, uv, uv_faces = _quad()
    cam = Camera.look_at(torch.tensor([[0.3, 0.2, 4.0]]), torch.zeros(1, 3), UP, fov_y_deg=50.0, image_size=(48, 64))
    out = render_mesh(verts, faces, uv, uv_faces, None, cam, antialias=False)
    corners = cam.project(verts)[0]  # pixel coordinates, y down
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    points = torch.stack([xs, ys], dim=-1)
    inside = torch.ones(48, 64, dtype=torch.bool)
    signed = []
    for i in range(4):  # convex polygon test
        a, b = corners[i], corners[(i + 1) % 4]
        edge = (b[0] - a[0]) * (points[..., 1] - a[1]) - (b[1] - a[1]) * (points[..., 0] - a[0])
        signed.append(edge)
    signed = torch.stack(signed)
    inside = (signed > 0).all(0) | (signed < 0).all(0)
    margin = signed.abs().amin(0) / 64  # stay away from pixels whose centre sits on an edge
    certain = margin > 0.05
    assert inside.sum() > 200
    assert torch.equal(out.mask[0, ..., 0].bool()[certain], inside[certain])
    # Depth is the view-space distance along the axis: between the nearest and farthest corner depth.
    depth = out.depth[0, ..., 0][inside & certain]
    corner_depth = cam.depth(verts)[0]
    assert depth.min() >= corner_depth.min() - 1e-4 and depth.max() <= corner_depth.max() + 1e-4


def test_cube_depth_and_normals():
    verts, faces = _cube()
    cam = Camera.look_at(torch.tensor([[0.0, 0.0, 6.0]]), torch.zeros(1, 3), UP, fov_y_deg=40.0, image_size=(32, 32))
    out = render_mesh(verts, faces, None, None, None, cam, light=ambient_sh(1.0))
    center = out.depth[0, 16, 16, 0]
    torch.testing.assert_close(center, torch.tensor(5.0), atol=1e-4, rtol=0)  # front face at z = 1
    covered = out.mask[0, ..., 0] > 0
    torch.testing.assert_close(out.normals[0][covered].norm(dim=-1), torch.ones(int(covered.sum())))
    assert torch.all(out.normals[0, 12:20, 12:20, 2] > 0.8)  # the front face's normals lean towards the camera
    # Vertex normals: area-weighted face normals summed per vertex (loop reference); they point outwards.
    normals = vertex_normals(verts[None], faces)[0]
    expected = torch.zeros(8, 3)
    for a, b, c in faces.tolist():
        face_normal = torch.linalg.cross(verts[b] - verts[a], verts[c] - verts[a], dim=-1)
        for corner in (a, b, c):
            expected[corner] += face_normal
    torch.testing.assert_close(normals, torch.nn.functional.normalize(expected, dim=-1))
    assert torch.all((normals * verts).sum(-1) > 0.5)


def test_gradients_reach_verts_texture_and_light():
    verts, faces, uv, uv_faces = _quad(0.8)
    verts = verts.clone().requires_grad_()
    texture = torch.rand(1, 16, 16, 3, requires_grad=True)
    light = default_sh(1).requires_grad_()
    cam = Camera.look_at(torch.tensor([[0.4, 0.3, 4.0]]), torch.zeros(1, 3), UP, fov_y_deg=40.0, image_size=(40, 40))
    out = render_mesh(verts, faces, uv, uv_faces, texture, cam, light=light)
    weights = torch.rand(out.rgba.shape)
    (out.rgba * weights).sum().backward()
    for tensor in (verts, texture, light):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    assert torch.all(verts.grad.abs().sum(-1) > 0)  # every corner moves the silhouette (antialias)

    # The colour is linear in the SH coefficients: the gradient equals a finite difference exactly.
    direction = torch.randn_like(light)
    with torch.no_grad():
        plus = render_mesh(verts, faces, uv, uv_faces, texture, cam, light=light + 1e-2 * direction).rgba
        minus = render_mesh(verts, faces, uv, uv_faces, texture, cam, light=light - 1e-2 * direction).rgba
    numeric = ((plus - minus) * weights).sum() / 2e-2
    torch.testing.assert_close((light.grad * direction).sum(), numeric, rtol=1e-3, atol=1e-3)


def test_depth_gradient_wrt_translation():
    # Sliding the quad towards the camera by δ lowers every covered pixel's depth by δ.
    verts, faces, uv, uv_faces = _quad()
    shift = torch.zeros(1, 1, 3, requires_grad=True)
    cam = Camera.look_at(torch.tensor([[0.2, 0.1, 5.0]]), torch.zeros(1, 3), UP, fov_y_deg=45.0, image_size=(32, 32))
    out = render_mesh(verts[None] + shift, faces, None, None, None, cam, antialias=False)
    out.depth.sum().backward()
    forward = torch.nn.functional.normalize(-cam.position, dim=-1)[0]  # camera → target
    torch.testing.assert_close((shift.grad[0, 0] * forward).sum(), out.mask.sum(), rtol=1e-4, atol=1e-3)


def test_batch_of_two_matches_single_renders():
    verts, faces, uv, uv_faces = _quad()
    eyes = torch.tensor([[0.0, 0.0, 5.0], [1.5, 0.5, 4.0]])
    cams = Camera.look_at(eyes, torch.zeros(2, 3), UP.expand(2, 3), fov_y_deg=45.0, image_size=(24, 32))
    textures = torch.rand(2, 8, 8, 3)
    verts2 = torch.stack([verts, verts * 0.9])
    out = render_mesh(verts2, faces, uv, uv_faces, textures, cams, light=default_sh(2))
    assert out.rgba.shape == (2, 24, 32, 4)
    for i in range(2):
        single = render_mesh(verts2[i], faces, uv, uv_faces, textures[i], cams[i], light=default_sh(1))
        for a, b in zip(out, single):
            torch.testing.assert_close(a[i : i + 1], b)
    assert not torch.equal(out.mask[0], out.mask[1])
    # One mesh, two cameras: the mesh is broadcast.
    assert render_mesh(verts, faces, uv, uv_faces, textures[0], cams).rgba.shape == (2, 24, 32, 4)


def test_to_uint8_image():
    rgba = torch.zeros(2, 4, 5, 4)
    rgba[:, 1, 1] = torch.tensor([0.25, 0.5, 0.0, 0.5])  # premultiplied: straight colour (0.5, 1, 0)
    image = to_uint8_image(rgba)
    assert image.dtype == np.uint8 and image.shape == (2, 4, 5, 4)
    assert tuple(image[0, 1, 1]) == (128, 255, 0, 128)
    over_white = to_uint8_image(rgba[0], background=(1.0, 1.0, 1.0))
    assert over_white.shape == (4, 5, 3) and tuple(over_white[1, 1]) == (191, 255, 128)
    assert tuple(over_white[0, 0]) == (255, 255, 255)


def test_bad_input():
    verts, faces, uv, uv_faces = _quad()
    cam = _ortho((8, 8))
    with pytest.raises(RenderInputError):
        render_mesh(verts, faces, None, None, torch.rand(4, 4, 3), cam)  # texture without uv
    with pytest.raises(RenderInputError):
        render_mesh(verts, faces, uv, uv_faces[:1], torch.rand(4, 4, 3), cam)  # uv_faces count differs
    with pytest.raises(RenderInputError):
        render_mesh(verts, faces + 5, None, None, None, cam)  # out of range
    with pytest.raises(RenderInputError):
        render_mesh(verts, faces.float(), None, None, None, cam)
    with pytest.raises(RenderInputError):
        render_mesh(verts, faces, None, None, None, cam, light=torch.zeros(1, 4, 3))
    with pytest.raises(RenderInputError):
        render_mesh(torch.stack([verts] * 3), faces, None, None, None,
                    Camera(cam.view.expand(2, 4, 4), cam.projection, cam.image_size))


def test_cpu_and_torch_backends_agree():
    verts, faces = _cube()
    rotation = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.5], [0.3, 0.0, -0.2], [-0.5, 0.2, 0.0]]))
    verts = verts @ rotation.T
    uv = torch.rand(8, 2)
    cam = Camera.look_at(torch.tensor([[0.5, 1.0, 6.0]]), torch.zeros(1, 3), UP, fov_y_deg=40.0, image_size=(24, 28))
    texture = torch.rand(16, 16, 3)
    outputs = [render_mesh(verts, faces, uv, faces, texture, cam, default_sh(), backend=b) for b in ("cpu", "torch")]
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_render_template_script_writes_pngs(tmp_path):
    import importlib.util

    from avatar.core.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("render_template", REPO_ROOT / "scripts" / "render_template.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out-dir", str(tmp_path), "--size", "64"])
    from PIL import Image

    for name in ("template_shaded.png", "template_uv_checker.png"):
        image = np.asarray(Image.open(tmp_path / name))
        assert image.shape == (64, 64, 3)
        covered = (image < 250).any(-1)
        rows = np.nonzero(covered.any(1))[0]
        assert 0.7 < (rows.max() - rows.min() + 1) / 64 < 0.9  # the head fills ~80 % of the height
    from avatar.core.errors import AvatarInputError

    with pytest.raises(AvatarInputError):  # never overwrites without --force
        script.main(["--out-dir", str(tmp_path), "--size", "64"])
    checker = script.uv_checker_texture(64, cells=4)
    assert checker.shape == (64, 64, 3) and float(checker.min()) >= 0 and float(checker.max()) <= 1
