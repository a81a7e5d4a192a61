"""Facial attributes measured on meshes and textures: what captions describe and what scores generated avatars.

Every attribute is a plain function of the neutral mesh's 68 Multi-PIE landmark vertices (template
topology, centimetres, head frame: x to the head's left, y up, z out of the face) or of the albedo
texture sampled at landmark-placed points of the UV atlas. Landmark ``i`` below is
``template.landmarks_68[i]`` (0-based Multi-PIE order: 0–16 jaw line from the right ear to the left,
17–26 brows, 27–30 nose bridge, 31–35 nostril base, 36–47 eyes, 48–67 lips). ``|a b|`` is the 3D
distance between landmarks ``a`` and ``b``; ``y(a)`` a height.

====================  ===========================================================  =======
attribute             definition                                                   unit
====================  ===========================================================  =======
``face_width``        ``|0 16|`` (cheek-to-cheek width at ear height)              cm
``face_length``       ``y(27) − y(8)`` (nasion to the bottom of the chin)          cm
``face_roundness``    ``face_width / face_length``                                 ratio
``jaw_width``         ``|4 12| / face_width`` (jaw angle width relative to face)   ratio
``chin_length``       ``y(57) − y(8)`` (lower lip to the bottom of the chin)       cm
``nose_length``       ``|27 33|`` (nasion to the base of the nose)                 cm
``nose_width``        ``|31 35|`` (width of the nostril base)                      cm
``nose_size``         cube root of nose length × width × projection, projection =  cm
                      ``z(30) − (z(31) + z(35)) / 2``
``eye_size``          mean over both eyes of √(fissure width × opening height):    cm
                      width ``|36 39|``, ``|42 45|``; height mean of ``|37 41|``,
                      ``|38 40|`` (``|43 47|``, ``|44 46|``)
``eye_spacing``       ``|39 42|`` (between the inner eye corners)                  cm
``mouth_width``       ``|48 54|`` (between the mouth corners)                      cm
``lip_fullness``      ``y(51) − y(57)`` (lip height at the midline, mouth closed)  cm
``brow_height``       mean ``y`` of 19, 24 − mean ``y`` of the upper lids          cm
                      37, 38, 43, 44
``skin_tone``         mean luminance of the albedo on both cheeks and the forehead  [0, 1]
``stubble``           ``1 − L(beard area) / L(cheeks)``: darkening of chin, jaw     ratio
                      and upper lip relative to the cheeks
``brow_strength``     ``1 − L(brows) / L(forehead)``: how dark/dense the brows are  ratio
====================  ===========================================================  =======

Luminance ``L = 0.2126 R + 0.7152 G + 0.0722 B`` of the albedo (row 0 at the top of the single-image
atlas, :mod:`avatar.morphable.uv_atlas`), each region the mean over small discs around
landmark-placed points (:data:`TEXTURE_POINTS`). Geometry is measured on the neutral expression.
All functions are differentiable in the vertices and the albedo, so they can guide sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.core.errors import AvatarInputError

GEOMETRY_ATTRIBUTES = (
    "face_width", "face_length", "face_roundness", "jaw_width", "chin_length", "nose_length", "nose_width",
    "nose_size", "eye_size", "eye_spacing", "mouth_width", "lip_fullness", "brow_height",
)  # fmt: skip
TEXTURE_ATTRIBUTES = ("skin_tone", "stubble", "brow_strength")
ATTRIBUTES = GEOMETRY_ATTRIBUTES + TEXTURE_ATTRIBUTES

#: Texture sample points: region → list of ``(landmark a, landmark b, t, dv)``: the point
#: ``lerp(uv(a), uv(b), t)`` moved up by ``dv`` times the face tile's height (atlas v is up).
TEXTURE_POINTS: dict[str, tuple[tuple[int, int, float, float], ...]] = {
    "cheeks": ((2, 31, 0.5, 0.0), (2, 31, 0.45, 0.035), (14, 35, 0.5, 0.0), (14, 35, 0.45, 0.035)),
    "forehead": ((19, 24, 0.0, 0.09), (19, 24, 0.5, 0.10), (19, 24, 1.0, 0.09), (21, 22, 0.5, 0.06)),
    "beard": ((8, 57, 0.45, 0.0), (6, 57, 0.4, 0.0), (10, 57, 0.4, 0.0), (33, 51, 0.5, 0.0)),
    "brows": ((18, 18, 0.0, 0.0), (19, 19, 0.0, 0.0), (20, 20, 0.0, 0.0), (23, 23, 0.0, 0.0), (24, 24, 0.0, 0.0),
              (25, 25, 0.0, 0.0)),
}
#: Disc radius of each texture sample, in face-tile units, and the taps per disc.
TEXTURE_DISC_RADIUS = 0.008
_DISC = ((0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))
_LUMA = (0.2126, 0.7152, 0.0722)


def _dist(points: torch.Tensor, a: int, b: int) -> torch.Tensor:
    return (points[:, a] - points[:, b]).norm(dim=-1)


def geometry_attributes(landmarks: torch.Tensor) -> torch.Tensor:
    """The geometry attributes of the module table from the 68 landmark vertices.

    Args:
        landmarks: neutral-mesh landmark vertices (cm, head frame), shape :math:`(B, 68, 3)`.

    Returns:
        attributes in the order of :data:`GEOMETRY_ATTRIBUTES`, shape :math:`(B, 13)`.

    Example:
        >>> geometry_attributes(torch.randn(2, 68, 3)).shape
        torch.Size([2, 13])
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 3):
        raise AvatarInputError(f"landmarks must have shape (B, 68, 3), got {tuple(landmarks.shape)}")
    p = landmarks
    y, z = p[..., 1], p[..., 2]
    face_width = _dist(p, 0, 16)
    face_length = y[:, 27] - y[:, 8]
    nose_length = _dist(p, 27, 33)
    nose_width = _dist(p, 31, 35)
    projection = (z[:, 30] - 0.5 * (z[:, 31] + z[:, 35])).clamp_min(1e-3)
    eye_width = 0.5 * (_dist(p, 36, 39) + _dist(p, 42, 45))
    eye_height = 0.25 * (_dist(p, 37, 41) + _dist(p, 38, 40) + _dist(p, 43, 47) + _dist(p, 44, 46))
    upper_lids = 0.25 * (y[:, 37] + y[:, 38] + y[:, 43] + y[:, 44])
    out = (
        face_width,
        face_length,
        face_width / face_length,
        _dist(p, 4, 12) / face_width,
        y[:, 57] - y[:, 8],
        nose_length,
        nose_width,
        (nose_length * nose_width * projection).clamp_min(1e-6) ** (1.0 / 3.0),
        (eye_width * eye_height).clamp_min(1e-6).sqrt(),
        _dist(p, 39, 42),
        _dist(p, 48, 54),
        y[:, 51] - y[:, 57],
        0.5 * (y[:, 19] + y[:, 24]) - upper_lids,
    )
    return torch.stack(out, dim=1)


def texture_sample_uv(landmark_uv: torch.Tensor, tile_height: float) -> dict[str, torch.Tensor]:
    """Atlas coordinates of the texture sample discs (:data:`TEXTURE_POINTS`).

    Args:
        landmark_uv: atlas uv (v up) of the 68 landmarks, shape :math:`(68, 2)`.
        tile_height: height of the face tile in atlas units (its v extent).

    Returns:
        region → sample uvs, shape :math:`(N_r, 2)` (points × disc taps).
    """
    out = {}
    for region, points in TEXTURE_POINTS.items():
        taps = []
        for a, b, t, dv in points:
            centre = landmark_uv[a] * (1 - t) + landmark_uv[b] * t + torch.tensor([0.0, dv * tile_height])
            for du, dw in _DISC:
                taps.append(centre + TEXTURE_DISC_RADIUS * tile_height * torch.tensor([du, dw]))
        out[region] = torch.stack(taps).float()
    return out


def region_luminance(albedo: torch.Tensor, sample_uv: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean luminance of the albedo over each region's sample points (bilinear taps).

    Args:
        albedo: atlas albedo in [0, 1], row 0 at the top, shape :math:`(B, S, S, 3)`.
        sample_uv: region → atlas uvs (v up), shape :math:`(N_r, 2)` (:func:`texture_sample_uv`).

    Returns:
        region → luminance, shape :math:`(B,)`.
    """
    if albedo.ndim != 4 or albedo.shape[-1] != 3:
        raise AvatarInputError(f"albedo must have shape (B, S, S, 3), got {tuple(albedo.shape)}")
    names = list(sample_uv)
    counts = [sample_uv[n].shape[0] for n in names]
    uv = torch.cat([sample_uv[n] for n in names]).to(albedo)
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1)  # row 0 = top = v 1
    grid = grid[None, None].expand(albedo.shape[0], 1, -1, 2)
    taps = F.grid_sample(albedo.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
    luma = torch.einsum("bcn,c->bn", taps[:, :, 0], torch.tensor(_LUMA, dtype=albedo.dtype))
    return {n: part.mean(1) for n, part in zip(names, luma.split(counts, dim=1))}


def texture_attributes(albedo: torch.Tensor, sample_uv: dict[str, torch.Tensor]) -> torch.Tensor:
    """The texture attributes of the module table.

    Args:
        albedo: atlas albedo, row 0 at the top, shape :math:`(B, S, S, 3)`.
        sample_uv: from :func:`texture_sample_uv`.

    Returns:
        attributes in the order of :data:`TEXTURE_ATTRIBUTES`, shape :math:`(B, 3)`.
    """
    lum = region_luminance(albedo, sample_uv)
    skin = 0.5 * (lum["cheeks"] + lum["forehead"])
    stubble = 1 - lum["beard"] / lum["cheeks"].clamp_min(1e-4)
    brows = 1 - lum["brows"] / lum["forehead"].clamp_min(1e-4)
    return torch.stack([skin, stubble, brows], dim=1)


@dataclass
class AttributeMeter:
    """Measures all :data:`ATTRIBUTES` of identity codes through a linear head (differentiable).

    Attributes:
        landmark_mean: mean identity's landmark vertices, shape :math:`(68, 3)`.
        landmark_basis: identity basis at the landmarks, shape :math:`(K, 68, 3)`.
        albedo: ``albedo(z_tex (B, T), size) -> (B, size, size, 3)`` (the head's texture model).
        sample_uv: texture sample points (:func:`texture_sample_uv`).
        texture_size: atlas side used for measuring.
        source: the head's source (``"face_model"`` or ``"ict"``), for provenance.
    """

    landmark_mean: torch.Tensor
    landmark_basis: torch.Tensor
    albedo: object
    sample_uv: dict
    texture_size: int = 128
    source: str = ""

    @classmethod
    def from_head(cls, head, texture_size: int = 128) -> "AttributeMeter":
        """The meter of a :class:`avatar.morphable.head.HeadModel`."""
        from avatar.morphable.texture import landmark_uv
        from avatar.morphable.uv_atlas import FACE_REGION

        ids = torch.from_numpy(np.asarray(head.landmarks_68, dtype=np.int64))
        atlas = head.atlas
        lm_uv = torch.from_numpy(landmark_uv(head.faces.numpy(), atlas.uv_faces, atlas.uv, ids.numpy()).astype(np.float32))
        tile_height = FACE_REGION.box[3] - FACE_REGION.box[1]
        return cls(
            landmark_mean=head.mean[ids].clone(),
            landmark_basis=head.identity_basis[:, ids].clone(),
            albedo=head.albedo,
            sample_uv=texture_sample_uv(lm_uv, tile_height),
            texture_size=texture_size,
            source=head.source,
        )

    @property
    def geo_dim(self) -> int:
        return int(self.landmark_basis.shape[0])

    def landmarks(self, z_geo: torch.Tensor) -> torch.Tensor:
        """Neutral landmark vertices, shape :math:`(B, 68, 3)`, for codes of shape :math:`(B, K)`."""
        return self.landmark_mean + torch.einsum("bk,kld->bld", z_geo, self.landmark_basis[: z_geo.shape[1]])

    def geometry(self, z_geo: torch.Tensor) -> torch.Tensor:
        """Geometry attributes, shape :math:`(B, 13)`, of codes :math:`(B, K)`."""
        return geometry_attributes(self.landmarks(z_geo))

    def texture(self, z_tex: torch.Tensor) -> torch.Tensor:
        """Texture attributes, shape :math:`(B, 3)`, of codes :math:`(B, T)`."""
        return texture_attributes(self.albedo(z_tex, self.texture_size), self.sample_uv)

    def __call__(self, z_geo: torch.Tensor, z_tex: torch.Tensor) -> torch.Tensor:
        """All attributes (:data:`ATTRIBUTES` order), shape :math:`(B, 16)`.

        Args:
            z_geo: shape :math:`(B, K)`.
            z_tex: shape :math:`(B, T)`.
        """
        return torch.cat([self.geometry(z_geo), self.texture(z_tex)], dim=1)

    def measure(self, z_geo: torch.Tensor, z_tex: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """:meth:`__call__` without gradients, in batches (for datasets), shape :math:`(B, 16)`."""
        out = []
        with torch.no_grad():
            for start in range(0, z_geo.shape[0], batch):
                out.append(self(z_geo[start:start + batch], z_tex[start:start + batch]))
        return torch.cat(out) if out else torch.zeros(0, len(ATTRIBUTES))


def mesh_attributes(vertices: torch.Tensor, landmark_ids, albedo: torch.Tensor | None = None,
                    sample_uv: dict | None = None) -> torch.Tensor:
    """Attributes of finished meshes (e.g. a bundle's neutral vertices and texture).

    Args:
        vertices: neutral meshes on the template topology, shape :math:`(B, V, 3)`.
        landmark_ids: the 68 landmark vertex ids, shape :math:`(68,)`.
        albedo: their textures, shape :math:`(B, S, S, 3)`, or ``None`` (texture attributes are NaN).
        sample_uv: texture sample points (with ``albedo``).

    Returns:
        attributes in :data:`ATTRIBUTES` order, shape :math:`(B, 16)`.
    """
    ids = torch.as_tensor(np.asarray(landmark_ids, dtype=np.int64))
    geometry = geometry_attributes(vertices[:, ids])
    if albedo is None or sample_uv is None:
        texture = torch.full((vertices.shape[0], len(TEXTURE_ATTRIBUTES)), float("nan"))
    else:
        texture = texture_attributes(albedo, sample_uv)
    return torch.cat([geometry, texture], dim=1)
