"""The differentiable head the fitter optimises: an explicit linear head on the template topology.

``vertices(z_geo, expression) = mean + Σ_k z_geo[k] identity_basis[k] + Σ_j expression[j] expression_basis[j]``,
then the head pose (rotation about the neck pivot, translation). Units: centimetres; head frame: x to
the head's left, y up, z out of the face.

Where the bases come from (:func:`load_head`):

- ``"face_model"`` — the trained implicit morphable model (:mod:`avatar.morphable`), whose deformation
  field is linear in ``[z_geo, expression]``: evaluated once at the template vertices (template mode)
  it *is* such a head, exactly;
- ``"ict"`` — the ICT FaceKit linear model itself (the teacher, from ``../shared``), truncated to the
  same number of identity codes;
- ``"auto"`` — the face model when its weights are installed, else ICT.

The ``eyeLook*`` shapes of both sources move only the lids; the eyeballs are turned by
:mod:`avatar.morphable.gaze`. To keep the head linear (and identical to the exported GLB, whose morph
targets are linear too) the eyeball rotation at weight 1 is added to those shapes' deltas here.

The albedo prior (:meth:`HeadModel.albedo`) is the morphable model's texture decoder when it has one;
otherwise ``z_tex`` is a 3-vector, the skin's mean RGB albedo, painted over the skin parts of the
atlas (:mod:`avatar.morphable.uv_atlas`) with fixed colours for eyes, teeth and mouth.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from avatar.core.bundle import AvatarBundle
from avatar.core.errors import AvatarInputError
from avatar.morphable import gaze
from avatar.morphable.landmarks import LandmarkLayer, LandmarkMap, load_landmark_map
from avatar.morphable.template import load_template
from avatar.morphable.texture import melanin_correction
from avatar.morphable.uv_atlas import ATLAS_REGIONS, AtlasLayout, atlas_layout, region_pixel_box

#: Parts rendered opaque (the eye overlay shells and lashes are alpha-blended in ICT; we leave them out).
OPAQUE_PARTS = (
    "M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight",
)  # fmt: skip
#: Parts the photometric term renders: the facial skin only (its mask leaves out the eyes and the mouth,
#: so eyeballs and teeth, 40 % of the triangles, would only cost time).
FACE_RENDER_PARTS = ("M_Face",)
#: Identity codes used from the ICT model when no trained face model is installed.
DEFAULT_IDENTITY_CODES = 100
#: Fixed albedo of the non-skin atlas regions (linear-ish sRGB in [0, 1]).
PART_ALBEDO = {
    "M_ScleraLeft": (0.82, 0.80, 0.77),
    "M_IrisLeft": (0.30, 0.22, 0.16),
    "M_GumsTongue": (0.62, 0.30, 0.30),
    "M_Teeth": (0.86, 0.83, 0.76),
    "M_EyeLashes": (0.08, 0.06, 0.05),
    "M_LacrimalFluid": (0.80, 0.70, 0.68),
}
DEFAULT_SKIN_ALBEDO = (0.72, 0.55, 0.46)


@dataclass
class HeadModel:
    """A linear head on the template topology (torch, float32, centimetres).

    Attributes:
        mean: rest vertices of the mean identity, shape :math:`(V, 3)`.
        identity_basis: identity modes (codes ~ N(0, 1)), shape :math:`(K, V, 3)`.
        expression_basis: one offset per expression at weight 1, shape :math:`(53, V, 3)`.
        faces: triangles, shape :math:`(F, 3)` int32.
        face_parts: part id per triangle, shape :math:`(F,)` (numpy int16).
        part_names: the part names.
        atlas: the single-image uv layout (:class:`~avatar.morphable.uv_atlas.AtlasLayout`).
        neck_pivot: the head-rotation pivot, shape :math:`(3,)`.
        landmarks_68: vertex ids of the Multi-PIE 68 landmarks, shape :math:`(68,)` (numpy).
        expression_names: the 53 names (ICT order, ARKit spelling).
        source: where the bases came from (``"face_model"`` or ``"ict"``), recorded in bundles.
        texture_decoder: ``(z_tex (B, T), size, face_only) -> albedo (B, size, size, 3)`` in the atlas, or ``None``.
        tex_dim: size of ``z_tex``.
        info: provenance (model name, weights hash, identity codes).
        pupil_uv: atlas coordinates of the front pole of each sclera (where the iris is painted).
    """

    mean: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    faces: torch.Tensor
    face_parts: np.ndarray
    part_names: tuple[str, ...]
    atlas: AtlasLayout
    neck_pivot: torch.Tensor
    landmarks_68: np.ndarray
    expression_names: tuple[str, ...]
    source: str
    texture_decoder: Callable[..., torch.Tensor] | None = None
    tex_dim: int = 3
    info: dict = field(default_factory=dict)
    pupil_uv: tuple[tuple[float, float], ...] = ()

    # ---------------------------------------------------------------- sizes
    @property
    def geo_dim(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    def part_face_mask(self, names) -> np.ndarray:
        """Boolean mask over triangles of the named parts, shape :math:`(F,)`."""
        ids = [self.part_names.index(n) for n in names if n in self.part_names]
        return np.isin(self.face_parts, ids)

    # ---------------------------------------------------------------- geometry
    def rest_vertices(self, z_geo: torch.Tensor, expression: torch.Tensor | None = None,
                      vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices in the head frame before the head pose.

        Args:
            z_geo: identity code, shape :math:`(B, K')`, K' ≤ K (first modes).
            expression: expression weights, shape :math:`(B, 53)`, or ``None`` (neutral).
            vertex_ids: evaluate only these vertices, shape :math:`(N,)`; default all.

        Returns:
            vertices, shape :math:`(B, V, 3)` (or :math:`(B, N, 3)`).
        """
        k = z_geo.shape[-1]
        if k > self.geo_dim:
            raise AvatarInputError(f"z_geo has {k} entries; this head has {self.geo_dim} identity codes")
        sel = slice(None) if vertex_ids is None else vertex_ids
        out = self.mean[sel] + torch.einsum("bk,kvd->bvd", z_geo, self.identity_basis[:k, sel])
        if expression is not None:
            out = out + torch.einsum("be,evd->bvd", expression, self.expression_basis[:, sel])
        return out

    def pose(self, vertices: torch.Tensor, rotation: torch.Tensor | None = None,
             translation: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the head pose: rotate about the neck pivot, then translate.

        Args:
            vertices: head-frame points, shape :math:`(B, N, 3)`.
            rotation: axis-angle (rad), shape :math:`(B, 3)`, or ``None``.
            translation: shape :math:`(B, 3)` (cm), or ``None``.

        Returns:
            posed points, shape :math:`(B, N, 3)`.
        """
        out = vertices
        if rotation is not None:
            # kornia's conversion, not avatar.core.geometry's: the photometric fit differentiates through this
            # and is sensitive to its last bits (docs/DECISIONS.md, "One geometry module")
            from kornia.geometry.conversions import axis_angle_to_rotation_matrix

            matrix = axis_angle_to_rotation_matrix(rotation)
            pivot = self.neck_pivot.to(vertices)
            out = (out - pivot) @ matrix.transpose(1, 2) + pivot
        if translation is not None:
            out = out + translation[:, None]
        return out

    def vertices(self, z_geo: torch.Tensor, expression: torch.Tensor | None = None, rotation: torch.Tensor | None = None,
                 translation: torch.Tensor | None = None) -> torch.Tensor:
        """Posed vertices :math:`(B, V, 3)` for codes (see :meth:`rest_vertices`, :meth:`pose`)."""
        return self.pose(self.rest_vertices(z_geo, expression), rotation, translation)

    def bake(self, z_geo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One identity's neutral mesh and its 53 morph targets (exact: the head is linear).

        Args:
            z_geo: identity code, shape :math:`(K',)` or :math:`(1, K')`.

        Returns:
            neutral vertices, shape :math:`(V, 3)`; expression deltas, shape :math:`(53, V, 3)`.
        """
        neutral = self.rest_vertices(z_geo.reshape(1, -1))[0]
        return neutral, self.expression_basis

    def bundle(self, z_geo: torch.Tensor, z_tex: torch.Tensor, texture: torch.Tensor, meta: dict,
               **fields) -> AvatarBundle:
        """The :class:`~avatar.core.bundle.AvatarBundle` of one identity of this head: the baked neutral
        mesh and morph targets (:meth:`bake`), the atlas, the parts and the neck pivot.

        Args:
            z_geo: identity code, shape :math:`(K',)`.
            z_tex: texture code, shape :math:`(T,)`.
            texture: sRGB albedo atlas (:mod:`avatar.core.colour`), row 0 at the top, shape :math:`(S, S, 3)` in [0, 1].
            meta: extra ``avatar.json`` fields (``created_by``, ...); the head model is added.
            **fields: the optional fields of :meth:`AvatarBundle.create` (``expression``, ``head_rotation``,
                ``sh_light``, ``preview``, ``report``, ...).
        """
        z_geo = torch.as_tensor(z_geo, dtype=torch.float32).reshape(-1)
        with torch.no_grad():
            neutral, deltas = self.bake(z_geo)
        return AvatarBundle.create(
            vertices=neutral, expression_deltas=deltas, faces=self.faces, uv=self.atlas.uv, uv_faces=self.atlas.uv_faces,
            face_parts=self.face_parts, part_names=self.part_names, neck_pivot=self.neck_pivot, texture=texture,
            z_geo=z_geo, z_tex=z_tex, meta={**meta, "head_model": {"source": self.source, **self.info}}, **fields,
        )

    def landmark_layer(self, landmark_map: LandmarkMap | None = None, calibrated: bool = True) -> LandmarkLayer:
        """This head restricted to MediaPipe's 478 landmarks (identity and expression bases).

        Args:
            landmark_map: the correspondence (default: the shipped one).
            calibrated: add MediaPipe's measured per-landmark offsets (where the detector puts each
                point relative to its geometric correspondence, ``assets/landmarks``), when installed.
        """
        landmark_map = landmark_map or load_landmark_map()
        layer = LandmarkLayer.from_vertex_model(
            landmark_map, self.mean, self.identity_basis, self.expression_basis, self.expression_names
        )
        offset = mediapipe_offsets() if calibrated else None
        if offset is not None and offset.shape == layer.mean.shape:
            layer = replace(layer, mean=(layer.mean + offset).contiguous())
        return layer

    # ---------------------------------------------------------------- appearance
    def albedo(self, z_tex: torch.Tensor, size: int = 256, face_only: bool = False) -> torch.Tensor:
        """The albedo prior in the atlas.

        Args:
            z_tex: texture code, shape :math:`(B, T)`.
            size: atlas side in texels.
            face_only: only the face region is needed (faster; other texels may be 0).

        Returns:
            albedo, shape :math:`(B, size, size, 3)` in [0, 1], row 0 at the top.
        """
        if self.texture_decoder is not None:
            return self.texture_decoder(z_tex, size, face_only).clamp(0, 1)
        return paint_irises(flat_albedo(z_tex, size), self.pupil_uv, torch.tensor(PART_ALBEDO["M_IrisLeft"]))


def mediapipe_offsets() -> torch.Tensor | None:
    """MediaPipe's calibration offsets in the head frame (cm), shape :math:`(478, 3)`, or ``None``."""
    from avatar.morphable import landmarks as lm

    loader = getattr(lm, "load_mediapipe_calibration", None)
    calibration = loader() if loader is not None else None
    return None if calibration is None else calibration["mean_offset"].float()


def flat_albedo(skin_rgb: torch.Tensor, size: int) -> torch.Tensor:
    """The atlas painted with one skin colour plus fixed eye/teeth/mouth colours.

    Args:
        skin_rgb: skin albedo, shape :math:`(B, 3)`.
        size: atlas side in texels.

    Returns:
        albedo, shape :math:`(B, size, size, 3)`.
    """
    batch = skin_rgb.shape[0]
    out = skin_rgb.clamp(0, 1)[:, None, None, :].expand(batch, size, size, 3).clone()
    for region in ATLAS_REGIONS:
        colour = next((PART_ALBEDO[p] for p in region.parts if p in PART_ALBEDO), None)
        if colour is None and region.parts[0].startswith("M_Sclera"):
            colour = PART_ALBEDO["M_ScleraLeft"]
        if colour is None and region.parts[0].startswith("M_Iris"):
            colour = PART_ALBEDO["M_IrisLeft"]
        if colour is None:
            continue
        r0, r1, c0, c1 = region_pixel_box(region, size)
        out[:, r0:r1, c0:c1] = torch.tensor(colour, dtype=out.dtype)
    return out


#: Iris and pupil radii on the sclera texture, in ICT tile units (eyeball radius 1.58 cm: the iris,
#: 0.6 cm, spans 22° ≈ 0.11 of the tile from the front pole; the pupil 7° ≈ 0.035).
IRIS_RADIUS_TILE = 0.11
PUPIL_RADIUS_TILE = 0.035


def paint_irises(albedo: torch.Tensor, pupil_uv, iris_rgb: torch.Tensor) -> torch.Tensor:
    """Paint iris discs (darker limbal ring, black pupil) onto the sclera region of atlas textures.

    Args:
        albedo: atlas textures, shape :math:`(B, S, S, 3)` (row 0 at the top).
        pupil_uv: atlas coordinates (v up) of the eyes' front poles.
        iris_rgb: iris colour, shape :math:`(3,)` or :math:`(B, 3)`.

    Returns:
        the painted textures, shape :math:`(B, S, S, 3)`.
    """
    size = albedo.shape[1]
    region = next(r for r in ATLAS_REGIONS if "M_ScleraLeft" in r.parts)
    scale = region.box[2] - region.box[0]
    coords = (torch.arange(size, dtype=albedo.dtype) + 0.5) / size
    v, u = torch.meshgrid(1 - coords, coords, indexing="ij")
    out = albedo.clone()
    iris = iris_rgb.reshape(-1, 1, 1, 3).to(albedo)
    for pu, pv in pupil_uv:
        r = torch.sqrt((u - pu) ** 2 + (v - pv) ** 2) / scale  # tile units
        inside = (r < IRIS_RADIUS_TILE)[None, ..., None]
        ring = (0.55 + 0.45 * (1 - (r / IRIS_RADIUS_TILE).clamp(0, 1) ** 4))[None, ..., None]
        colour = torch.where((r < PUPIL_RADIUS_TILE)[None, ..., None], torch.full_like(out, 0.02), iris * ring)
        out = torch.where(inside, colour, out)
    return out


def pupil_atlas_uv(rest: np.ndarray, faces: np.ndarray, uv_atlas: np.ndarray, uv_faces_atlas: np.ndarray,
                   face_parts: np.ndarray, part_names) -> tuple[tuple[float, float], ...]:
    """Atlas coordinates of each sclera's front pole (the forward-most vertex), one per eye."""
    out = []
    for eye in gaze.EYES:
        mask = face_parts == list(part_names).index(gaze.SCLERA_PARTS[eye])
        corners = faces[mask].reshape(-1)
        front = int(np.argmax(rest[corners, 2]))
        u, v = uv_atlas[uv_faces_atlas[mask].reshape(-1)[front]]
        if all(abs(u - a) > 1e-4 or abs(v - b) > 1e-4 for a, b in out):
            out.append((float(u), float(v)))
    return tuple(out)


def add_eye_rotation(expression_basis: torch.Tensor, rest: torch.Tensor, faces: np.ndarray, face_parts: np.ndarray,
                     part_names: tuple[str, ...], expression_names: tuple[str, ...]) -> torch.Tensor:
    """Add the eyeball rotation of each ``eyeLook*`` shape at weight 1 to the eyeball vertices.

    Args:
        expression_basis: shape :math:`(53, V, 3)`.
        rest: rest vertices (the eye centres are fitted on them), shape :math:`(V, 3)`.
        faces: triangles, shape :math:`(F, 3)`.
        face_parts: part id per triangle, shape :math:`(F,)`.
        part_names: part names.
        expression_names: the 53 names.

    Returns:
        the updated basis, shape :math:`(53, V, 3)`.
    """
    out = expression_basis.clone()
    centres = torch.from_numpy(gaze.eye_centres(rest.numpy(), faces, face_parts, part_names))
    names = list(part_names)
    for eye_index, eye in enumerate(gaze.EYES):
        parts = [names.index(gaze.SCLERA_PARTS[eye]), names.index(gaze.IRIS_PARTS[eye])]
        ids = torch.from_numpy(np.unique(faces[np.isin(face_parts, parts)]).astype(np.int64))
        offset = rest[ids] - centres[eye_index]
        for look in ("Up", "Down", "In", "Out"):
            name = f"eyeLook{look}_{eye}"
            if name not in expression_names:
                continue
            j = expression_names.index(name)
            if float(out[j, ids].abs().max()) > 1e-3:  # the source already turns this eyeball
                continue
            code = torch.zeros(1, len(expression_names))
            code[0, j] = 1.0
            rotation = gaze.gaze_rotation(gaze.gaze_angles(code, expression_names)[0, eye_index])
            out[j, ids] += offset @ rotation.T - offset
    return out


def _assemble(mean: torch.Tensor, identity_basis: torch.Tensor, expression_basis: torch.Tensor, source: str,
              info: dict, texture_decoder=None, tex_dim: int = 3) -> HeadModel:
    template = load_template()
    atlas = atlas_layout(template.faces, template.uv, template.uv_faces, template.face_parts, template.part_names)
    expression_basis = add_eye_rotation(expression_basis, mean, template.faces, template.face_parts, template.part_names,
                                        template.expression_names)
    return HeadModel(
        mean=mean.contiguous(),
        identity_basis=identity_basis.contiguous(),
        expression_basis=expression_basis.contiguous(),
        faces=torch.from_numpy(np.array(template.faces, dtype=np.int32)),
        face_parts=np.array(template.face_parts),
        part_names=template.part_names,
        atlas=atlas,
        neck_pivot=torch.from_numpy(np.array(template.neck_pivot, dtype=np.float32)),
        landmarks_68=np.array(template.landmarks_68),
        expression_names=template.expression_names,
        source=source,
        texture_decoder=texture_decoder,
        tex_dim=tex_dim,
        info=info,
        pupil_uv=pupil_atlas_uv(mean.numpy(), template.faces, atlas.uv, atlas.uv_faces, template.face_parts,
                                template.part_names),
    )


def parametric_texture_decoder(pupil_uv=()) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], int]:
    """The documented parametric skin model of :mod:`avatar.morphable.texture` as an atlas decoder.

    It is the texture teacher the face model's decoder is trained to reproduce, so the ICT head gets
    the same albedo prior (12 codes: melanin, haemoglobin, lips, brows, ...) without trained weights.

    Returns:
        ``decoder(z_tex (B, 12), size) -> (B, size, size, 3)`` and the code size.
    """
    from avatar.morphable.texture import SKIN_PARAMS, landmark_uv, parametric_albedo, region_masks

    template = load_template()
    uv68 = landmark_uv(template.faces, template.uv_faces, template.uv, template.landmarks_68)
    masks = torch.from_numpy(region_masks(uv68, 128))

    def decoder(z_tex: torch.Tensor, size: int = 256, face_only: bool = False) -> torch.Tensor:
        return decoder_to_atlas(parametric_albedo(z_tex, masks), size, pupil_uv, face_only)

    return decoder, len(SKIN_PARAMS)


def with_skin_model_albedo(head: HeadModel) -> HeadModel:
    """The same head with the parametric skin model (:func:`parametric_texture_decoder`) as its albedo prior.

    The face model's texture decoder is a learned copy of that model (≈ 42 dB on codes drawn from
    N(0, 1)), but it extrapolates past them (23 dB at 5σ) where the skin model saturates: a
    photometric fit that drifts the texture code then paints shading and geometry into the albedo.
    The fitter uses the exact, bounded original; the code space is the same, so the bundle's ``z_tex``
    still decodes with the face model's decoder.
    """
    if head.source == "ict":
        return head  # already the skin model
    decoder, tex_dim = parametric_texture_decoder(head.pupil_uv)
    return replace(head, texture_decoder=decoder, tex_dim=tex_dim,
                   info={**head.info, "albedo_prior": "avatar.morphable.texture parametric skin model"})


def head_from_ict(num_identity: int = DEFAULT_IDENTITY_CODES, path=None) -> HeadModel:
    """The ICT FaceKit linear model as a :class:`HeadModel` (needs ``../shared``), with the parametric
    skin model as its albedo prior (:func:`parametric_texture_decoder`).

    Args:
        num_identity: identity modes to keep (≤ 100).
        path: the ``.npz`` (default: ``../shared/data/ict_facekit``).
    """
    from avatar.morphable.ict import load_ict_facekit

    ict = load_ict_facekit(path)
    template = load_template()
    if ict.neutral.shape != template.neutral.shape:
        raise AvatarInputError("the ICT model and the shipped template disagree in topology; rebuild assets/template")
    head = _assemble(
        torch.from_numpy(np.array(ict.neutral, dtype=np.float32)),
        torch.from_numpy(np.array(ict.identity_deltas[:num_identity], dtype=np.float32)),
        torch.from_numpy(np.array(ict.expression_deltas, dtype=np.float32)),
        "ict",
        {"model": "ICT FaceKit Light (linear)", "identity_codes": int(num_identity),
         "texture_model": "avatar.morphable.texture parametric skin model"},
    )
    head.texture_decoder, head.tex_dim = parametric_texture_decoder(head.pupil_uv)
    return head


def face_model_available() -> bool:
    """Whether trained face-model weights are installed (``assets/morphable``)."""
    try:
        from avatar.morphable.api import WEIGHTS_DIR
        from avatar.morphable.io import CONFIG_FILE, WEIGHTS_FILE
    except ImportError:
        return False
    return (WEIGHTS_DIR / WEIGHTS_FILE).is_file() and (WEIGHTS_DIR / CONFIG_FILE).is_file()


def face_model_bases(face_model) -> tuple[torch.Tensor, torch.Tensor]:
    """Template-mode bases of a trained :class:`avatar.morphable.api.FaceModel`, exactly.

    Its deformation is ``D(p; c) = Σ_k c_k (W_k h(p) + b_k)`` and the explicit parts move by
    code-linear motions, so template vertices are ``rest + Σ_k c_k B_k``: the field's per-code
    displacements at the skin vertices (one pass of the feature network) and the parts' motions at
    unit codes give every ``B_k``.

    Args:
        face_model: the loaded model.

    Returns:
        rest vertices, shape :math:`(V, 3)`; bases for ``[z_geo, expression]``, shape :math:`(K, V, 3)`.
    """
    sdf = face_model.model
    rest, skin_ids = face_model.rest, face_model.skin_ids
    codes = sdf.num_codes
    bases = torch.zeros(codes, rest.shape[0], 3)
    with torch.no_grad():
        for start in range(0, len(skin_ids), 8192):
            ids = skin_ids[start:start + 8192]
            bases[:, ids] = sdf.deform.all_displacements(rest[ids]).permute(1, 0, 2)
        part_ids = sdf.parts.vertex_ids
        if part_ids.numel():
            part_rest = rest[part_ids]
            moved = sdf.parts.displacement(part_rest, torch.eye(codes))
            field_mask = sdf.parts.use_field[sdf.parts.component]
            if bool(field_mask.any()):
                moved[:, field_mask] = sdf.deform.all_displacements(part_rest[field_mask]).permute(1, 0, 2)
            bases[:, part_ids] = moved
    return rest.clone(), bases


def decoder_to_atlas(albedo: torch.Tensor, size: int, pupil_uv=(), face_only: bool = False) -> torch.Tensor:
    """The face model's two-tile albedo (ICT tiles 0–1) moved into the single-image atlas.

    Args:
        albedo: shape :math:`(B, 3, H, 2H)`, row 0 at v = 0 (:meth:`FaceModel.texture`).
        size: atlas side in texels.
        pupil_uv: where to paint the irises (see :func:`paint_irises`).
        face_only: fill only the face region (the rest stays 0) — all the photometric fit samples.

    Returns:
        atlas albedo, shape :math:`(B, size, size, 3)`, row 0 at the top; differentiable.
    """
    from avatar.morphable.uv_atlas import BACK_HEAD_REGION, FACE_REGION

    height = albedo.shape[2]
    image = albedo.flip(2)  # row 0 at the top (v = 1)
    regions = ((FACE_REGION, image[..., :height]),) if face_only else (
        (FACE_REGION, image[..., :height]), (BACK_HEAD_REGION, image[..., height:]))
    if face_only:
        out = albedo.new_zeros(albedo.shape[0], size, size, 3)
    else:
        out = flat_albedo(image[:, :, :, :height].mean((2, 3)), size)
    for region, tile in regions:
        r0, r1, c0, c1 = region_pixel_box(region, size)
        resized = torch.nn.functional.interpolate(tile, size=(r1 - r0, c1 - c0), mode="bilinear", align_corners=False)
        out = out.clone() if not face_only else out
        out[:, r0:r1, c0:c1] = resized.permute(0, 2, 3, 1)
    return out if face_only else paint_irises(out, pupil_uv, torch.tensor(PART_ALBEDO["M_IrisLeft"]))


def _bases_cache_path(weights_file) -> Path | None:
    root = os.environ.get("AVATAR_CACHE", str(Path.home() / ".cache" / "avatar"))
    try:
        stat = Path(weights_file).stat()
    except OSError:
        return None
    key = hashlib.sha1(f"{Path(weights_file).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(root) / f"head_bases_{key}.safetensors"


def head_from_face_model(face_model=None) -> HeadModel:
    """The trained implicit morphable model, evaluated in template mode, as a :class:`HeadModel`.

    The bases (:func:`face_model_bases`) are cached in ``$AVATAR_CACHE`` (default
    ``~/.cache/avatar``), keyed by the weights file, so later fits load them instead of evaluating
    the network.

    Args:
        face_model: a loaded :class:`avatar.morphable.api.FaceModel` (default: the shipped weights).
    """
    from safetensors.torch import load_file, save_file

    from avatar.morphable.api import WEIGHTS_DIR, FaceModel
    from avatar.morphable.io import WEIGHTS_FILE

    shipped = face_model is None
    face_model = FaceModel.load() if shipped else face_model
    geo_dim = int(face_model.geo_dim)
    cache = _bases_cache_path(WEIGHTS_DIR / WEIGHTS_FILE) if shipped else None
    rest = bases = None
    if cache is not None and cache.is_file():
        try:
            cached = load_file(str(cache))
            rest, bases = cached["rest"], cached["bases"]
        except Exception:  # a damaged cache is rebuilt
            rest = bases = None
    if rest is None:
        rest, bases = face_model_bases(face_model)
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                save_file({"rest": rest.contiguous(), "bases": bases.contiguous()}, str(tmp))
                os.replace(tmp, cache)
            except OSError:
                pass  # caching is an optimisation only
    template = load_template()
    atlas = atlas_layout(template.faces, template.uv, template.uv_faces, template.face_parts, template.part_names)
    pupils = pupil_atlas_uv(rest.numpy(), template.faces, atlas.uv, atlas.uv_faces, template.face_parts,
                            template.part_names)
    tex_dim = int(face_model.tex_dim)

    def texture_decoder(z_tex: torch.Tensor, size: int = 256, face_only: bool = False) -> torch.Tensor:
        albedo = face_model.texture_decoder(z_tex, None) * melanin_correction(z_tex)
        return decoder_to_atlas(albedo.clamp(0, 1), size, pupils, face_only)

    record = face_model.record if isinstance(face_model.record, dict) else {}
    info = {"model": "avatar.morphable FaceModel", "identity_codes": geo_dim, "texture_codes": tex_dim,
            **{k: record[k] for k in ("version", "trained", "final_losses") if k in record and _jsonable(record[k])}}
    return _assemble(rest, bases[:geo_dim], bases[geo_dim:], "face_model", info, texture_decoder=texture_decoder,
                     tex_dim=tex_dim)


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def load_head(source: str = "auto") -> HeadModel:
    """The head the fitter uses.

    Args:
        source: ``"auto"`` (trained face model when installed, else ICT), ``"face_model"`` or ``"ict"``.

    Returns:
        the :class:`HeadModel`.

    Raises:
        AvatarInputError: the requested source is not available.
    """
    if source not in ("auto", "face_model", "ict"):
        raise AvatarInputError(f"unknown head source {source!r}; use 'auto', 'face_model' or 'ict'")
    if source == "face_model" or (source == "auto" and face_model_available()):
        return _cached_head("face_model")
    from avatar.morphable.ict import default_ict_path

    path = default_ict_path()
    if path is None or not path.is_file():
        raise AvatarInputError(
            "no face model is installed (assets/morphable) and the ICT FaceKit data (../shared) is absent; "
            "install the trained weights or set AVATAR_SHARED"
        )
    return _cached_head("ict")


_HEADS: dict[str, HeadModel] = {}


def _cached_head(source: str) -> HeadModel:
    if source not in _HEADS:
        _HEADS[source] = head_from_face_model() if source == "face_model" else head_from_ict()
    return _HEADS[source]
