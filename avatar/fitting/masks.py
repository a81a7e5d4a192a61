"""Image-side face regions drawn from MediaPipe's landmarks: the skin the photometric term may use.

The face-skin mask is the face oval (shrunk slightly, since its points sit on the silhouette where
background and hair begin) minus the eye openings, the brows and the inner mouth.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from avatar.morphable.landmarks import EYELID_LEFT, EYELID_RIGHT, FACE_OVAL, LIPS_INNER, LIPS_OUTER

#: MediaPipe's eyebrow outlines (person's right, left).
BROW_RIGHT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_LEFT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)


def _polygon(points: np.ndarray, ids) -> list[tuple[float, float]]:
    return [(float(points[i, 0]), float(points[i, 1])) for i in ids]


def _closed_contour(upper, lower) -> tuple[int, ...]:
    return tuple(upper) + tuple(reversed(lower[1:-1]))


def face_skin_mask(landmarks: np.ndarray, size: tuple[int, int], shrink: float = 0.06, supersample: int = 2) -> np.ndarray:
    """Where the photo shows facial skin.

    Args:
        landmarks: MediaPipe points in the target image's pixels (x right, y down), shape :math:`(478, 2+)`.
        size: ``(H, W)`` of the mask.
        shrink: pull the face oval towards its centre by this fraction.
        supersample: draw at this factor and average (soft edges).

    Returns:
        mask in [0, 1], shape :math:`(H, W)` float32.
    """
    points = np.asarray(landmarks, dtype=np.float64)[:, :2] * supersample
    oval = points[list(FACE_OVAL)]
    centre = oval.mean(0)
    shrunk = points.copy()
    shrunk[list(FACE_OVAL)] = centre + (oval - centre) * (1 - shrink)
    height, width = size
    image = Image.new("L", (width * supersample, height * supersample), 0)
    draw = ImageDraw.Draw(image)
    draw.polygon(_polygon(shrunk, FACE_OVAL), fill=255)
    for upper, lower in (EYELID_RIGHT, EYELID_LEFT):
        draw.polygon(_polygon(points, _closed_contour(upper, lower)), fill=0)
    draw.polygon(_polygon(points, BROW_RIGHT), fill=0)
    draw.polygon(_polygon(points, BROW_LEFT), fill=0)
    draw.polygon(_polygon(points, _closed_contour(*LIPS_INNER)), fill=0)
    if supersample > 1:
        image = image.reduce(supersample)
    return np.asarray(image, dtype=np.float32) / 255.0


def region_mask(landmarks: np.ndarray, size: tuple[int, int], contour: tuple[int, ...]) -> np.ndarray:
    """A filled landmark polygon, shape :math:`(H, W)` float32 in {0, 1}."""
    height, width = size
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).polygon(_polygon(np.asarray(landmarks, dtype=np.float64), contour), fill=255)
    return np.asarray(image, dtype=np.float32) / 255.0


def skin_colour_mask(image: np.ndarray, region: np.ndarray, chroma_sigmas: float = 3.0,
                     dark: float = 0.4, bright: float = 2.2) -> np.ndarray:
    """Pixels whose colour fits the face's own skin: removes hair, glasses, beards, deep shadows.

    The skin colour is estimated robustly (median and MAD) from the pixels of ``region`` — mostly skin —
    in log-chromaticity ``(log R/G, log B/G)``; a pixel is kept when its chromaticity lies within
    ``chroma_sigmas`` robust standard deviations and its luminance within ``[dark, bright]`` times the
    median (shading changes luminance, not chromaticity).

    Args:
        image: RGB in [0, 1], shape :math:`(H, W, 3)`.
        region: where to estimate the skin colour (e.g. :func:`face_skin_mask` > 0.5), shape :math:`(H, W)`.
        chroma_sigmas: chromaticity tolerance in robust standard deviations.
        dark, bright: luminance range relative to the median skin luminance.

    Returns:
        mask in {0, 1}, shape :math:`(H, W)` float32 (all ones when ``region`` is nearly empty).
    """
    inside = np.asarray(region) > 0.5
    if int(inside.sum()) < 50:
        return np.ones(image.shape[:2], np.float32)
    rgb = np.clip(np.asarray(image, dtype=np.float64), 1e-3, None)
    chroma = np.stack([np.log(rgb[..., 0] / rgb[..., 1]), np.log(rgb[..., 2] / rgb[..., 1])], -1)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    ref = chroma[inside]
    centre = np.median(ref, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(ref - centre), axis=0), 0.03)
    distance = np.sqrt((((chroma - centre) / spread) ** 2).sum(-1))
    lum = np.median(luminance[inside])
    keep = (distance < chroma_sigmas) & (luminance > dark * lum) & (luminance < bright * lum)
    return keep.astype(np.float32)


def feature_mask(landmarks: np.ndarray, size: tuple[int, int], width: float) -> np.ndarray:
    """Brows, eyes (with lashes) and lips, drawn with an outline ``width`` pixels wide, shape :math:`(H, W)`.

    These have their own colours (hair, lashes, lip red), so colour-based skin tests must not drop them.
    """
    points = np.asarray(landmarks, dtype=np.float64)[:, :2]
    height, w = size
    image = Image.new("L", (w, height), 0)
    draw = ImageDraw.Draw(image)
    contours = [BROW_RIGHT, BROW_LEFT, _closed_contour(*LIPS_OUTER)]
    contours += [_closed_contour(upper, lower) for upper, lower in (EYELID_RIGHT, EYELID_LEFT)]
    for contour in contours:
        polygon = _polygon(points, contour)
        draw.polygon(polygon, fill=255)
        draw.line(polygon + polygon[:1], fill=255, width=max(1, int(round(width))), joint="curve")
    return np.asarray(image, dtype=np.float32) / 255.0
