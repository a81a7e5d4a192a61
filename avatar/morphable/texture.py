"""UV albedo: a documented parametric skin model (the teacher) and the learned decoder z_tex → albedo.

Layout: ICT's UV layout, tiles 0 (face, u ∈ [0, 1]) and 1 (back of head, neck, mouth and eye sockets,
u ∈ [1, 2]). An albedo is one image of shape ``(B, 3, H, 2H)`` covering u ∈ [0, 2], v ∈ [0, 1] with
**row 0 at v = 0** (nvdiffrast's texture convention: sample it with :func:`atlas_uv`; flip rows to
write an image file). Values are linear-light albedo in [0, 1].

Parametric skin model (no albedo scans are available, so this is the teacher). Colour comes from a
two-chromophore Beer–Lambert approximation of skin reflectance (Donner & Jensen 2006; Jimenez et al.
2010 "A practical appearance model for dynamic facial color"):
``albedo = exp(-(σ_base + c_mel σ_mel + c_hem σ_hem + c_car σ_car))`` with per-channel absorption
σ_mel = (1.6, 2.3, 3.2) (melanin absorbs blue most), σ_hem = (0.35, 1.6, 1.1) (haemoglobin absorbs
green), σ_car = (0, 0.15, 0.9) (carotene/yellow undertone), σ_base = (0.3, 0.59, 0.6). Regions are soft
masks placed from the template's 68 landmarks in UV space: lips, brows (thin and thick), cheeks,
beard/stubble area, under-eye, nose. Parameters (the texture code, each entry ~ N(0, 1)):

====  ===================  ==========================================================
 z    name                 effect
====  ===================  ==========================================================
 0    melanin              skin tone, c_mel = :func:`melanin` (z): uniform over six skin categories
 1    haemoglobin          overall redness, c_hem = 0.14·exp(0.3 z)
 2    undertone            yellow/olive undertone, c_car = 0.25·sigmoid(1.5 z)
 3    lip_red              extra haemoglobin on the lips, 0.15 + 0.35·sigmoid(z)
 4    lip_dark             extra melanin on the lips, 0.15·sigmoid(1.5 z)
 5    brow_dark            brow hair coverage (towards dark hair colour), 0.2 + 0.7·sigmoid(z)
 6    brow_thick           blend thin → thick brow mask, sigmoid(1.5 z)
 7    blush                cheek haemoglobin, 0.25·sigmoid(1.5 z − 0.5)
 8    beard                stubble shadow (darkening) on jaw/chin/upper lip, 0.5·sigmoid(2 z − 2)
 9    under_eye            under-eye darkening, 0.3·sigmoid(1.5 z − 0.5)
10    mottling             amplitude of a fixed low-frequency blotch pattern, 0.08·sigmoid(z)
11    nose_red             haemoglobin on the nose tip, 0.2·sigmoid(1.5 z − 0.5)
====  ===================  ==========================================================

**Skin tone distribution.** The melanin code maps to ``c_mel`` through the normal CDF and a piecewise-linear
table (:data:`MELANIN_KNOTS`) chosen so that a code drawn from N(0, 1) — every default draw of the generator —
falls with equal probability (1/6) into each of the six skin categories of the Individual Typology Angle,
ITA° = arctan((L* − 50) / b*) (Chardon, Cretois & Hourseau 1991; Del Bino & Bernerd 2013): very light > 55°,
light 41–55°, intermediate 28–41°, tan 10–28°, brown −30–10°, dark < −30° (down to about −50°, the darkest skin
Del Bino et al. measured), evaluated on the sRGB-encoded cheek albedo at mean haemoglobin and undertone.

The decoder (:class:`TextureDecoder`) is trained (scripts/train_morphable.py) to reproduce the
parametric model, so it is differentiable, fast, and can later be refined from photos. The shipped decoder was
trained with the earlier melanin mapping (:func:`decoder_melanin`, 0.02–0.72: no dark skin);
:func:`melanin_correction` moves its output to the table above exactly (melanin acts multiplicatively in
Beer–Lambert), up to the mottling's ≤ 8 % modulation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatar.core.errors import AvatarInputError

SKIN_PARAMS = (
    "melanin", "haemoglobin", "undertone", "lip_red", "lip_dark", "brow_dark", "brow_thick", "blush",
    "beard", "under_eye", "mottling", "nose_red",
)
SIGMA_BASE = (0.3, 0.59, 0.6)
SIGMA_MEL = (1.6, 2.3, 3.2)
SIGMA_HEM = (0.35, 1.6, 1.1)
SIGMA_CAR = (0.0, 0.15, 0.9)
HAIR_RGB = (0.035, 0.025, 0.02)
REGIONS = ("lips", "brow_thin", "brow_thick", "cheeks", "beard", "under_eye", "nose", "mottle")


def atlas_uv(uv: torch.Tensor) -> torch.Tensor:
    """ICT UV (tiles 0–1) → coordinates in the 2-tile albedo atlas, ``(u / 2, v)``.

    Args:
        uv: shape :math:`(..., 2)`.

    Returns:
        shape :math:`(..., 2)` in [0, 1]².
    """
    return torch.stack([uv[..., 0] / 2, uv[..., 1]], -1)


def landmark_uv(faces: np.ndarray, uv_faces: np.ndarray, uv: np.ndarray, vertex_ids: np.ndarray) -> np.ndarray:
    """UV coordinates of template vertices (first uv corner that uses each vertex), shape :math:`(N, 2)`."""
    flat_v, flat_uv = faces.ravel(), uv_faces.ravel()
    first = np.full(int(flat_v.max()) + 1, -1, dtype=np.int64)
    order = np.arange(len(flat_v))[::-1]
    first[flat_v[order]] = flat_uv[order]
    return uv[first[vertex_ids]]


def region_masks(landmarks_uv: np.ndarray, height: int = 256) -> np.ndarray:
    """Soft region masks on the 2-tile atlas from the 68 landmarks' UVs.

    Args:
        landmarks_uv: UVs of the 68 landmarks (tile 0), shape :math:`(68, 2)`.
        height: atlas height H (width 2H).

    Returns:
        masks in [0, 1], shape :math:`(R, H, 2H)` in the order of :data:`REGIONS` (row 0 = v 0).
    """
    from scipy import ndimage
    from skimage.draw import polygon as fill_polygon

    h, w = height, 2 * height
    px = np.stack([landmarks_uv[:, 0] / 2 * w, landmarks_uv[:, 1] * h], 1)  # (col, row)
    scale = h / 256.0

    def poly(ids, blur):
        m = np.zeros((h, w), np.float32)
        rr, cc = fill_polygon(px[ids, 1], px[ids, 0], shape=(h, w))
        m[rr, cc] = 1
        return np.clip(ndimage.gaussian_filter(m, blur * scale), 0, 1)

    def blob(centre, radii, angle=0.0):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = xx - centre[0], yy - centre[1]
        c, s = math.cos(angle), math.sin(angle)
        u, v = (c * dx + s * dy) / (radii[0] * scale), (-s * dx + c * dy) / (radii[1] * scale)
        return np.exp(-0.5 * (u * u + v * v)).astype(np.float32)

    def thick_line(ids, width, blur):
        from skimage.draw import line
        m = np.zeros((h, w), np.float32)
        for a, b in zip(ids[:-1], ids[1:]):
            rr, cc = line(int(px[a, 1]), int(px[a, 0]), int(px[b, 1]), int(px[b, 0]))
            m[np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)] = 1
        m = ndimage.binary_dilation(m > 0, iterations=max(1, int(round(width * scale)))).astype(np.float32)
        return np.clip(ndimage.gaussian_filter(m, blur * scale), 0, 1)

    lips = poly(list(range(48, 60)), 1.5)
    brow_thin = np.maximum(thick_line(list(range(17, 22)), 2, 1.5), thick_line(list(range(22, 27)), 2, 1.5))
    brow_thick = np.maximum(thick_line(list(range(17, 22)), 5, 2.5), thick_line(list(range(22, 27)), 5, 2.5))
    cheek_l = 0.5 * (px[2] + px[31]) + np.array([0.0, 0.03 * h])
    cheek_r = 0.5 * (px[14] + px[35]) + np.array([0.0, 0.03 * h])
    cheeks = np.maximum(blob(cheek_l, (10, 8)), blob(cheek_r, (10, 8)))
    beard_ids = list(range(3, 14)) + [54, 35, 33, 31, 48]
    beard = np.clip(poly(beard_ids, 4.0) - lips, 0, 1)
    under_l = 0.5 * (px[40] + px[41]) - np.array([0.0, 0.025 * h])
    under_r = 0.5 * (px[46] + px[47]) - np.array([0.0, 0.025 * h])
    under_eye = np.maximum(blob(under_l, (7, 3)), blob(under_r, (7, 3)))
    nose = blob(px[30] + np.array([0, -0.01 * h]), (5, 5))
    rng = np.random.default_rng(1234)  # fixed blotch pattern, part of the model definition
    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 6 * scale)
    mottle = noise / (np.abs(noise).max() + 1e-8)
    return np.stack([lips, brow_thin, brow_thick, cheeks, beard, under_eye, nose, mottle], 0).astype(np.float32)


#: ``c_mel`` at the normal-CDF quantiles 0, 1/6, …, 1 of the melanin code: the ITA° category boundaries
#: 70 (lightest), 55, 41, 28, 10, −30 and −50 (darkest) of the model's cheek (see the module docstring).
MELANIN_KNOTS = (0.03, 0.135, 0.215, 0.29, 0.40, 0.79, 1.27)


def melanin(z: torch.Tensor) -> torch.Tensor:
    """Melanin concentration ``c_mel`` of melanin codes ``z`` (any shape): uniform over the six ITA categories
    for ``z ~ N(0, 1)``, piecewise linear in the normal CDF between :data:`MELANIN_KNOTS`."""
    u = 0.5 * (1 + torch.erf(z / math.sqrt(2.0))) * (len(MELANIN_KNOTS) - 1)
    knots = torch.tensor(MELANIN_KNOTS, dtype=z.dtype)
    i = u.floor().clamp(0, len(MELANIN_KNOTS) - 2)
    lo = knots[i.long()]
    hi = knots[i.long() + 1]
    return lo + (u - i) * (hi - lo)


def decoder_melanin(z: torch.Tensor) -> torch.Tensor:
    """The melanin mapping the shipped texture decoder was trained with, ``0.02 + 0.7·sigmoid(1.4 z − 0.6)``."""
    return 0.02 + 0.7 * torch.sigmoid(1.4 * z - 0.6)


def melanin_correction(z_tex: torch.Tensor) -> torch.Tensor:
    """Factor that moves the shipped decoder's albedo to :func:`melanin`'s skin tones, shape :math:`(B, 3, 1, 1)`."""
    delta = melanin(z_tex[:, 0]) - decoder_melanin(z_tex[:, 0])
    return torch.exp(-delta[:, None, None, None] * torch.tensor(SIGMA_MEL, dtype=z_tex.dtype).view(1, 3, 1, 1))


def skin_parameters(z_tex: torch.Tensor) -> dict[str, torch.Tensor]:
    """Texture code → physical parameters of the parametric skin model (see the module table).

    Args:
        z_tex: shape :math:`(B, 12)`.

    Returns:
        name → tensor of shape :math:`(B,)`.
    """
    z = z_tex
    sig = torch.sigmoid
    return {
        "melanin": melanin(z[:, 0]),
        "haemoglobin": 0.14 * torch.exp(0.3 * z[:, 1].clamp(-4, 4)),
        "undertone": 0.25 * sig(1.5 * z[:, 2]),
        "lip_red": 0.15 + 0.35 * sig(z[:, 3]),
        "lip_dark": 0.15 * sig(1.5 * z[:, 4]),
        "brow_dark": 0.2 + 0.7 * sig(z[:, 5]),
        "brow_thick": sig(1.5 * z[:, 6]),
        "blush": 0.25 * sig(1.5 * z[:, 7] - 0.5),
        "beard": 0.5 * sig(2 * z[:, 8] - 2),
        "under_eye": 0.3 * sig(1.5 * z[:, 9] - 0.5),
        "mottling": 0.08 * sig(z[:, 10]),
        "nose_red": 0.2 * sig(1.5 * z[:, 11] - 0.5),
    }


def parametric_albedo(z_tex: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The parametric skin model: albedo atlas from a texture code.

    Args:
        z_tex: shape :math:`(B, 12)`.
        masks: from :func:`region_masks`, shape :math:`(8, H, 2H)`.

    Returns:
        albedo in [0, 1], shape :math:`(B, 3, H, 2H)`.
    """
    p = {k: v[:, None, None, None] for k, v in skin_parameters(z_tex).items()}
    m = {name: masks[i][None, None] for i, name in enumerate(REGIONS)}
    col = lambda values: torch.tensor(values, dtype=z_tex.dtype).view(1, 3, 1, 1)  # noqa: E731
    mel = p["melanin"] * (1 + p["mottling"] * m["mottle"]) + p["lip_dark"] * m["lips"] + 0.3 * p["under_eye"] * m["under_eye"]
    hem = (
        p["haemoglobin"] + p["lip_red"] * m["lips"] + p["blush"] * m["cheeks"] + p["nose_red"] * m["nose"]
        + 0.5 * p["mottling"] * m["mottle"]
    )
    absorb = col(SIGMA_BASE) + mel * col(SIGMA_MEL) + hem * col(SIGMA_HEM) + p["undertone"] * col(SIGMA_CAR)
    skin = torch.exp(-absorb)
    skin = skin * (1 - p["beard"] * m["beard"]) * (1 - 0.5 * p["under_eye"] * m["under_eye"])
    brow = (1 - p["brow_thick"]) * m["brow_thin"] + p["brow_thick"] * m["brow_thick"]
    cover = (p["brow_dark"] * brow).clamp(0, 1)
    return (skin * (1 - cover) + col(HAIR_RGB) * cover).clamp(0, 1)


class TextureDecoder(nn.Module):
    """z_tex → albedo atlas: log-albedo = bias map + Σ_r a_r(z) ⊗ basis map r.

    An MLP gives per-basis RGB coefficients ``a(z)`` (R × 3); R learned single-channel basis maps and a
    learned bias map (both at ``height`` × 2·height) are mixed in log space and exponentiated — the
    form of the Beer–Lambert teacher, so a small R reproduces it closely. Output is bilinearly
    resampled to the requested size.

    Args:
        code_dim: texture code size.
        height: native map height H (width 2H).
        basis: number of basis maps R.
    """

    def __init__(self, code_dim: int = 12, height: int = 128, basis: int = 16) -> None:
        super().__init__()
        if height < 16:
            raise AvatarInputError(f"texture height must be >= 16, got {height}")
        self.code_dim, self.height, self.num_basis = code_dim, height, basis
        self.mlp = nn.Sequential(nn.Linear(code_dim, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, basis * 3))
        self.basis = nn.Parameter(torch.randn(basis, height, 2 * height) * 0.01)
        self.bias = nn.Parameter(torch.full((3, height, 2 * height), 1.0))

    def forward(self, z_tex: torch.Tensor, height: int | None = None) -> torch.Tensor:
        """Decode albedo.

        Args:
            z_tex: shape :math:`(B, D_{tex})`.
            height: output height (width 2·height); default the native resolution.

        Returns:
            albedo in (0, 1], shape :math:`(B, 3, H, 2H)` (row 0 at v = 0).
        """
        coeff = self.mlp(z_tex).view(-1, self.num_basis, 3)
        absorb = self.bias[None] + torch.einsum("brc,rhw->bchw", coeff, self.basis)
        albedo = torch.exp(-F.softplus(absorb))
        if height is not None and height != self.height:
            albedo = F.interpolate(albedo, size=(height, 2 * height), mode="bilinear", align_corners=False)
        return albedo
