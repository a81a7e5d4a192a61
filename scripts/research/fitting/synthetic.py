"""Synthetic photos with known geometry, for evaluating and testing the fitter.

A synthetic photo is a head of known identity, expression and pose rendered through ``renderers``
with a texture from the morphable model's documented parametric skin model
(:func:`avatar.morphable.texture.parametric_albedo`, random texture code), random order-2 SH lighting,
a random perspective camera and a smooth random background. The fitter then sees only the pixels
(MediaPipe runs on them as on any photo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

import renderers as dr
from avatar.core.colour import encode_rgba
from avatar.fitting.camera import fit_camera
from avatar.morphable.codes import sample_expression_codes
from avatar.morphable.head import OPAQUE_PARTS, HeadModel, decoder_to_atlas


@dataclass(frozen=True)
class SyntheticPhoto:
    """One rendered photo and its ground truth.

    Attributes:
        image: the photo, shape :math:`(H, W, 3)` uint8.
        z_geo: identity code, shape :math:`(1, K)`.
        expression: expression weights, shape :math:`(1, 53)`.
        rotation: head rotation (axis-angle), shape :math:`(1, 3)`.
        translation: camera-space translation (cm), shape :math:`(1, 3)`.
        focal: focal length (pixels), shape :math:`(1,)`.
        sh: lighting, shape :math:`(1, 9, 3)`.
        z_tex: texture code of the parametric skin model, shape :math:`(1, 12)`.
    """

    image: np.ndarray
    z_geo: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    sh: torch.Tensor
    z_tex: torch.Tensor


@lru_cache(maxsize=2)
def _skin_masks(height: int) -> torch.Tensor:
    from avatar.morphable.template import load_template
    from avatar.morphable.texture import landmark_uv, region_masks

    t = load_template()
    uv68 = landmark_uv(t.faces, t.uv_faces, t.uv, t.landmarks_68)
    return torch.from_numpy(region_masks(uv68, height))


def synthetic_texture(head: HeadModel, z_tex: torch.Tensor, size: int = 512) -> torch.Tensor:
    """Albedo of the parametric skin model in the atlas.

    Args:
        head: the head (for the iris positions).
        z_tex: parametric skin code, shape :math:`(1, 12)`.
        size: atlas side.

    Returns:
        albedo, shape :math:`(size, size, 3)`.
    """
    from avatar.morphable.texture import parametric_albedo

    albedo = parametric_albedo(z_tex, _skin_masks(256))  # (1, 3, H, 2H), row 0 at v = 0
    return decoder_to_atlas(albedo, size, head.pupil_uv)[0]


def random_lighting(rng: np.random.Generator) -> torch.Tensor:
    """A warm/cool key light from the front hemisphere plus ambient, shape :math:`(1, 9, 3)`."""
    direction = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.8), rng.uniform(0.6, 1.2)])
    tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 1.0)])
    key = rng.uniform(1.2, 2.2)
    ambient = rng.uniform(0.35, 0.6)
    sh = dr.directional_sh(torch.tensor(direction[None], dtype=torch.float32), torch.tensor(key * tint, dtype=torch.float32))
    return (sh + dr.ambient_sh(torch.tensor(ambient * tint, dtype=torch.float32))).float()


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    a, b = rng.uniform(0.2, 0.9, 3), rng.uniform(0.2, 0.9, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    return np.broadcast_to(a * (1 - t) + b * t, (height, width, 3)).astype(np.float32)


def render_synthetic(truth_head: HeadModel, rng: np.random.Generator, image_size: tuple[int, int] = (512, 512),
                     z_geo: torch.Tensor | None = None, expression_scale: float = 0.6,
                     max_yaw_deg: float = 30.0, z_tex: torch.Tensor | None = None) -> SyntheticPhoto:
    """Render one synthetic photo of a random (or given) identity.

    Args:
        truth_head: the head that makes the ground truth (e.g. the ICT teacher, all 100 modes).
        rng: random generator.
        image_size: ``(H, W)``.
        z_geo: identity code, shape :math:`(1, K)`; default ~ N(0, 1).
        expression_scale: expression weights are scaled by this (photos are mostly moderate).
        max_yaw_deg: head yaw range (pitch and roll get half and a third of it).
        z_tex: texture code of the skin model, shape :math:`(1, 12)`; default ~ N(0, 1) (drawn either way, so the
            rest of the scene does not depend on it).

    Returns:
        the :class:`SyntheticPhoto`.
    """
    height, width = image_size
    if z_geo is None:
        z_geo = torch.from_numpy(rng.standard_normal((1, truth_head.geo_dim)).astype(np.float32))
    weights, _ = sample_expression_codes(1, truth_head.expression_names, rng, neutral_fraction=0.15)
    expression = torch.from_numpy(weights * expression_scale)
    yaw, pitch, roll = (math.radians(rng.uniform(-m, m)) for m in (max_yaw_deg, max_yaw_deg / 2, max_yaw_deg / 3))
    from scipy.spatial.transform import Rotation

    rotation = torch.from_numpy(Rotation.from_euler("YXZ", [yaw, -pitch, roll]).as_rotvec().astype(np.float32))[None]
    fov = math.radians(rng.uniform(12.0, 40.0))
    focal = torch.tensor([(max(height, width) / 2) / math.tan(fov / 2)], dtype=torch.float32)
    face_px = rng.uniform(0.3, 0.55) * min(height, width)  # face height in the image
    depth = float(focal) * 22.0 / face_px  # the face (brow to chin) is ~22 cm of head height framed
    shift = rng.uniform(-0.12, 0.12, 2) * np.array([width, height]) * depth / float(focal)
    translation = torch.tensor([[shift[0], shift[1] - 2.0, depth]], dtype=torch.float32)
    drawn = torch.from_numpy(rng.standard_normal((1, 12)).astype(np.float32))
    z_tex = drawn if z_tex is None else torch.as_tensor(z_tex, dtype=torch.float32).reshape(1, 12)
    texture = synthetic_texture(truth_head, z_tex)
    sh = random_lighting(rng)
    keep = torch.from_numpy(truth_head.part_face_mask(OPAQUE_PARTS))
    with torch.no_grad():
        vertices = truth_head.vertices(z_geo, expression, rotation)
        camera = fit_camera(focal, translation, (width / 2, height / 2), (height, width))
        out = dr.render_mesh(vertices, truth_head.faces[keep], torch.from_numpy(truth_head.atlas.uv),
                             torch.from_numpy(truth_head.atlas.uv_faces)[keep], texture, camera, sh)
    rgba = encode_rgba(out.rgba[0]).numpy()  # linear albedo and light → an sRGB photo (avatar.core.colour)
    image = _background(rng, (height, width)) * (1 - rgba[..., 3:]) + rgba[..., :3]
    image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1)  # sensor noise
    return SyntheticPhoto((image * 255 + 0.5).astype(np.uint8), z_geo, expression, rotation, translation, focal, sh, z_tex)
