"""The fitting camera: a pinhole looking at the head, in the photo's pixels or in a crop of them.

World space is the posed head frame (x: head's left, y up, z out of the face). The camera has
OpenCV axes (x right, y down, z forward) and the fixed rotation :data:`R_CV` = diag(1, -1, -1), so a
head with zero rotation faces the camera; the head's own rotation carries the pose. What is fitted:
the focal length (one value, square pixels), the principal point is the photo centre, and the
translation ``t`` (cm) of the world origin in camera space.

A **crop** is an axis-aligned square window of the photo resampled to ``size`` pixels:
``crop_px = (photo_px - (x0, y0)) * scale``; its intrinsics follow from the photo's by the same map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from renderers import Camera

#: Camera rotation: a head facing +z looks into a camera looking down its +z (OpenCV).
R_CV = (1.0, -1.0, -1.0)


@dataclass(frozen=True)
class Crop:
    """A square window of the photo: ``crop_px = (photo_px - (x0, y0)) * scale``; ``size`` pixels a side."""

    x0: float
    y0: float
    scale: float
    size: int

    def to_photo(self, points: torch.Tensor) -> torch.Tensor:
        """Crop pixels → photo pixels, shape :math:`(..., 2)` kept."""
        offset = torch.tensor([self.x0, self.y0], dtype=points.dtype, device=points.device)
        return points / self.scale + offset

    def from_photo(self, points: torch.Tensor) -> torch.Tensor:
        """Photo pixels → crop pixels, shape :math:`(..., 2)` kept."""
        offset = torch.tensor([self.x0, self.y0], dtype=points.dtype, device=points.device)
        return (points - offset) * self.scale

    def resized(self, size: int) -> Crop:
        """The same window at another resolution."""
        return Crop(self.x0, self.y0, self.scale * size / self.size, int(size))


def intrinsics(focal: torch.Tensor, principal: tuple[float, float], crop: Crop | None = None) -> torch.Tensor:
    """Pixel intrinsics of the photo camera, or of a crop of it.

    Args:
        focal: focal length in photo pixels, shape :math:`(B,)`.
        principal: principal point ``(cx, cy)`` in photo pixels.
        crop: express K in this crop's pixels.

    Returns:
        K, shape :math:`(B, 3, 3)`.
    """
    cx, cy = principal
    scale = 1.0
    if crop is not None:
        cx, cy, scale = (cx - crop.x0) * crop.scale, (cy - crop.y0) * crop.scale, crop.scale
    f = focal * scale
    zero, one = torch.zeros_like(f), torch.ones_like(f)
    rows = [torch.stack([f, zero, zero + cx], -1), torch.stack([zero, f, zero + cy], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def world_to_camera(translation: torch.Tensor) -> torch.Tensor:
    """OpenCV extrinsics ``[R_CV | t]`` as 4×4 matrices.

    Args:
        translation: camera-space position of the world origin (cm), shape :math:`(B, 3)`.

    Returns:
        world → camera transforms, shape :math:`(B, 4, 4)`.
    """
    batch = translation.shape[0]
    rotation = torch.diag(torch.tensor(R_CV, dtype=translation.dtype, device=translation.device)).expand(batch, 3, 3)
    top = torch.cat([rotation, translation[:, :, None]], dim=2)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=translation.dtype, device=translation.device).expand(batch, 1, 4)
    return torch.cat([top, bottom], dim=1)


def fit_camera(focal: torch.Tensor, translation: torch.Tensor, principal: tuple[float, float], image_size: tuple[int, int],
               crop: Crop | None = None) -> Camera:
    """A :class:`renderers.Camera` for the fitted focal and translation.

    Args:
        focal: focal length in photo pixels, shape :math:`(B,)`.
        translation: world origin in camera space (cm), shape :math:`(B, 3)`.
        principal: principal point in photo pixels.
        image_size: ``(H, W)`` of the photo (ignored with ``crop``: the crop is ``size × size``).
        crop: render or project into this crop instead of the full photo.

    Returns:
        the camera (near 1 cm, far 10 m).
    """
    size = (crop.size, crop.size) if crop is not None else image_size
    return Camera.from_intrinsics(intrinsics(focal, principal, crop), world_to_camera(translation), size, near=1.0, far=1000.0)
