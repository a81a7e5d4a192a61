"""Perspective and orthographic cameras that map world points to nvdiffrast clip space.

Conventions (OpenGL, as nvdiffrast):

- **View space**: x right, y up, the camera looks down ``-z``. ``view`` maps world → view.
- **Clip space**: ``clip = projection @ view @ [x, y, z, 1]``; after the divide by ``w``, x, y and z lie in
  ``[-1, 1]`` for visible points (``z = -1`` at ``near``, ``+1`` at ``far``). nvdiffrast's images have row 0
  at ``y = -1`` (the bottom).
- **Pixels** (what :meth:`Camera.project` returns and what :meth:`Camera.intrinsics` describes): x right,
  y **down**, row 0 at the top, continuous coordinates in which the image spans ``[0, W] × [0, H]``, so the
  centre of pixel ``(row i, column j)`` is ``(j + 0.5, i + 0.5)`` and a centred principal point is
  ``(W / 2, H / 2)``. OpenCV calibrations put pixel centres on integers; add 0.5 to their ``cx, cy``.
- **OpenCV extrinsics** (``world_to_camera_cv``): x right, y down, z forward. The OpenGL view matrix is
  ``diag(1, -1, -1, 1) @ world_to_camera_cv``.

All maps are built from differentiable torch ops, so focal length, principal point, eye position and
extrinsics can be optimised through :meth:`Camera.to_clip` and :meth:`Camera.project`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from renderers._validate import RenderInputError

__all__ = ["Camera", "frame_points", "projection_from_intrinsics", "intrinsics_from_projection"]


# kornia's convert_points_to/from_homogeneous, the same arithmetic (tested): importing kornia would cost
# `avatar listen`, which frames its camera with project(), 0.3 s of its 5 s (docs/DECISIONS.md)
def _to_homogeneous(points: torch.Tensor) -> torch.Tensor:
    return torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)


def _from_homogeneous(points: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    w = points[..., -1:]
    far = w.abs() > eps  # a point at (near) infinity keeps its coordinates, as in OpenCV
    return torch.where(far, 1.0 / torch.where(far, w, torch.ones_like(w)), torch.ones_like(w)) * points[..., :-1]


# OpenCV camera axes (x right, y down, z forward) → OpenGL camera axes (x right, y up, z backward).
_CV_TO_GL = (1.0, -1.0, -1.0, 1.0)


def _check_image_size(image_size) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise RenderInputError(f"image_size must be (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise RenderInputError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def _batched(x: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """``x`` with a leading batch dimension added when it has exactly ``shape``; checks ``[B, *shape]``."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.float32)
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise RenderInputError(f"{name} must have shape [B, {', '.join(map(str, shape))}], got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    return x


def _per_batch(value, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or ``[B]`` value as a ``[B]`` tensor on ``like``'s device and dtype."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device) if not isinstance(value, torch.Tensor) else value
    t = t.to(like.dtype).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise RenderInputError(f"{name} must be a number or have shape [B] with B={batch}, got {tuple(t.shape)}")
    return t


def _check_depth_range(near: torch.Tensor, far: torch.Tensor) -> None:
    if not bool(torch.all(near > 0)) or not bool(torch.all(far > near)):
        raise RenderInputError("need 0 < near < far for the depth range; pass e.g. near=1, far=1000")


def _check_depth_order(near: torch.Tensor, far: torch.Tensor) -> None:
    if not bool(torch.all(far > near)):
        raise RenderInputError("need near < far for the depth range")


def projection_from_intrinsics(
    K: torch.Tensor, image_size: tuple[int, int], near: float | torch.Tensor, far: float | torch.Tensor
) -> torch.Tensor:
    """OpenGL perspective projection matrix from pixel intrinsics.

    Args:
        K: intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels (y down, pixel centres at
            integer + 0.5), shape :math:`(B, 3, 3)`.
        image_size: ``(H, W)`` in pixels.
        near: distance of the near clipping plane (> 0), a number or shape :math:`(B,)`.
        far: distance of the far clipping plane (> near), a number or shape :math:`(B,)`.

    Returns:
        the projection (view space → clip space), shape :math:`(B, 4, 4)`.

    Example:
        >>> K = torch.tensor([[[500.0, 0, 256], [0, 500, 256], [0, 0, 1]]])
        >>> projection_from_intrinsics(K, (512, 512), 1.0, 100.0).shape
        torch.Size([1, 4, 4])
    """
    K = _batched(K, (3, 3), "K")
    height, width = _check_image_size(image_size)
    batch = K.shape[0]
    near, far = _per_batch(near, batch, K, "near"), _per_batch(far, batch, K, "far")
    _check_depth_range(near, far)
    fx, skew, cx, fy, cy = K[:, 0, 0], K[:, 0, 1], K[:, 0, 2], K[:, 1, 1], K[:, 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [
        [2 * fx / width, -2 * skew / width, 1 - 2 * cx / width, zero],
        [zero, 2 * fy / height, 2 * cy / height - 1, zero],
        [zero, zero, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [zero, zero, -one, zero],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def intrinsics_from_projection(projection: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixel intrinsics of a perspective projection (inverse of :func:`projection_from_intrinsics`).

    Args:
        projection: OpenGL perspective projection, shape :math:`(B, 4, 4)`.
        image_size: ``(H, W)`` in pixels.

    Returns:
        K in pixels (y down, pixel centres at integer + 0.5), shape :math:`(B, 3, 3)`.
    """
    projection = _batched(projection, (4, 4), "projection")
    height, width = _check_image_size(image_size)
    if not bool(torch.all(projection[:, 3, 2] != 0)):
        raise RenderInputError("an orthographic projection has no pinhole intrinsics; use a perspective camera")
    P = projection
    fx, skew, cx = P[:, 0, 0] * width / 2, -P[:, 0, 1] * width / 2, (1 - P[:, 0, 2]) * width / 2
    fy, cy = P[:, 1, 1] * height / 2, (P[:, 1, 2] + 1) * height / 2
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [[fx, skew, cx], [zero, fy, cy], [zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _look_at_view(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """World → view matrix of a camera at ``eye`` looking at ``target`` (OpenGL), shape (B, 4, 4)."""
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up, dim=-1)
    if not bool(torch.all(right.norm(dim=-1) > 1e-6 * up.norm(dim=-1).clamp_min(1e-12))):
        raise RenderInputError("look_at: `up` is parallel to the viewing direction (or eye == target); pick another up")
    right = torch.nn.functional.normalize(right, dim=-1)
    true_up = torch.linalg.cross(right, forward, dim=-1)
    rotation = torch.stack([right, true_up, -forward], dim=-2)  # rows: camera axes in world coordinates
    translation = -(rotation @ eye.unsqueeze(-1))
    top = torch.cat([rotation, translation], dim=-1)
    bottom = torch.zeros_like(top[:, :1])
    bottom = torch.cat([bottom[..., :3], torch.ones_like(bottom[..., :1])], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def _cv_to_gl(like: torch.Tensor) -> torch.Tensor:
    return torch.diag(torch.tensor(_CV_TO_GL, dtype=like.dtype, device=like.device))


@dataclass
class Camera:
    """A batch of cameras: world → view → clip space (OpenGL / nvdiffrast), plus the pixel grid.

    Attributes:
        view: world → view (camera) transform, shape :math:`(B, 4, 4)`.
        projection: view → clip transform, shape :math:`(B, 4, 4)`.
        image_size: ``(H, W)`` in pixels.

    Example:
        >>> cam = Camera.look_at(torch.tensor([[0.0, 0, 5]]), torch.zeros(1, 3), torch.tensor([[0.0, 1, 0]]),
        ...                      fov_y_deg=30.0, image_size=(64, 64))
        >>> cam.project(torch.zeros(1, 1, 3))
        tensor([[[32., 32.]]])
    """

    view: torch.Tensor
    projection: torch.Tensor
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.view = _batched(self.view, (4, 4), "view")
        self.projection = _batched(self.projection, (4, 4), "projection")
        self.image_size = _check_image_size(self.image_size)
        if self.view.shape[0] != self.projection.shape[0]:
            if self.view.shape[0] == 1:
                self.view = self.view.expand(self.projection.shape[0], 4, 4)
            elif self.projection.shape[0] == 1:
                self.projection = self.projection.expand(self.view.shape[0], 4, 4)
            else:
                raise RenderInputError(
                    f"view and projection batch sizes differ: {self.view.shape[0]} vs {self.projection.shape[0]}"
                )

    # ----------------------------------------------------------------------------------------------
    # Constructors
    @classmethod
    def look_at(
        cls,
        eye: torch.Tensor,
        target: torch.Tensor,
        up: torch.Tensor,
        fov_y_deg: float | torch.Tensor | None = None,
        image_size: tuple[int, int] = (512, 512),
        near: float | torch.Tensor = 0.1,
        far: float | torch.Tensor = 1000.0,
        focal_px: float | torch.Tensor | None = None,
    ) -> Camera:
        """A perspective camera at ``eye`` looking at ``target``, square pixels, centred principal point.

        Args:
            eye: camera centres in world space, shape :math:`(B, 3)`.
            target: points the cameras look at, shape :math:`(B, 3)`.
            up: world direction that appears up in the image, shape :math:`(B, 3)`.
            fov_y_deg: vertical field of view in degrees, a number or shape :math:`(B,)`.
            image_size: ``(H, W)`` in pixels.
            near: near plane distance (> 0).
            far: far plane distance (> near).
            focal_px: focal length in pixels instead of ``fov_y_deg`` (give exactly one).

        Returns:
            the cameras.
        """
        eye = _batched(eye, (3,), "eye")
        target = _batched(target, (3,), "target").to(eye)
        up = _batched(up, (3,), "up").to(eye)
        batch = max(eye.shape[0], target.shape[0], up.shape[0])
        try:
            eye, target, up = (t.expand(batch, 3) for t in (eye, target, up))
        except RuntimeError:
            raise RenderInputError("eye, target and up must have the same batch size (or 1)") from None
        height, width = _check_image_size(image_size)
        focal = _focal_px(fov_y_deg, focal_px, height, batch, eye)
        zero, one = torch.zeros_like(focal), torch.ones_like(focal)
        K = torch.stack(
            [
                torch.stack([focal, zero, zero + width / 2], dim=-1),
                torch.stack([zero, focal, zero + height / 2], dim=-1),
                torch.stack([zero, zero, one], dim=-1),
            ],
            dim=-2,
        )
        return cls(_look_at_view(eye, target, up), projection_from_intrinsics(K, (height, width), near, far), (height, width))

    @classmethod
    def from_intrinsics(
        cls,
        K: torch.Tensor,
        world_to_camera_cv: torch.Tensor,
        image_size: tuple[int, int],
        near: float | torch.Tensor = 0.1,
        far: float | torch.Tensor = 1000.0,
    ) -> Camera:
        """A perspective camera from OpenCV-style intrinsics and extrinsics.

        Args:
            K: pixel intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (x right, y down, pixel centres at
                integer + 0.5, i.e. the image spans ``[0, W] × [0, H]``), shape :math:`(B, 3, 3)`.
            world_to_camera_cv: world → camera transform in OpenCV axes (x right, y down, z forward),
                shape :math:`(B, 4, 4)`.
            image_size: ``(H, W)`` in pixels.
            near: near plane distance (> 0).
            far: far plane distance (> near).

        Returns:
            the cameras; :meth:`intrinsics` returns ``K`` again.
        """
        K = _batched(K, (3, 3), "K")
        world_to_camera_cv = _batched(world_to_camera_cv, (4, 4), "world_to_camera_cv").to(K)
        view = _cv_to_gl(K) @ world_to_camera_cv
        return cls(view, projection_from_intrinsics(K, image_size, near, far), image_size)

    @classmethod
    def orthographic(
        cls,
        eye: torch.Tensor,
        target: torch.Tensor,
        up: torch.Tensor,
        view_height: float | torch.Tensor,
        image_size: tuple[int, int] = (512, 512),
        near: float | torch.Tensor = 0.1,
        far: float | torch.Tensor = 1000.0,
    ) -> Camera:
        """An orthographic camera at ``eye`` looking at ``target``; square pixels.

        Args:
            eye: camera positions, shape :math:`(B, 3)`.
            target: points looked at (they land in the image centre), shape :math:`(B, 3)`.
            up: world direction that appears up in the image, shape :math:`(B, 3)`.
            view_height: world-space height covered by the image, a number or shape :math:`(B,)`;
                the width is ``view_height * W / H``.
            image_size: ``(H, W)`` in pixels.
            near: near plane distance along the viewing direction (may be ≤ 0 for orthographic).
            far: far plane distance (> near).

        Returns:
            the cameras.
        """
        eye = _batched(eye, (3,), "eye")
        target = _batched(target, (3,), "target").to(eye)
        up = _batched(up, (3,), "up").to(eye)
        batch = max(eye.shape[0], target.shape[0], up.shape[0])
        eye, target, up = (t.expand(batch, 3) for t in (eye, target, up))
        height, width = _check_image_size(image_size)
        top = _per_batch(view_height, batch, eye, "view_height") / 2
        if not bool(torch.all(top > 0)):
            raise RenderInputError("view_height must be positive")
        right = top * width / height
        near, far = _per_batch(near, batch, eye, "near"), _per_batch(far, batch, eye, "far")
        _check_depth_order(near, far)
        zero, one = torch.zeros_like(top), torch.ones_like(top)
        rows = [
            [1 / right, zero, zero, zero],
            [zero, 1 / top, zero, zero],
            [zero, zero, -2 / (far - near), -(far + near) / (far - near)],
            [zero, zero, zero, one],
        ]
        projection = torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)
        return cls(_look_at_view(eye, target, up), projection, (height, width))

    # ----------------------------------------------------------------------------------------------
    # Properties
    @property
    def batch_size(self) -> int:
        return int(self.view.shape[0])

    @property
    def is_orthographic(self) -> torch.Tensor:
        """Whether each camera is orthographic, shape :math:`(B,)` bool."""
        return self.projection[:, 3, 2] == 0

    @property
    def camera_to_world(self) -> torch.Tensor:
        """View → world transform (the inverse of ``view``), shape :math:`(B, 4, 4)`."""
        return torch.linalg.inv(self.view)

    @property
    def position(self) -> torch.Tensor:
        """Camera centres in world space, shape :math:`(B, 3)`."""
        return self.camera_to_world[:, :3, 3]

    def intrinsics(self) -> torch.Tensor:
        """Pixel intrinsics K (x right, y down, pixel centres at integer + 0.5), shape :math:`(B, 3, 3)`."""
        return intrinsics_from_projection(self.projection, self.image_size)

    def world_to_camera_cv(self) -> torch.Tensor:
        """World → camera transform in OpenCV axes (x right, y down, z forward), shape :math:`(B, 4, 4)`."""
        return _cv_to_gl(self.view) @ self.view

    def to(self, *args, **kwargs) -> Camera:
        """The same cameras with tensors moved/cast like :meth:`torch.Tensor.to`."""
        return Camera(self.view.to(*args, **kwargs), self.projection.to(*args, **kwargs), self.image_size)

    def __getitem__(self, index) -> Camera:
        """A sub-batch of cameras (``cam[0:1]``, ``cam[[0, 2]]``); an int keeps a batch of one."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Camera(self.view[index], self.projection[index], self.image_size)

    # ----------------------------------------------------------------------------------------------
    # Maps
    def _points(self, points: torch.Tensor) -> torch.Tensor:
        if points.ndim == 2:
            points = points.unsqueeze(0)
        if points.ndim != 3 or points.shape[-1] != 3:
            raise RenderInputError(f"points must have shape [B, V, 3] or [V, 3], got {tuple(points.shape)}")
        if points.shape[0] not in (1, self.batch_size) and self.batch_size != 1:
            raise RenderInputError(f"points batch {points.shape[0]} does not match the camera batch {self.batch_size}")
        return points

    def to_view(self, points: torch.Tensor) -> torch.Tensor:
        """World points in view space (x right, y up, looking down -z).

        Args:
            points: world points, shape :math:`(B, V, 3)` or :math:`(V, 3)`.

        Returns:
            view-space points, shape :math:`(B, V, 3)`.
        """
        points = self._points(points)
        view = self.view.to(points.dtype)
        return points @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]

    def to_clip(self, points: torch.Tensor) -> torch.Tensor:
        """World points in clip space, ready for :func:`renderers.rasterize`.

        Args:
            points: world points, shape :math:`(B, V, 3)` or :math:`(V, 3)`.

        Returns:
            clip-space positions ``(x, y, z, w)``, shape :math:`(B, V, 4)`.
        """
        points = self._points(points)
        matrix = (self.projection @ self.view).to(points.dtype)
        return _to_homogeneous(points) @ matrix.transpose(1, 2)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points to pixel coordinates (x right, y down, row 0 at the top, image spans [0, W] × [0, H]).

        Args:
            points: world points, shape :math:`(B, V, 3)` or :math:`(V, 3)`.

        Returns:
            pixel coordinates ``(x, y)``, shape :math:`(B, V, 2)`; pixel ``(row i, col j)`` has its centre at
            ``(j + 0.5, i + 0.5)``.
        """
        ndc = _from_homogeneous(self.to_clip(points))
        height, width = self.image_size
        x = (ndc[..., 0] + 1) * (width / 2)
        y = (1 - ndc[..., 1]) * (height / 2)
        return torch.stack([x, y], dim=-1)

    def depth(self, points: torch.Tensor) -> torch.Tensor:
        """Depth of world points along the viewing axis (``-z`` in view space; positive in front).

        Args:
            points: world points, shape :math:`(B, V, 3)` or :math:`(V, 3)`.

        Returns:
            depth, shape :math:`(B, V)`.
        """
        return -self.to_view(points)[..., 2]


def _focal_px(fov_y_deg, focal_px, height: int, batch: int, like: torch.Tensor) -> torch.Tensor:
    if (fov_y_deg is None) == (focal_px is None):
        raise RenderInputError("give exactly one of fov_y_deg and focal_px")
    if focal_px is not None:
        focal = _per_batch(focal_px, batch, like, "focal_px")
    else:
        fov = _per_batch(fov_y_deg, batch, like, "fov_y_deg")
        if not bool(torch.all((fov > 0) & (fov < 180))):
            raise RenderInputError(f"fov_y_deg must lie in (0, 180), got {fov.tolist()}")
        focal = (height / 2) / torch.tan(torch.deg2rad(fov) / 2)
    if not bool(torch.all(focal > 0)):
        raise RenderInputError("focal_px must be positive")
    return focal


def frame_points(
    points: torch.Tensor,
    image_size: tuple[int, int] = (512, 512),
    yaw_deg: float = 0.0,
    pitch_deg: float = 0.0,
    fill: float = 0.8,
    fov_y_deg: float = 15.0,
    up: tuple[float, float, float] = (0.0, 1.0, 0.0),
    front: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> Camera:
    """A perspective camera that frames a point set: its vertical extent fills ``fill`` of the image height.

    The camera orbits the bounding-box centre: ``yaw`` turns it about ``up`` (positive: towards the
    object's left, i.e. world +x for a head facing +z), ``pitch`` raises it. With yaw = pitch = 0 it looks
    at the object's ``front`` side.

    Args:
        points: world points, shape :math:`(B, V, 3)` or :math:`(V, 3)` (gradients are not tracked).
        image_size: ``(H, W)`` in pixels.
        yaw_deg: orbit angle about ``up`` in degrees (e.g. 35 for a three-quarter view).
        pitch_deg: elevation in degrees.
        fill: share of the image height the projected points span (0 < fill ≤ 1).
        fov_y_deg: vertical field of view.
        up: world up direction.
        front: direction the object faces (the camera sits on this side at yaw = pitch = 0).

    Returns:
        the cameras, batch size B.
    """
    if not 0 < fill <= 1:
        raise RenderInputError(f"fill must lie in (0, 1], got {fill}")
    points = points.detach()
    if points.ndim == 2:
        points = points.unsqueeze(0)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] == 0:
        raise RenderInputError(f"points must have shape [B, V, 3] with V > 0, got {tuple(points.shape)}")
    height, width = _check_image_size(image_size)
    dtype, device = points.dtype, points.device
    up_t = torch.nn.functional.normalize(torch.tensor(up, dtype=dtype, device=device), dim=0)
    front_t = torch.tensor(front, dtype=dtype, device=device)
    front_t = torch.nn.functional.normalize(front_t - (front_t @ up_t) * up_t, dim=0)
    side_t = torch.linalg.cross(up_t, front_t, dim=0)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    direction = math.cos(pitch) * (math.cos(yaw) * front_t + math.sin(yaw) * side_t) + math.sin(pitch) * up_t
    center = (points.amin(dim=1) + points.amax(dim=1)) / 2
    extent = (points.amax(dim=1) - points.amin(dim=1)).norm(dim=-1)
    tan_half = math.tan(math.radians(fov_y_deg) / 2)
    distance = extent / (2 * fill * tan_half) + extent
    up_b = up_t.expand_as(center)
    camera = None
    for _ in range(4):  # re-aim at the projected centre and rescale the distance to hit `fill`
        eye = center + distance[:, None] * direction
        camera = Camera.look_at(eye, center, up_b, fov_y_deg=fov_y_deg, image_size=(height, width),
                                near=(distance - extent).clamp_min(1e-3 * extent), far=distance + 2 * extent)
        pixels = camera.project(points)
        top, bottom = pixels[..., 1].amin(dim=1), pixels[..., 1].amax(dim=1)
        span = (bottom - top) / height
        # Shift the target so the projected box is centred (in view-space units at the centre's depth).
        offset_px = torch.stack(
            [(pixels[..., 0].amin(1) + pixels[..., 0].amax(1)) / 2 - width / 2, (top + bottom) / 2 - height / 2], dim=-1
        )
        world_per_px = 2 * distance * tan_half / height
        rotation = camera.view[:, :3, :3]
        shift = offset_px[:, :1] * rotation[:, 0] - offset_px[:, 1:] * rotation[:, 1]
        center = center + shift * world_per_px[:, None]
        distance = distance * span / fill
    eye = center + distance[:, None] * direction
    return Camera.look_at(eye, center, up_b, fov_y_deg=fov_y_deg, image_size=(height, width),
                          near=(distance - extent).clamp_min(1e-3 * extent), far=distance + 2 * extent)
