"""Texture from the photo: unwrap into the UV atlas, de-light, fill unseen texels by symmetry and the prior.

For every texel of the face region of the atlas (:mod:`avatar.morphable.uv_atlas`):

1. its point and normal on the fitted head come from rasterizing the mesh in UV space through
   ``renderers`` (``rasterize`` + ``interpolate``);
2. the point is projected into the photo with the fitted camera; it counts as seen when it is not
   occluded (depth test against a render of the head from the same camera), faces the camera and falls
   on facial skin, lips or brows in the photo (landmark-drawn mask without the eye openings and the
   inner mouth); the confidence fades with the viewing angle;
3. the photo colour is divided by the fitted SH shading in linear light (de-lighting:
   ``albedo = encode(decode(photo) / shade(n))``, :mod:`avatar.core.colour`; the texture is sRGB),
   with the shading normalised to a median of 1 over the seen skin, so the texture keeps the photo's
   overall brightness and the lighting only its variation (the fitted light is rescaled to match);
4. texels seen poorly take their mirror texel's colour (the face tile is symmetric, ``u ↦ 1 - u``);
5. what is still unseen is filled by pull–push interpolation (Gortler et al., "The Lumigraph", 1996)
   of the difference to the albedo prior, so holes get the prior's structure with the photo's
   low-frequency colour. Other regions (back of the head, eyes, mouth) are the prior, with the skin
   tone taken from the photo and the iris colour sampled between MediaPipe's iris points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import renderers as dr
from avatar.core.colour import linear_to_srgb, srgb_to_linear
from avatar.fitting.detect import FaceObservation, crop_image
from avatar.fitting.masks import face_skin_mask, feature_mask, region_mask, skin_colour_mask
from avatar.fitting.optimize import FitResult, face_crop, landmark_targets
from avatar.morphable.head import OPAQUE_PARTS, HeadModel, paint_irises
from avatar.morphable.landmarks import EYELID_LEFT, EYELID_RIGHT, FACE_OVAL, IRIS_LEFT, IRIS_RIGHT, LIPS_INNER
from avatar.morphable.uv_atlas import BACK_HEAD_REGION, FACE_REGION, region_pixel_box

#: Occlusion tolerance of the depth test, cm.
DEPTH_TOLERANCE = 0.4
#: Confidence below which the mirror texel is consulted.
MIRROR_BELOW = 0.999
#: Least linear shading divided out (deep shadow: dividing by less amplifies noise); 0.25 in sRGB terms.
SHADE_FLOOR = 0.05


@dataclass(frozen=True)
class UnwrapOutput:
    """The unwrapped texture.

    Attributes:
        texture: albedo in the atlas, row 0 at the top, shape :math:`(S, S, 3)` float32 in [0, 1].
        confidence: how much each texel comes from the photo directly, shape :math:`(S, S)`.
        coverage: share of the face region's texels seen in the photo (direct or mirrored).
        skin_albedo: the skin colour used for unseen regions, shape :math:`(3,)`.
        light_scale: the fitted SH lighting divided by this goes with ``texture`` (the texture keeps the
            photo's brightness on the seen skin; the light carries only the shading's variation).
    """

    texture: torch.Tensor
    confidence: torch.Tensor
    coverage: float
    skin_albedo: torch.Tensor
    light_scale: float = 1.0


def _atlas_rasterize(head: HeadModel, vertices: torch.Tensor, size: int, parts: tuple[str, ...]):
    """Rasterize the named parts in UV space: per-texel world point, normal and coverage (row 0 top)."""
    keep = torch.from_numpy(head.part_face_mask(parts))
    uv_faces = torch.from_numpy(head.atlas.uv_faces)[keep].contiguous()
    uv = torch.from_numpy(head.atlas.uv)
    pos = torch.cat([uv * 2 - 1, torch.zeros(len(uv), 1), torch.ones(len(uv), 1)], 1)[None].contiguous()
    rast, _ = dr.rasterize(pos, uv_faces, resolution=(size, size), grad_db=False)
    vertex_ids = torch.from_numpy(head.atlas.uv_vertex_ids.astype(np.int64))
    normals_v = dr.mesh.vertex_normals(vertices, head.faces)
    attrs = torch.cat([vertices[0, vertex_ids], normals_v[0, vertex_ids]], 1)[None].contiguous()
    values, _ = dr.interpolate(attrs, rast, uv_faces)
    covered = rast[..., 3] > 0
    flip = lambda x: x.flip(1)  # noqa: E731 — v = 0 is the bottom row of the image
    points, normals = flip(values[..., :3])[0], flip(values[..., 3:])[0]
    return points, torch.nn.functional.normalize(normals, dim=-1, eps=1e-12), flip(covered)[0]


def _sample(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of an image at pixel coordinates (image spans [0, W] × [0, H]).

    Args:
        image: shape :math:`(H, W, C)`.
        pixels: shape :math:`(N, 2)` (x, y).

    Returns:
        shape :math:`(N, C)`; zero outside the image.
    """
    height, width = image.shape[:2]
    grid = torch.stack([pixels[:, 0] / width * 2 - 1, pixels[:, 1] / height * 2 - 1], -1)[None, None]
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
    return out[0, :, 0].T


def texture_mask(landmarks: np.ndarray, size: tuple[int, int], shrink: float = 0.03) -> np.ndarray:
    """Where the photo may texture the head: the face oval without the eye openings and the inner mouth.

    Args:
        landmarks: MediaPipe points in the image's pixels, shape :math:`(478, 2+)`.
        size: ``(H, W)``.
        shrink: pull the face oval (it sits on the hairline and the silhouette) in by this fraction.

    Returns:
        mask, shape :math:`(H, W)` float32 in {0, 1}.
    """
    points = np.asarray(landmarks, dtype=np.float64)[:, :2].copy()
    oval = points[list(FACE_OVAL)]
    points[list(FACE_OVAL)] = oval.mean(0) + (oval - oval.mean(0)) * (1 - shrink)
    mask = region_mask(points, size, FACE_OVAL)
    for upper, lower in (EYELID_RIGHT, EYELID_LEFT, LIPS_INNER):
        mask = mask * (1 - region_mask(points, size, tuple(upper) + tuple(reversed(lower[1:-1]))))
    return mask


def _blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Smooth a 2-D map at the scale of ``radius`` pixels (separable box blur ×3 ≈ Gaussian, computed at
    reduced resolution), shape kept."""
    factor = max(1, radius // 4)
    out = image[None, None]
    if factor > 1:
        out = torch.nn.functional.avg_pool2d(out, factor, ceil_mode=True)
    r = max(1, radius // factor)
    for _ in range(3):
        out = torch.nn.functional.pad(out, (r, r, 0, 0), mode="replicate")
        out = torch.nn.functional.avg_pool2d(out, (1, 2 * r + 1), stride=1)
        out = torch.nn.functional.pad(out, (0, 0, r, r), mode="replicate")
        out = torch.nn.functional.avg_pool2d(out, (2 * r + 1, 1), stride=1)
    if factor > 1:
        out = torch.nn.functional.interpolate(out, size=image.shape, mode="bilinear", align_corners=False)
    return out[0, 0]


def _texture_mask_crop(image: np.ndarray, observation: FaceObservation, crop) -> torch.Tensor:
    """Where the photo may texture the head, over a crop: :func:`texture_mask`, without pixels whose colour
    is not skin (hair, glasses; :func:`~avatar.fitting.masks.skin_colour_mask`) except on the brows, eyes
    and lips. Shape :math:`(S, S, 1)`."""
    size = (crop.size, crop.size)
    points = (observation.landmarks[:, :2] - np.array([crop.x0, crop.y0])) * crop.scale
    pixels = crop_image(image, crop.x0, crop.y0, crop.scale, crop.size).astype(np.float32) / 255.0
    region = texture_mask(points, size)
    colour = skin_colour_mask(pixels, face_skin_mask(points, size) > 0.5)
    features = feature_mask(points, size, width=0.02 * crop.size)
    return torch.from_numpy(region * np.maximum(colour, features))[..., None]


def pull_push(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill low-weight pixels from coarser levels (pull–push, Gortler et al. 1996).

    Args:
        values: shape :math:`(H, W, C)`.
        weight: confidence in [0, 1], shape :math:`(H, W)`.

    Returns:
        filled values, shape :math:`(H, W, C)`; equal to ``values`` where ``weight`` is 1.
    """
    if min(values.shape[:2]) <= 1 or float(weight.sum()) == 0:
        total = weight.sum().clamp_min(1e-8)
        mean = (values * weight[..., None]).sum((0, 1)) / total
        return values * weight[..., None] + mean * (1 - weight[..., None])
    h, w = values.shape[:2]
    ph, pw = h % 2, w % 2
    v = torch.nn.functional.pad((values * weight[..., None]).permute(2, 0, 1)[None], (0, pw, 0, ph))
    wt = torch.nn.functional.pad(weight[None, None], (0, pw, 0, ph))
    v_down = torch.nn.functional.avg_pool2d(v, 2) * 4
    w_down = torch.nn.functional.avg_pool2d(wt, 2) * 4
    coarse_values = (v_down / w_down.clamp_min(1e-8))[0].permute(1, 2, 0)
    coarse = pull_push(coarse_values, w_down[0, 0].clamp(max=1.0))
    up = torch.nn.functional.interpolate(coarse.permute(2, 0, 1)[None], size=(h + ph, w + pw), mode="bilinear",
                                         align_corners=False)[0].permute(1, 2, 0)[:h, :w]
    return values * weight[..., None] + up * (1 - weight[..., None])


def iris_colour(image: np.ndarray, observation: FaceObservation) -> torch.Tensor:
    """Median colour between the iris centre and ring points of both eyes, shape :math:`(3,)` in [0, 1]."""
    samples = []
    for ids in (IRIS_RIGHT, IRIS_LEFT):
        pts = observation.landmarks[list(ids), :2]
        centre, radius = pts[0], np.linalg.norm(pts[1:] - pts[0], axis=1).mean()
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            for frac in (0.45, 0.65):
                x, y = centre + frac * radius * np.array([np.cos(angle), np.sin(angle)])
                xi, yi = int(np.clip(x, 0, image.shape[1] - 1)), int(np.clip(y, 0, image.shape[0] - 1))
                samples.append(image[yi, xi])
    return torch.from_numpy(np.median(np.array(samples, np.float32) / 255.0, axis=0))


def unwrap_texture(head: HeadModel, fit: FitResult, image: np.ndarray, observation: FaceObservation,
                   size: int) -> UnwrapOutput:
    """The fitted head's albedo texture from the photo (see the module docstring).

    Args:
        head: the head.
        fit: the fit (geometry, pose, camera, lighting, albedo prior code).
        image: the working image, shape :math:`(H, W, 3)` uint8.
        observation: the face's landmarks (masks, iris colour).
        size: atlas side in texels.

    Returns:
        the :class:`UnwrapOutput`.
    """
    state = fit.state
    with torch.no_grad():
        vertices = head.vertices(state.z_geo, state.expression, state.rotation)
        points, normals, covered = _atlas_rasterize(head, vertices, size, ("M_Face",))
        # visibility: depth of the head seen from the camera, over a crop around the face
        crop = face_crop(landmark_targets(observation), 512, margin=1.6)
        camera = fit.camera(crop)
        keep = torch.from_numpy(head.part_face_mask(OPAQUE_PARTS))
        depth_map = dr.render_mesh(vertices, head.faces[keep], None, None, None, camera, None, antialias=False).depth[0, ..., 0]

        texel_ids = covered.reshape(-1).nonzero()[:, 0]
        p = points.reshape(-1, 3)[texel_ids]
        n = normals.reshape(-1, 3)[texel_ids]
        photo_camera = fit.camera()
        pixels = photo_camera.project(p[None])[0]
        depth = photo_camera.depth(p[None])[0]
        crop_pixels = camera.project(p[None])[0]
        map_depth = _sample(depth_map[..., None], crop_pixels)[:, 0]
        visible = (map_depth > 0) & (depth <= map_depth + DEPTH_TOLERANCE)
        eye = photo_camera.position[0]
        view = torch.nn.functional.normalize(eye - p, dim=-1)
        cosine = (n * view).sum(-1)
        facing = ((cosine - 0.15) / 0.45).clamp(0, 1)
        on_skin = _sample(_texture_mask_crop(image, observation, crop), crop_pixels)[:, 0]
        weight = visible.float() * facing * on_skin

        photo = torch.from_numpy(image.astype(np.float32) / 255.0)
        colour = _sample(photo, pixels)
        shade = dr.sh_shade(n[None], state.sh)[0].clamp_min(SHADE_FLOOR)
        # brightness convention: the seen skin keeps the photo's mean brightness (the light is scaled instead)
        seen = weight > 0.5
        light_scale = float(shade[seen].median().clamp(0.2, 4.0)) if int(seen.sum()) > 100 else 1.0
        shade = shade / light_scale
        albedo = linear_to_srgb(srgb_to_linear(colour) / shade)

        texels = size * size
        flat_albedo = torch.zeros(texels, 3)
        flat_weight = torch.zeros(texels)
        flat_albedo[texel_ids] = albedo
        flat_weight[texel_ids] = weight
        tex_albedo = flat_albedo.reshape(size, size, 3)
        tex_weight = flat_weight.reshape(size, size)

        # skin colour of the unseen regions: robust mean of confidently seen texels
        confident = tex_weight > 0.8
        if int(confident.sum()) > 100:
            skin = tex_albedo[confident].median(0).values
        else:
            skin = state.z_tex[0, :3].clamp(0, 1) if head.texture_decoder is None else torch.tensor([0.72, 0.55, 0.46])
        prior = _prior(head, fit, skin, size)

        # symmetric fill inside the face region
        r0, r1, c0, c1 = region_pixel_box(FACE_REGION, size)
        face_albedo, face_weight = tex_albedo[r0:r1, c0:c1], tex_weight[r0:r1, c0:c1]
        mirror_albedo, mirror_weight = face_albedo.flip(1), face_weight.flip(1)
        self_part = face_weight
        mirror_part = (1 - face_weight) * mirror_weight * (face_weight < MIRROR_BELOW)
        total = self_part + mirror_part
        merged = (face_albedo * self_part[..., None] + mirror_albedo * mirror_part[..., None]) / total.clamp_min(1e-8)[..., None]
        known = total.clamp(max=1.0)
        residual = merged - prior[r0:r1, c0:c1]
        filled = pull_push(residual, known)
        # far from anything seen, fade to the prior instead of stretching edge colours (hair, background)
        near = _blur(known, max(size // 48, 1)).clamp(max=0.5) * 2
        residual = known[..., None] * residual + near[..., None] * (filled - known[..., None] * residual)
        texture = prior.clone()
        texture[r0:r1, c0:c1] = (prior[r0:r1, c0:c1] + residual).clamp(0, 1)

        # the iris colour from the photo (de-lit by the frontal shade) painted onto the sclera
        frontal = (dr.sh_shade(torch.tensor([[[0.0, 0.0, 1.0]]]), state.sh)[0, 0] / light_scale).clamp_min(SHADE_FLOOR)
        iris = linear_to_srgb(srgb_to_linear(iris_colour(image, observation)) / frontal)
        texture = paint_irises(texture[None], head.pupil_uv, iris)[0]
        region_texels = int(covered[r0:r1, c0:c1].sum())
        coverage = float((total.clamp(max=1.0) * covered[r0:r1, c0:c1]).sum()) / max(region_texels, 1)
    return UnwrapOutput(texture.contiguous(), tex_weight, coverage, skin, light_scale)


def _prior(head: HeadModel, fit: FitResult, skin: torch.Tensor, size: int) -> torch.Tensor:
    """The albedo prior at ``size``, sRGB: the texture decoder (shifted to the photo's skin tone) or flat skin."""
    if head.texture_decoder is None:
        return head.albedo(skin[None], size)[0]
    decoded = linear_to_srgb(head.albedo(fit.state.z_tex, size)[0])  # the decoder's albedo is linear
    r0, r1, c0, c1 = region_pixel_box(FACE_REGION, size)
    shift = skin - decoded[r0:r1, c0:c1].reshape(-1, 3).median(0).values
    out = decoded.clone()
    for region in (FACE_REGION, BACK_HEAD_REGION):
        a0, a1, b0, b1 = region_pixel_box(region, size)
        out[a0:a1, b0:b1] = (decoded[a0:a1, b0:b1] + shift).clamp(0, 1)
    return out
