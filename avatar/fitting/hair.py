"""A hair layer from the photo: a shell over the scalp, as thick as the hair's silhouette, coloured from the photo.

1. **Hair region** — MediaPipe's selfie segmentation (the person, hair included) minus the face oval and the
   skin-coloured pixels (ears, neck), above the chin and around the face. A person with little hair above the
   forehead gets no layer: a bald person stays bald.
2. **Where hair grows** — the fitted head's scalp (neutral, head frame): the crown and the back of the head above
   the nose, and the forehead where the photo shows the person's non-skin pixels there, by a majority of
   neighbouring vertices (a fringe covers the forehead, a high hairline does not). Positions come from the model's
   68 landmark vertices (brows, nose tip, jaw ends).
3. **Thickness** — from the silhouette: for each scalp vertex seen edge-on, march in the photo from its projection
   along its projected normal until the person mask ends; that distance over the normal's image length is the
   hair's thickness there (cm). Vertices not seen edge-on take an angle-weighted mean of the measured ones (the
   back of the head is completed from its sides and top), then the field is smoothed over the shell.
4. **Colour** — visible shell points inside the hair region take the photo's colour there, the rest the region's
   median; baked into the head's atlas layout (the shell reuses the head's UVs), sRGB like every texture.

The layer is a separate mesh (:class:`avatar.core.bundle.HairLayer`): rigid with the head (no morph targets), its
own node ``hair`` in the GLB so engines can swap it.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar.core.bundle import HairLayer
from avatar.fitting.detect import FaceObservation
from avatar.fitting.masks import region_mask, skin_colour_mask
from avatar.fitting.optimize import FitResult
from avatar.morphable.hair import MAX_THICKNESS_CM, MIN_THICKNESS_CM, bake, scalp, shell, smooth
from avatar.morphable.head import HeadModel
from avatar.morphable.landmarks import FACE_OVAL
from renderers.mesh import vertex_normals

#: Least share of the band above the forehead that must be hair for a layer to be made.
MIN_HAIR_SHARE = 0.2
#: Thickness where nothing was measured (cm).
DEFAULT_THICKNESS_CM = 0.8
#: MediaPipe's chin landmark.
CHIN = 152


def hair_region(image: np.ndarray, observation: FaceObservation, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the photo shows hair (working image), step 1 of the module docstring.

    Returns:
        the hair outside the face oval, and the person's pixels that are not skin-coloured inside it too (a fringe
        over the forehead lies inside MediaPipe's face oval); both :math:`(H, W)` bool.
    """
    height, width = image.shape[:2]
    landmarks = observation.landmarks[:, :2]
    face = region_mask(landmarks, (height, width), FACE_OVAL) > 0.5
    skin = skin_colour_mask(image.astype(np.float32) / 255.0, face) > 0.5
    x0, y0, x1, y1 = observation.face.box
    w, h = x1 - x0, y1 - y0
    ys, xs = np.mgrid[0:height, 0:width]
    window = (ys < landmarks[CHIN, 1]) & (ys >= y0 - 1.5 * h) & (xs >= x0 - 0.6 * w) & (xs < x1 + 0.6 * w)
    not_skin = (person >= 0.5) & ~skin & window
    return not_skin & ~face, not_skin


def has_hair(region: np.ndarray, observation: FaceObservation) -> bool:
    """Whether the band above the forehead (half a face high, the face's width) is mostly hair."""
    top = float(observation.landmarks[list(FACE_OVAL), 1].min())
    x0, _, x1, y1 = observation.face.box
    band = region[max(int(top - 0.5 * (y1 - top)), 0): max(int(top), 0), max(int(x0), 0): max(int(x1), 0)]
    return band.size > 0 and float(band.mean()) >= MIN_HAIR_SHARE


def _sample(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of ``image`` at ``pixels`` (N, 2) (x, y); outside → 0."""
    height, width = image.shape[:2]
    x, y = np.round(pixels[:, 0]).astype(int), np.round(pixels[:, 1]).astype(int)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    out = np.zeros((len(pixels),) + image.shape[2:], image.dtype)
    out[inside] = image[y[inside], x[inside]]
    return out


def fit_hair(head: HeadModel, fit: FitResult, image: np.ndarray, observation: FaceObservation, person: np.ndarray,
             texture_size: int = 512) -> HairLayer | None:
    """The hair layer of a fitted photo, or ``None`` when the person has (almost) no hair.

    Args:
        head: the fitted head model.
        fit: the fit (identity, pose, camera).
        image: the working image, :math:`(H, W, 3)` uint8.
        observation: the face's landmarks.
        person: :func:`avatar.fitting.detect.person_mask` of the working image, :math:`(H, W)`.
        texture_size: side of the hair texture (the head's atlas layout).

    Returns:
        the :class:`~avatar.core.bundle.HairLayer` (head frame, neutral), or ``None``.
    """
    region, not_skin = hair_region(image, observation, person)
    if not has_hair(region, observation):
        return None
    state = fit.state
    with torch.no_grad():
        rest_t = head.rest_vertices(state.z_geo)[0]
        normals_t = vertex_normals(rest_t[None], head.faces)[0]
        camera = fit.camera()
        posed = head.pose(rest_t[None], state.rotation)
        tips = head.pose((rest_t + normals_t)[None], state.rotation)  # 1 cm along each normal
        pixels = camera.project(posed)[0].numpy()
        ahead = camera.project(tips)[0].numpy()
        eye = camera.position[0].numpy()
    rest, normals = rest_t.numpy(), normals_t.numpy()
    posed = posed[0].numpy()
    posed_normals = tips[0].numpy() - posed  # the pose is rigid: the normals turn with it
    view = eye - posed
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    facing = (posed_normals * view).sum(1)  # > 0: towards the camera

    where = scalp(head, rest)
    candidate, forehead = where.candidate, where.forehead
    faces = head.faces.numpy()
    # a fringe decided per vertex is patchy where the hair's colour is near the skin's: a majority of neighbours
    vote = smooth(_sample(not_skin.astype(np.uint8), pixels).astype(np.float64), faces[candidate[faces].all(1)], 8)
    keep = candidate & ~(forehead & (facing > 0.2) & (vote < 0.5))  # seen forehead without hair is skin
    pieces = shell(head, keep)
    if pieces is None:
        return None
    ids, shell_faces, uv_faces = pieces

    # thickness from the silhouette, for vertices seen edge-on
    step = ahead[ids] - pixels[ids]
    px_per_cm = np.linalg.norm(step, axis=1)
    edge_on = (np.abs(facing[ids]) < 0.35) & (px_per_cm > 0.5)
    limit = 0.8 * (observation.face.box[3] - observation.face.box[1])
    thickness = np.full(len(ids), np.nan)
    inside = person >= 0.5
    for k in np.nonzero(edge_on)[0]:
        direction = step[k] / px_per_cm[k]
        distances = np.arange(0.0, limit, 1.0)
        trail = _sample(inside.astype(np.uint8), pixels[ids[k]] + distances[:, None] * direction).astype(bool)
        out = np.nonzero(~trail)[0]
        travelled = distances[out[0]] if len(out) else limit
        thickness[k] = travelled / px_per_cm[k]
    thickness = _complete(thickness, rest[ids], shell_faces)

    hair_vertices = rest[ids] + np.clip(thickness, MIN_THICKNESS_CM, MAX_THICKNESS_CM)[:, None] * normals[ids]
    colours = _colours(image, region, pixels[ids] + step * thickness[:, None], facing[ids], shell_faces)
    texture = bake(colours, shell_faces, head.atlas.uv, uv_faces, texture_size, np.median(image[region], axis=0))
    return HairLayer.create(vertices=hair_vertices, faces=shell_faces, uv=head.atlas.uv, uv_faces=uv_faces,
                            texture=texture)


def _complete(thickness: np.ndarray, points: np.ndarray, faces: np.ndarray, sigma: float = 0.35,
              smoothing: int = 30) -> np.ndarray:
    """Fill unmeasured thicknesses by an angle-weighted mean of the measured ones, then smooth over the shell."""
    centre = points.mean(0)
    direction = points - centre
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    known = np.isfinite(thickness)
    out = np.where(known, thickness, DEFAULT_THICKNESS_CM)
    if known.any():
        cosine = np.clip(direction[~known] @ direction[known].T, -1.0, 1.0)
        weight = np.exp(-np.arccos(cosine) ** 2 / sigma**2) + 1e-12
        out[~known] = (weight @ thickness[known]) / weight.sum(1)
    return smooth(out, faces, smoothing)


def _colours(image: np.ndarray, region: np.ndarray, pixels: np.ndarray, facing: np.ndarray,
             faces: np.ndarray) -> np.ndarray:
    """Per-vertex sRGB colour: the photo's where a visible vertex lands on hair, else the hair's median."""
    median = np.median(image[region], axis=0).astype(np.float64) / 255.0
    seen = (facing > 0.1) & _sample(region.astype(np.uint8), pixels).astype(bool)
    colours = np.tile(median, (len(pixels), 1))
    colours[seen] = _sample(image, pixels[seen]).astype(np.float64) / 255.0
    return smooth(colours, faces, 3)


__all__ = ["fit_hair", "has_hair", "hair_region"]
