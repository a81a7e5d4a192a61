
import pytest
import torch
from kornia.geometry.camera import PinholeCamera
from kornia.geometry.conversions import camtoworld_vision_to_graphics_4x4

from renderers._validate import RenderInputError
from renderers.camera import Camera, frame_points


def _intrinsics(batch: int = 2) -> torch.Tensor:
    K = torch.zeros(batch, 3, 3)
    K[:, 0, 0] = torch.tensor([500.0, 620.0])[:batch]
    K[:, 1, 1] = torch.tensor([510.0, 600.0])[:batch]
    K[:, 0, 2] = torch.tensor([256.0, 300.5])[:batch]
    K[:, 1, 2] = torch.tensor([250.0, 200.25])[:batch]
    K[:, 2, 2] = 1
    return K


def _extrinsics_cv(batch: int = 2) -> torch.Tensor:
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    axis_angle = torch.tensor([[0.1, -0.3, 0.05], [-0.2, 0.4, 0.1]])[:batch]
    E = torch.eye(4).repeat(batch, 1, 1)
    E[:, :3, :3] = axis_angle_to_rotation_matrix(axis_angle)
    E[:, :3, 3] = torch.tensor([[0.1, -0.2, 8.0], [0.3, 0.1, 12.0]])[:batch]
    return E


def test_intrinsics_round_trip():
    K = _intrinsics()
    cam = Camera.from_intrinsics(K, _extrinsics_cv(), image_size=(480, 640), near=0.5, far=100.0)
    assert cam.view.shape == (2, 4, 4) and cam.projection.shape == (2, 4, 4)
    torch.testing.assert_close(cam.intrinsics(), K)
    torch.testing.assert_close(cam.world_to_camera_cv(), _extrinsics_cv())


def test_project_matches_kornia_pinhole():
    K, E = _intrinsics(), _extrinsics_cv()
    size = (480, 640)
    cam = Camera.from_intrinsics(K, E, image_size=size, near=0.5, far=100.0)
    points = torch.randn(2, 50, 3)
    K4 = torch.eye(4).repeat(2, 1, 1)
    K4[:, :3, :3] = K
    h, w = torch.full((2,), float(size[0])), torch.full((2,), float(size[1]))
    pinhole = PinholeCamera(K4, E, h, w)
    expected = pinhole.project(points)
    torch.testing.assert_close(cam.project(points), expected, atol=1e-3, rtol=1e-5)
    depth_cv = (points @ E[:, :3, :3].transpose(1, 2) + E[:, None, :3, 3])[..., 2]
    torch.testing.assert_close(cam.depth(points), depth_cv, atol=1e-5, rtol=1e-5)


def test_view_matches_kornia_graphics_convention():
    E = _extrinsics_cv()
    cam = Camera.from_intrinsics(_intrinsics(), E, image_size=(64, 64))
    cam_to_world_gl = camtoworld_vision_to_graphics_4x4(torch.linalg.inv(E))
    torch.testing.assert_close(cam.camera_to_world, cam_to_world_gl, atol=1e-5, rtol=1e-5)


def test_clip_space_ndc_and_depth_range():
    cam = Camera.from_intrinsics(_intrinsics(1), torch.eye(4)[None], image_size=(480, 640), near=1.0, far=10.0)
    # Points on the optical axis (OpenCV +z) at near and far land on z/w = -1 and +1.
    clip = cam.to_clip(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 10.0]]]))
    ndc_z = clip[..., 2] / clip[..., 3]
    torch.testing.assert_close(ndc_z, torch.tensor([[-1.0, 1.0]]))
    torch.testing.assert_close(clip[..., 3], torch.tensor([[1.0, 10.0]]))


def test_project_point_at_known_place():
    # fov 90°, 100 × 200 image: focal = 50 px. A point 1 right, 0.5 up, 2 in front of the camera.
    cam = Camera.look_at(torch.tensor([[0.0, 0, 5]]), torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]),
                         fov_y_deg=90.0, image_size=(100, 200))
    pixel = cam.project(torch.tensor([[[1.0, 0.5, 3.0]]]))
    torch.testing.assert_close(pixel, torch.tensor([[[100 + 50 * 0.5, 50 - 50 * 0.25]]]))
    torch.testing.assert_close(cam.depth(torch.tensor([[[1.0, 0.5, 3.0]]])), torch.tensor([[2.0]]))
    torch.testing.assert_close(cam.position, torch.tensor([[0.0, 0.0, 5.0]]))
    K = cam.intrinsics()[0]
    torch.testing.assert_close(K, torch.tensor([[50.0, 0, 100], [0, 50, 50], [0, 0, 1]]))


def test_look_at_orientation():
    eye, target, up = torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[0.0, 1.0, -1.0]]), torch.tensor([[0.0, 1.0, 0]])
    cam = Camera.look_at(eye, target, up, fov_y_deg=40.0, image_size=(32, 48))
    rotation = cam.view[0, :3, :3]
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(rotation) > 0
    forward = torch.nn.functional.normalize(target - eye, dim=-1)[0]
    torch.testing.assert_close(rotation @ forward, torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    # The target lands in the image centre; a point above it lands above (smaller row).
    pixels = cam.project(torch.cat([target, target + up])[None])
    torch.testing.assert_close(pixels[0, 0], torch.tensor([24.0, 16.0]))
    assert pixels[0, 1, 1] < 16.0
    # A point to the camera's right lands right of the centre.
    right = torch.linalg.cross(forward, up[0], dim=-1)
    assert cam.project((target + 0.1 * right)[None])[0, 0, 0] > 24.0


def test_orthographic():
    cam = Camera.orthographic(torch.tensor([[0.0, 0, 10]]), torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]),
                              view_height=4.0, image_size=(100, 200), near=1.0, far=20.0)
    assert bool(cam.is_orthographic.all())
    points = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 1.0, 5.0]]])  # same pixel at any depth
    pixels = cam.project(points)
    torch.testing.assert_close(pixels, torch.tensor([[[125.0, 25.0], [125.0, 25.0]]]))
    assert torch.all(cam.to_clip(points)[..., 3] == 1)
    with pytest.raises(RenderInputError):
        cam.intrinsics()


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_shapes(batch):
    eye = torch.randn(batch, 3) + torch.tensor([0.0, 0.0, 6.0])
    cam = Camera.look_at(eye, torch.zeros(batch, 3), torch.tensor([[0.0, 1, 0]]).expand(batch, 3),
                         fov_y_deg=torch.full((batch,), 30.0), image_size=(16, 24))
    assert cam.batch_size == batch
    points = torch.randn(batch, 7, 3)
    assert cam.to_clip(points).shape == (batch, 7, 4)
    assert cam.project(points).shape == (batch, 7, 2)
    assert cam.depth(points).shape == (batch, 7)
    assert cam.to_clip(torch.randn(7, 3)).shape == (batch, 7, 4)
    assert cam.intrinsics().shape == (batch, 3, 3)
    assert cam[0].batch_size == 1


def test_bad_input():
    with pytest.raises(RenderInputError):
        Camera.look_at(torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]), torch.tensor([[0.0, 1, 0]]), fov_y_deg=30.0)
    with pytest.raises(RenderInputError):
        Camera.look_at(torch.ones(1, 3), torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]))
    with pytest.raises(RenderInputError):
        Camera.from_intrinsics(_intrinsics(1), torch.eye(4)[None], image_size=(0, 10))
    with pytest.raises(RenderInputError):
        Camera.from_intrinsics(_intrinsics(1), torch.eye(4)[None], image_size=(10, 10), near=5.0, far=1.0)
    with pytest.raises(RenderInputError):
        Camera.from_intrinsics(torch.eye(4)[None], torch.eye(4)[None], image_size=(10, 10))


def test_gradcheck_to_clip():
    K = _intrinsics(2).double().requires_grad_()
    E = _extrinsics_cv(2).double().requires_grad_()
    points = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)

    def fn(K, E, points):
        return Camera.from_intrinsics(K, E, image_size=(48, 64), near=0.5, far=50.0).to_clip(points)

    assert torch.autograd.gradcheck(fn, (K, E, points))

    eye = torch.tensor([[0.5, 0.2, 6.0]], dtype=torch.float64, requires_grad=True)
    focal = torch.tensor([70.0], dtype=torch.float64, requires_grad=True)

    def fn_look_at(eye, focal, points):
        up = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
        cam = Camera.look_at(eye, torch.zeros_like(eye), up, focal_px=focal, image_size=(48, 64))
        return cam.project(points)

    assert torch.autograd.gradcheck(fn_look_at, (eye, focal, points[:1]))


def test_frame_points_fills_image():
    torch.manual_seed(1)
    points = torch.randn(1, 500, 3) * torch.tensor([8.0, 12.0, 9.0]) + torch.tensor([1.0, 2.0, 3.0])
    for yaw in (0.0, 35.0):
        cam = frame_points(points, image_size=(256, 256), yaw_deg=yaw, fill=0.8)
        pixels = cam.project(points)[0]
        span = (pixels[:, 1].max() - pixels[:, 1].min()) / 256
        assert abs(float(span) - 0.8) < 0.01
        middle = (pixels.max(0).values + pixels.min(0).values) / 2
        torch.testing.assert_close(middle, torch.tensor([128.0, 128.0]), atol=1.5, rtol=0)
        assert torch.all(cam.depth(points) > 0)
    # yaw > 0 puts the camera on the +x side of a +z-facing object.
    assert cam.position[0, 0] > 1.0 and cam.position[0, 2] > 3.0


def test_homogeneous_helpers_equal_kornia():
    """The camera's own point conversions (kept off kornia's import for `avatar listen`) are kornia's."""
    from kornia.geometry.conversions import convert_points_from_homogeneous, convert_points_to_homogeneous

    from renderers.camera import _from_homogeneous, _to_homogeneous

    points = torch.randn(2, 7, 4, dtype=torch.float64)
    points[0, :3, 3] = torch.tensor([0.0, 1e-9, -1e-9])  # at (near) infinity: coordinates kept
    assert torch.equal(_from_homogeneous(points), convert_points_from_homogeneous(points))
    assert torch.equal(_to_homogeneous(points[..., :3]), convert_points_to_homogeneous(points[..., :3]))
