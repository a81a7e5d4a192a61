"""Fit a linear landmark layer to detected 3-D landmarks: head pose + expression weights, per frame.

Observation model: detected landmarks ``P`` (image units, y up, z towards the viewer, see
:func:`drivers.tracking.observation_from_mediapipe`) of a head seen by a perspective camera. The
perspective is undone POSIT-style (DeMenthon & Davis 1995: each landmark's image position is scaled by its
depth relative to the head centre, MediaPipe's relative depth by the face's), after which the weak
perspective model ``P_l ≈ s R (S0_l + B_l w) + t`` holds: head rotation ``R``, scale ``s`` (image units per
cm), translation ``t``, the person's rest landmarks ``S0`` and the expression basis ``B`` of a
:class:`~avatar.morphable.landmarks.LandmarkLayer`. Residuals are weighted per landmark (the map's
confidence, plus ``rigid_weight`` × MediaPipe's rigid-landmark weights so the pose leans on points that
expressions do not move) and per axis (MediaPipe's depth is a network guess: weight ``depth_weight`` on z).

Per frame (cheap: a 7×7 and a 53×53 dense system from precomputed moments of the basis):

- ``iterations`` joint Gauss–Newton steps on pose and weights: the residual is linearised in the pose
  (rotation increment, log-scale, translation) and is linear in ``w``; the pose is eliminated (Schur
  complement) and the bounded least squares
  ``min_w ||r(w)||² + l2 ||w||² + l1 Σw + temporal ||w - w_prev||² + antagonist Σ_pairs w_a w_b``
  s.t. ``0 ≤ w ≤ 1`` is solved by
  projected coordinate descent (a numba kernel) warm-started from the previous frame;
- the rest landmarks get MediaPipe's pose-dependent offsets at the current rotation (calibration).

Identity (:meth:`LandmarkFitter.fit_identity`): per-frame fits on a handful of frames alternate with a ridge
solve for the identity code and a robust (median) estimate of free per-landmark offsets of this person;
then both are frozen.

Everything per frame runs in numba kernels without BLAS (BLAS worker threads spin-wait for the cores
MediaPipe's own threads hold) and without the GIL (``nogil``: a tracker on its own thread leaves the
interpreter to the others, as in ``avatar listen``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from avatar.core.geometry import similarity_transform
from avatar.morphable.landmarks import LandmarkLayer

#: MediaPipe's own rigid landmarks and weights for head pose (its face-geometry Procrustes basis,
#: ``geometry_pipeline_metadata_landmarks.pbtxt``): points that expressions barely move.
POSE_LANDMARK_WEIGHTS = {
    4: 0.0709, 6: 0.0321, 10: 0.0084, 33: 0.0587, 54: 0.0077, 67: 0.0091, 117: 0.0098, 119: 0.0146, 121: 0.0186,
    127: 0.0052, 129: 0.1206, 132: 0.0056, 133: 0.0533, 136: 0.0669, 143: 0.0148, 147: 0.0143, 198: 0.0255,
    205: 0.0473, 263: 0.0587, 284: 0.0077, 297: 0.0091, 346: 0.0098, 348: 0.0146, 350: 0.0186, 356: 0.0052,
    358: 0.1206, 361: 0.0056, 362: 0.0533, 365: 0.0669, 372: 0.0148, 376: 0.0143, 420: 0.0255, 425: 0.0473,
}  # fmt: skip


@dataclass(frozen=True)
class FitConfig:
    """Weights of the per-frame fit (squared centimetres in the head frame unless said otherwise).

    Attributes:
        depth_weight: weight of the z (depth) residuals relative to x and y.
        expression_l2: ridge on the expression weights.
        expression_l1: sparsity on the expression weights (linear, since they are non-negative).
        temporal: pull towards the previous frame's weights.
        identity_prior: ridge on the identity code (its modes are variance-scaled: N(0, 1) prior).
        iterations: joint Gauss–Newton steps per frame (warm-started from the previous frame).
        first_iterations: joint steps for a frame without a previous fit.
        pose_iterations: rigid Gauss–Newton pose steps before the joint steps of a first frame.
        rigid_weight: extra weight of MediaPipe's rigid landmarks (:data:`POSE_LANDMARK_WEIGHTS`, scaled to
            a maximum of 1) in the joint fit, so the head pose leans on them.
        qp_sweeps: maximum coordinate-descent sweeps of the bounded least squares.
        identity_rounds: alternations of the identity fit.
        identity_l1: expression sparsity while the identity is estimated (stronger: what is constant over the
            identity frames should be explained as the person's shape, not as an expression).
        offset_frames: shrinkage of the person's free landmark offsets, in frames: the offset is the median
            residual over N identity frames times ``N / (N + offset_frames)`` (one frame: mostly shrunk away).
            ``None`` disables the offsets.
        antagonist: penalty on ``w_a w_b`` for each pair of :data:`avatar.core.motion.ANTAGONIST_PAIRS` (cm²), so
            that a shape the basis lacks (a wider smile, a person's jaw) is not explained by two opposing
            weights that cancel (jawLeft and jawRight together); 0 disables it.
    """

    depth_weight: float = 0.3
    expression_l2: float = 0.02
    expression_l1: float = 0.1
    temporal: float = 0.0
    identity_prior: float = 0.1
    iterations: int = 2
    first_iterations: int = 6
    pose_iterations: int = 2
    rigid_weight: float = 5.0
    qp_sweeps: int = 100
    identity_rounds: int = 10
    identity_l1: float = 0.2
    offset_frames: float | None = 4.0
    antagonist: float = 10.0


@dataclass
class FramePose:
    """Head pose of one frame in the weak-perspective model ``P ≈ s R S + t``.

    Attributes:
        rotation: head-to-camera rotation, shape :math:`(3, 3)`.
        scale: image units per centimetre.
        translation: image-plane (x, y) and depth offset (z), shape :math:`(3,)`.
    """

    rotation: np.ndarray
    scale: float
    translation: np.ndarray


@dataclass
class FrameFit:
    """Result of :meth:`LandmarkFitter.fit_frame`.

    Attributes:
        pose: the head pose.
        expression: the expression weights in [0, 1], shape :math:`(E,)`.
        rms: weighted RMS residual of the fit in centimetres.
    """

    pose: FramePose
    expression: np.ndarray
    rms: float = field(default=0.0)


@numba.njit(cache=True, nogil=True)
def box_least_squares(hessian, linear, x, sweeps, tol):  # pragma: no cover - compiled
    """Projected coordinate descent for ``min ½ xᵀHx - cᵀx`` subject to ``0 ≤ x ≤ 1``.

    Args:
        hessian: symmetric with a positive diagonal (each coordinate's step is then a minimum), shape
            :math:`(E, E)` float64.
        linear: shape :math:`(E,)` float64.
        x: start (changed in place), shape :math:`(E,)` float64, inside the box.
        sweeps: maximum number of passes over the coordinates.
        tol: stop when no coordinate moved more than this in a pass.

    Returns:
        the solution ``x``.
    """
    n = x.shape[0]
    grad = -linear.copy()
    for i in range(n):
        for j in range(n):
            grad[j] += hessian[j, i] * x[i]
    for _ in range(sweeps):
        largest = 0.0
        for i in range(n):
            new = x[i] - grad[i] / hessian[i, i]
            if new < 0.0:
                new = 0.0
            elif new > 1.0:
                new = 1.0
            step = new - x[i]
            if step != 0.0:
                x[i] = new
                for j in range(n):
                    grad[j] += step * hessian[j, i]
                if abs(step) > largest:
                    largest = abs(step)
        if largest < tol:
            break
    return x


def antagonist_coupling(names, strength: float) -> np.ndarray:
    """The (E, E) matrix ``C`` with ``½ wᵀCw = strength Σ w_a w_b`` over the antagonist pairs among ``names``.

    Added to the expression Hessian of the per-frame fit: each weight's own curvature is unchanged, so the
    coordinate descent of :func:`box_least_squares` stays well posed, and a pair's weights push each other to 0.
    """
    from avatar.core.expressions import ANTAGONIST_PAIRS

    names = list(names)
    coupling = np.zeros((len(names), len(names)))
    for a, b in ANTAGONIST_PAIRS:
        if a in names and b in names:
            coupling[names.index(a), names.index(b)] = coupling[names.index(b), names.index(a)] = strength
    return coupling


@numba.njit(cache=True, nogil=True)
def _rodrigues(v):  # pragma: no cover - compiled; avatar.core.geometry.axis_angle_to_matrix inside the kernels
    angle = np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    k = np.zeros((3, 3))
    if angle < 1e-12:
        k[0, 1], k[0, 2], k[1, 2] = -v[2], v[1], -v[0]
        k[1, 0], k[2, 0], k[2, 1] = v[2], -v[1], v[0]
        return np.eye(3) + k
    a = v / angle
    k[0, 1], k[0, 2], k[1, 2] = -a[2], a[1], -a[0]
    k[1, 0], k[2, 0], k[2, 1] = a[2], -a[1], a[0]
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * _matmul(k, k)


@numba.njit(cache=True, nogil=True)
def _matmul(a, b):  # pragma: no cover - compiled
    """Small dense product without BLAS (BLAS threads stall when MediaPipe's threads hold the cores)."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            aik = a[i, k]
            if aik != 0.0:
                for j in range(b.shape[1]):
                    out[i, j] += aik * b[k, j]
    return out


@numba.njit(cache=True, nogil=True)
def _cholesky_solve(a, b):  # pragma: no cover - compiled
    """Solve ``a x = b`` for a small symmetric positive definite ``a`` (n, n) and ``b`` (n, m), no LAPACK."""
    n = a.shape[0]
    low = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            acc = a[i, j]
            for k in range(j):
                acc -= low[i, k] * low[j, k]
            if i == j:
                low[i, i] = np.sqrt(max(acc, 1e-300))
            else:
                low[i, j] = acc / low[j, j]
    x = b.copy()
    for c in range(b.shape[1]):
        for i in range(n):
            acc = x[i, c]
            for k in range(i):
                acc -= low[i, k] * x[k, c]
            x[i, c] = acc / low[i, i]
        for i in range(n - 1, -1, -1):
            acc = x[i, c]
            for k in range(i + 1, n):
                acc -= low[k, i] * x[k, c]
            x[i, c] = acc / low[i, i]
    return x


@numba.njit(cache=True, nogil=True)
def _shape(rest, basis, w):  # pragma: no cover - compiled
    """rest + Σ_e w_e basis[:, e]: (L, 3)."""
    out = rest.copy()
    n_l, n_e = basis.shape[0], basis.shape[1]
    for e in range(n_e):
        we = w[e]
        if we != 0.0:
            for l in range(n_l):
                out[l, 0] += we * basis[l, e, 0]
                out[l, 1] += we * basis[l, e, 1]
                out[l, 2] += we * basis[l, e, 2]
    return out


@numba.njit(cache=True, nogil=True)
def _expression_system(obs, rot, scale, trans, rest, basis, moments, wl, depth_weight):  # pragma: no cover
    """Normal equations (H, g) of the expression solve at a fixed pose.

    ``H = Σ_dd' K_dd' M_dd'`` with ``K = Rᵀ diag(1, 1, depth_weight) R`` and the precomputed moments
    ``M_dd' = Σ_l ω_l B_l[:, d] B_l[:, d']ᵀ``; ``g = Σ_l ω_l B_lᵀ K q_l`` with ``q_l = Rᵀ(P_l - t)/s - S0_l``.
    """
    n_l, n_e = basis.shape[0], basis.shape[1]
    kmat = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            kmat[a, b] = rot[0, a] * rot[0, b] + rot[1, a] * rot[1, b] + depth_weight * rot[2, a] * rot[2, b]
    hessian = np.zeros((n_e, n_e))
    for a in range(3):
        for b in range(3):
            kab = kmat[a, b]
            for e in range(n_e):
                for f in range(n_e):
                    hessian[e, f] += kab * moments[a, b, e, f]
    linear = np.zeros(n_e)
    inv = 1.0 / scale
    for l in range(n_l):
        d0, d1, d2 = obs[l, 0] - trans[0], obs[l, 1] - trans[1], obs[l, 2] - trans[2]
        q0 = (rot[0, 0] * d0 + rot[1, 0] * d1 + rot[2, 0] * d2) * inv - rest[l, 0]
        q1 = (rot[0, 1] * d0 + rot[1, 1] * d1 + rot[2, 1] * d2) * inv - rest[l, 1]
        q2 = (rot[0, 2] * d0 + rot[1, 2] * d1 + rot[2, 2] * d2) * inv - rest[l, 2]
        u0 = wl[l] * (kmat[0, 0] * q0 + kmat[0, 1] * q1 + kmat[0, 2] * q2)
        u1 = wl[l] * (kmat[1, 0] * q0 + kmat[1, 1] * q1 + kmat[1, 2] * q2)
        u2 = wl[l] * (kmat[2, 0] * q0 + kmat[2, 1] * q1 + kmat[2, 2] * q2)
        for e in range(n_e):
            linear[e] += basis[l, e, 0] * u0 + basis[l, e, 1] * u1 + basis[l, e, 2] * u2
    return hessian, linear


@numba.njit(cache=True, nogil=True)
def _residual_rms(obs, shape, rot, scale, trans, wl, wa):  # pragma: no cover - compiled
    total, norm = 0.0, 0.0
    for l in range(obs.shape[0]):
        for i in range(3):
            v = scale * (rot[i, 0] * shape[l, 0] + rot[i, 1] * shape[l, 1] + rot[i, 2] * shape[l, 2]) + trans[i] - obs[l, i]
            total += wl[l] * wa[i] * v * v
            norm += wl[l] * wa[i]
    return np.sqrt(total / norm) / scale


@numba.njit(cache=True, nogil=True)
def _perspective_correct(obs, shape, rot, scale, focal):  # pragma: no cover - compiled
    """Observations as a weak-perspective camera would see them (POSIT, DeMenthon & Davis 1995).

    Under perspective a landmark at depth ``d_l`` appears at ``f X / d_l``; scaling its image position
    about the principal point by ``d_l / d_ref = 1 - s (R S_l)_z / f`` gives ``(f / d_ref) X``: the weak
    perspective model holds exactly for the corrected points. MediaPipe's depth channel is relative and
    in the scale of x at the face (``f / d_face``), so it is scaled by the mean ratio ``d_face / d_ref``.
    ``focal = 0`` leaves the observations as they are.
    """
    out = obs.copy()
    if focal <= 0.0:
        return out
    total = 0.0
    for l in range(obs.shape[0]):
        z = rot[2, 0] * shape[l, 0] + rot[2, 1] * shape[l, 1] + rot[2, 2] * shape[l, 2]
        ratio = 1.0 - scale * z / focal
        out[l, 0] = obs[l, 0] * ratio
        out[l, 1] = obs[l, 1] * ratio
        total += ratio
    mean_ratio = total / obs.shape[0]
    for l in range(obs.shape[0]):
        out[l, 2] = obs[l, 2] * mean_ratio
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _similarity_jacobian(jac, rot, shape, l, scale):  # pragma: no cover - compiled
    """Jacobian (3, 7) of ``s R S_l + t`` in (rotation increment δ, log-scale, translation), written to ``jac``.

    ``d(s exp([δ]x) R S) / dδ = -s [R S]x``; returns the rotated point ``R S_l`` as (x, y, z).
    """
    x = rot[0, 0] * shape[l, 0] + rot[0, 1] * shape[l, 1] + rot[0, 2] * shape[l, 2]
    y = rot[1, 0] * shape[l, 0] + rot[1, 1] * shape[l, 1] + rot[1, 2] * shape[l, 2]
    z = rot[2, 0] * shape[l, 0] + rot[2, 1] * shape[l, 1] + rot[2, 2] * shape[l, 2]
    jac[0, 0], jac[0, 1], jac[0, 2] = 0.0, scale * z, -scale * y
    jac[1, 0], jac[1, 1], jac[1, 2] = -scale * z, 0.0, scale * x
    jac[2, 0], jac[2, 1], jac[2, 2] = scale * y, -scale * x, 0.0
    jac[0, 3], jac[1, 3], jac[2, 3] = scale * x, scale * y, scale * z
    jac[0, 4], jac[1, 5], jac[2, 6] = 1.0, 1.0, 1.0
    return x, y, z


@numba.njit(cache=True, nogil=True)
def _pose_step(raw_obs, shape, rot, scale, trans, wl, wa, focal):  # pragma: no cover - compiled
    """One Gauss–Newton step on (rotation increment, log-scale, translation) at a fixed shape.

    Only landmarks with a positive weight ``wl`` take part (the rigid ones).

    Returns:
        (rotation, scale, translation).
    """
    obs = _perspective_correct(raw_obs, shape, rot, scale, focal)
    lhs = np.zeros((7, 7))
    rhs = np.zeros((7, 1))
    jac = np.zeros((3, 7))
    for l in range(obs.shape[0]):
        if wl[l] <= 0.0:
            continue
        x, y, z = _similarity_jacobian(jac, rot, shape, l, scale)
        res = (scale * x + trans[0] - obs[l, 0], scale * y + trans[1] - obs[l, 1], scale * z + trans[2] - obs[l, 2])
        for i in range(3):
            wi = wl[l] * wa[i]
            for p in range(7):
                jp = jac[i, p] * wi
                if jp != 0.0:
                    rhs[p, 0] -= jp * res[i]
                    for q in range(7):
                        lhs[p, q] += jp * jac[i, q]
    for p in range(7):
        lhs[p, p] += 1e-12
    delta = _cholesky_solve(lhs, rhs)[:, 0]
    new_rot = _matmul(_rodrigues(delta[:3].copy()), rot)
    return new_rot, scale * np.exp(delta[3]), trans + delta[4:]


@numba.njit(cache=True, nogil=True)
def _joint_step(raw_obs, rest, basis, moments, rest_moments, basis_sum, rot, scale, trans, w, wl, wa, l2, l1, temporal, prev_w, sweeps, focal, coupling):  # pragma: no cover
    """One Gauss–Newton step on pose and expression jointly, the expression kept in [0, 1].

    The residual ``r_l = s R (S0_l + B_l w) + t - P_l`` is linearised in the pose (rotation increment,
    log-scale, translation; 7 unknowns) and is linear in ``w``. The pose is eliminated (Schur complement)
    and the remaining bounded least squares in ``w`` is solved by :func:`box_least_squares`. The
    expression blocks come from precomputed moments of the basis, so a step costs O(L·E + 9·E²).

    Args:
        raw_obs: (L, 3) observations. rest: (L, 3) S0. basis: (L, E, 3).
        moments: (3, 3, E, E) ``Σ_l ω_l B_l[:, a] B_l[:, b]ᵀ``. rest_moments: (3, 3, E) ``Σ_l ω_l S0_la B_l[:, b]``.
        basis_sum: (3, E) ``Σ_l ω_l B_l[:, b]``. rot, scale, trans: current pose. w: (E,) current weights.
        wl: (L,) landmark weights. wa: (3,) axis weights. l2, l1, temporal: regularisers (cm² units).
        prev_w: (E,) previous frame's weights (used when temporal > 0). sweeps: coordinate-descent passes.
        focal: focal length in observation units for the perspective correction (0: weak perspective).
        coupling: (E, E) symmetric penalty added to the reduced Hessian (the antagonist pairs' ``w_a w_b``).

    Returns:
        (rotation, scale, translation, weights).
    """
    n_l, n_e = basis.shape[0], basis.shape[1]
    shape = _shape(rest, basis, w)
    obs = _perspective_correct(raw_obs, shape, rot, scale, focal)
    hpp = np.zeros((7, 7))
    bp = np.zeros(7)
    bw = np.zeros(n_e)
    jac = np.zeros((3, 7))
    for l in range(n_l):
        x, y, z = _similarity_jacobian(jac, rot, shape, l, scale)
        r0 = scale * x + trans[0] - obs[l, 0]
        r1 = scale * y + trans[1] - obs[l, 1]
        r2 = scale * z + trans[2] - obs[l, 2]
        v0, v1, v2 = wl[l] * wa[0] * r0, wl[l] * wa[1] * r1, wl[l] * wa[2] * r2
        for p in range(7):
            bp[p] += jac[0, p] * v0 + jac[1, p] * v1 + jac[2, p] * v2
            for q in range(p, 7):
                hpp[p, q] += wl[l] * (wa[0] * jac[0, p] * jac[0, q] + wa[1] * jac[1, p] * jac[1, q] + wa[2] * jac[2, p] * jac[2, q])
        u0 = scale * (rot[0, 0] * v0 + rot[1, 0] * v1 + rot[2, 0] * v2)
        u1 = scale * (rot[0, 1] * v0 + rot[1, 1] * v1 + rot[2, 1] * v2)
        u2 = scale * (rot[0, 2] * v0 + rot[1, 2] * v1 + rot[2, 2] * v2)
        for e in range(n_e):
            bw[e] += basis[l, e, 0] * u0 + basis[l, e, 1] * u1 + basis[l, e, 2] * u2
    for p in range(7):
        for q in range(p):
            hpp[p, q] = hpp[q, p]
        hpp[p, p] += 1e-12
    # expression blocks from the moments: T[c, d] = Σ_l ω_l S_lc B_l[:, d]
    s2 = scale * scale
    tmom = np.zeros((3, 3, n_e))
    for c in range(3):
        for d in range(3):
            for f in range(n_e):
                acc = rest_moments[c, d, f]
                for e in range(n_e):
                    acc += w[e] * moments[c, d, e, f]
                tmom[c, d, f] = acc
    tcam = np.zeros((3, 3, n_e))  # Σ_cd R[a, c] R[i, d] T[c, d]
    for a in range(3):
        for i in range(3):
            for c in range(3):
                for d in range(3):
                    k = rot[a, c] * rot[i, d]
                    for f in range(n_e):
                        tcam[a, i, f] += k * tmom[c, d, f]
    hpw = np.zeros((7, n_e))
    for f in range(n_e):
        hpw[0, f] = -s2 * (wa[1] * tcam[2, 1, f] - wa[2] * tcam[1, 2, f])
        hpw[1, f] = -s2 * (wa[2] * tcam[0, 2, f] - wa[0] * tcam[2, 0, f])
        hpw[2, f] = -s2 * (wa[0] * tcam[1, 0, f] - wa[1] * tcam[0, 1, f])
        hpw[3, f] = s2 * (wa[0] * tcam[0, 0, f] + wa[1] * tcam[1, 1, f] + wa[2] * tcam[2, 2, f])
        for j in range(3):
            hpw[4 + j, f] = scale * wa[j] * (rot[j, 0] * basis_sum[0, f] + rot[j, 1] * basis_sum[1, f] + rot[j, 2] * basis_sum[2, f])
    kmat = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            kmat[a, b] = wa[0] * rot[0, a] * rot[0, b] + wa[1] * rot[1, a] * rot[1, b] + wa[2] * rot[2, a] * rot[2, b]
    hww = np.zeros((n_e, n_e))
    for a in range(3):
        for b in range(3):
            k = s2 * kmat[a, b]
            for e in range(n_e):
                for f in range(n_e):
                    hww[e, f] += k * moments[a, b, e, f]
    # eliminate the pose: reduced system in w, in cm² units (divide by s²)
    rhs = np.zeros((7, n_e + 1))
    rhs[:, :n_e] = hpw
    rhs[:, n_e] = bp
    sol = _cholesky_solve(hpp, rhs)  # Hpp⁻¹ [Hpw, bp]
    prod = _matmul(hpw.T.copy(), sol)  # Hwp Hpp⁻¹ [Hpw, bp]
    hred = np.empty((n_e, n_e))
    linear = np.zeros(n_e)
    for e in range(n_e):
        for f in range(n_e):
            hred[e, f] = (hww[e, f] - prod[e, f]) / s2
    for e in range(n_e):
        acc = 0.0
        for f in range(n_e):
            acc += hred[e, f] * w[f]
        linear[e] = acc - (bw[e] - prod[e, n_e]) / s2
    for e in range(n_e):
        hred[e, e] += l2 + temporal
        linear[e] += temporal * prev_w[e] - l1
        for f in range(n_e):
            hred[e, f] += coupling[e, f]
    new_w = box_least_squares(hred, linear, w.copy(), sweeps, 1e-5)
    delta_p = np.zeros(7)
    for p in range(7):
        acc = sol[p, n_e]
        for e in range(n_e):
            acc += sol[p, e] * (new_w[e] - w[e])
        delta_p[p] = -acc
    new_rot = _matmul(_rodrigues(delta_p[:3].copy()), rot)
    return new_rot, scale * np.exp(delta_p[3]), trans + delta_p[4:], new_w


@numba.njit(cache=True, nogil=True)
def _pose_features(rot):  # pragma: no cover - compiled
    """:func:`avatar.morphable.landmarks.pose_features` of a rotation matrix (axis-angle r; 9 terms)."""
    cos = (rot[0, 0] + rot[1, 1] + rot[2, 2] - 1.0) / 2.0
    cos = min(1.0, max(-1.0, cos))
    angle = np.arccos(cos)
    v = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-7:
        r = 0.5 * v
    else:
        r = angle / (2.0 * np.sin(angle)) * v
    return np.array([r[0], r[1], r[2], r[0] * r[0], r[1] * r[1], r[2] * r[2], r[0] * r[1], r[0] * r[2], r[1] * r[2]])


@numba.njit(cache=True, nogil=True)
def _add_pose_offsets(rest, pose_offsets, features):  # pragma: no cover - compiled
    out = rest.copy()
    for p in range(pose_offsets.shape[0]):
        f = features[p]
        for l in range(rest.shape[0]):
            out[l, 0] += f * pose_offsets[p, l, 0]
            out[l, 1] += f * pose_offsets[p, l, 1]
            out[l, 2] += f * pose_offsets[p, l, 2]
    return out


def second_moments(basis: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``M[d, d'] = Σ_l ω_l B_l[:, d] B_l[:, d']ᵀ`` for a basis of shape (L, N, 3): shape (3, 3, N, N)."""
    weighted = basis * weight[:, None, None]
    return np.stack([np.stack([weighted[:, :, d].T @ basis[:, :, e] for e in range(3)]) for d in range(3)])


class LandmarkFitter:
    """Per-frame pose and expression fit against a :class:`LandmarkLayer` (numpy float64 + numba inside).

    Args:
        layer: the landmark layer (identity modes are used by :meth:`fit_identity`).
        config: the :class:`FitConfig`.
        landmark_weight: per-landmark weights overriding ``layer.weight``, shape :math:`(L,)`.
        focal: focal length in observation units (image's larger side = 1) for the perspective
            correction; 0 fits a weak-perspective camera. May be changed between frames.
        pose_offsets: the detector's pose-dependent landmark offsets (MediaPipe calibration
            ``pose_offset``), shape :math:`(P, L, 3)`, weighted by
            :func:`avatar.morphable.landmarks.pose_features` of the head rotation.
    """

    def __init__(
        self,
        layer: LandmarkLayer,
        config: FitConfig | None = None,
        landmark_weight: np.ndarray | None = None,
        focal: float = 0.0,
        pose_offsets: np.ndarray | None = None,
    ):
        self.config = config or FitConfig()
        self.pose_offsets = None if pose_offsets is None else np.ascontiguousarray(pose_offsets, dtype=np.float64)
        self.focal = float(focal)  # observation units; 0 = weak perspective
        self.layer = layer
        self.mean = layer.mean.numpy().astype(np.float64)
        self.identity_basis = np.ascontiguousarray(layer.identity_basis.numpy().astype(np.float64).transpose(1, 0, 2))  # [L, K, 3]
        self.basis = np.ascontiguousarray(layer.expression_basis.numpy().astype(np.float64).transpose(1, 0, 2))  # [L, E, 3]
        weight = layer.weight.numpy().astype(np.float64) if landmark_weight is None else np.asarray(landmark_weight, np.float64)
        self.pose_weight = np.zeros(len(weight))
        for index, value in POSE_LANDMARK_WEIGHTS.items():
            if index < len(self.pose_weight):
                self.pose_weight[index] = value / max(POSE_LANDMARK_WEIGHTS.values())
        # the rigid landmarks count extra, so the pose leans on them rather than on the moving mouth and jaw
        self.weight = np.ascontiguousarray(weight + self.config.rigid_weight * self.pose_weight)
        self.axis_weight = np.array([1.0, 1.0, self.config.depth_weight])
        self.moments = np.ascontiguousarray(second_moments(self.basis, self.weight))
        self.basis_sum = np.ascontiguousarray(np.einsum("l,led->de", self.weight, self.basis))
        if self.pose_offsets is not None:
            weighted = self.basis * self.weight[:, None, None]  # Σ_l ω_l D_p[l, c] B_l[:, d]
            self.pose_offset_moments = np.einsum("plc,led->pcde", self.pose_offsets, weighted)
        self.num_expressions = self.basis.shape[1]
        self.coupling = antagonist_coupling(layer.expression_names, self.config.antagonist)
        self.set_identity(np.zeros(0))  # S0 (``rest``): rest landmarks of the current identity

    # ---------------------------------------------------------------- identity
    def set_identity(self, identity: np.ndarray, offset: np.ndarray | None = None) -> None:
        """Freeze the identity code, shape :math:`(K',)` with K' ≤ K, and the person's landmark offsets (L, 3)."""
        identity = np.asarray(identity, dtype=np.float64).reshape(-1)
        self.identity = identity
        self.offset = np.zeros_like(self.mean) if offset is None else np.asarray(offset, dtype=np.float64)
        shape = self.mean + np.einsum("k,lkd->ld", identity, self.identity_basis[:, : len(identity)]) + self.offset
        self.rest = np.ascontiguousarray(shape)
        weighted_rest = self.rest * self.weight[:, None]
        self.rest_moments = np.ascontiguousarray(np.einsum("lc,led->cde", weighted_rest, self.basis))

    def fit_identity(self, observations: np.ndarray, num_modes: int | None = None) -> tuple[np.ndarray, list[FrameFit]]:
        """Estimate one person's shape from several of their frames and freeze it.

        The shape is the layer's rest landmarks moved by an identity code (ridge prior) and, with
        ``offset_frames`` set, by free per-landmark offsets: the median residual over the frames, shrunk
        (what MediaPipe sees in this person that the identity modes do not explain). Frame expressions
        are fitted alongside with a stronger sparsity (``identity_l1``).

        Args:
            observations: landmarks of N frames, shape :math:`(N, L, 3)`.
            num_modes: identity modes to use (default: all of the layer's).

        Returns:
            the identity code, shape :math:`(K',)`, and the N per-frame fits under it.
        """
        cfg = self.config
        total = self.identity_basis.shape[1]
        k = total if num_modes is None else max(0, min(num_modes, total))
        basis = np.ascontiguousarray(self.identity_basis[:, :k])
        moments = second_moments(basis, self.weight)
        observations = [np.ascontiguousarray(o, dtype=np.float64) for o in observations]
        self.set_identity(np.zeros(k))
        fits = [self.fit_frame(obs, None, l1=cfg.identity_l1) for obs in observations]
        offset = np.zeros_like(self.mean)
        for _ in range(cfg.identity_rounds):
            identity = self.identity
            if k > 0:
                lhs = np.eye(k) * cfg.identity_prior
                rhs = np.zeros(k)
                for obs, fit in zip(observations, fits):
                    p = fit.pose
                    # identity solve = the expression system with the identity basis, targets minus expression
                    pose_part = self.posed_rest(p.rotation) - self.rest
                    rest = _shape(self.mean + offset + pose_part, self.basis, fit.expression)
                    current = _shape(self.rest + pose_part, self.basis, fit.expression)
                    corrected = _perspective_correct(obs, current, p.rotation, p.scale, self.focal)
                    h, g = _expression_system(corrected, p.rotation, p.scale, p.translation, rest, basis, moments, self.weight, cfg.depth_weight)
                    lhs += h
                    rhs += g
                identity = np.linalg.solve(lhs, rhs)
            if cfg.offset_frames is not None:
                self.set_identity(identity)
                residuals = []
                for obs, fit in zip(observations, fits):
                    p = fit.pose
                    current = _shape(self.posed_rest(p.rotation), self.basis, fit.expression)
                    corrected = _perspective_correct(obs, current, p.rotation, p.scale, self.focal)
                    residuals.append((corrected - p.translation) @ p.rotation / p.scale - current)
                n = len(observations)
                offset = np.median(residuals, axis=0) * (n / (n + cfg.offset_frames))
                # keep the offsets free of a rigid motion of the rigid landmarks (that belongs to the pose)
                base = self.rest
                rigid = similarity_transform(base + offset, base, self.pose_weight)
                offset = rigid.scale * (base + offset) @ rigid.rotation.T + rigid.translation - base
            self.set_identity(identity, offset)
            fits = [self.fit_frame(obs, fit, temporal=False, l1=cfg.identity_l1) for obs, fit in zip(observations, fits)]
        fits = [self.fit_frame(obs, fit, temporal=False) for obs, fit in zip(observations, fits)]
        return self.identity, fits

    # ---------------------------------------------------------------- per frame
    def fit_frame(self, obs: np.ndarray, previous: FrameFit | None, temporal: bool = True, l1: float | None = None) -> FrameFit:
        """Pose and expression of one frame.

        Args:
            obs: detected landmarks (image units, y up, z towards the viewer), shape :math:`(L, 3)`.
            previous: the previous frame's fit (warm start and temporal prior), or ``None``.
            temporal: apply the temporal prior towards ``previous`` (else it is only a warm start).
            l1: expression sparsity overriding ``config.expression_l1``.

        Returns:
            the :class:`FrameFit`.
        """
        cfg = self.config
        l1 = cfg.expression_l1 if l1 is None else l1
        obs = np.ascontiguousarray(obs, dtype=np.float64)
        if previous is None:
            expression = np.zeros(self.num_expressions)
            pose = FramePose(*similarity_transform(self.rest, obs, self.pose_weight))
            rot, scale, trans = pose.rotation, pose.scale, pose.translation
            steps = cfg.first_iterations
            prev_w, temporal = expression, 0.0
        else:
            expression = previous.expression.copy()
            rot, scale, trans = previous.pose.rotation, previous.pose.scale, previous.pose.translation
            steps = cfg.iterations
            prev_w, temporal = previous.expression, (cfg.temporal if temporal else 0.0)
        if previous is None:  # a rigid start before the joint steps
            shape = _shape(self.posed_rest(rot), self.basis, expression)
            for _ in range(cfg.pose_iterations):
                rot, scale, trans = _pose_step(obs, shape, rot, scale, trans, self.pose_weight, self.axis_weight, self.focal)
        for _ in range(steps):
            rest, rest_moments = self._posed_rest_and_moments(rot)
            rot, scale, trans, expression = _joint_step(
                obs, rest, self.basis, self.moments, rest_moments, self.basis_sum, rot, scale, trans, expression,
                self.weight, self.axis_weight, cfg.expression_l2, l1, temporal, prev_w, cfg.qp_sweeps, self.focal,
                self.coupling,
            )  # fmt: skip
        shape = _shape(self.posed_rest(rot), self.basis, expression)
        rms = _residual_rms(_perspective_correct(obs, shape, rot, scale, self.focal), shape, rot, scale, trans, self.weight, self.axis_weight)
        return FrameFit(FramePose(rot, float(scale), trans), expression, float(rms))

    def displacement(self, obs: np.ndarray, fit: FrameFit) -> np.ndarray:
        """What the expression moved: the observations in the head frame minus the rest landmarks (cm).

        The perspective is undone at the fitted shape, then ``Rᵀ (P - t) / s - S0(R)`` with the fit's pose
        and the person's rest landmarks at that rotation (pose-dependent detector offsets included).

        Args:
            obs: detected landmarks (image units), shape :math:`(L, 3)`.
            fit: this frame's :class:`FrameFit`.

        Returns:
            shape :math:`(L, 3)`.
        """
        pose = fit.pose
        rest = self.posed_rest(pose.rotation)
        shape = _shape(rest, self.basis, fit.expression)
        corrected = _perspective_correct(np.ascontiguousarray(obs, dtype=np.float64), shape, pose.rotation, pose.scale, self.focal)
        return (corrected - pose.translation) @ pose.rotation / pose.scale - rest

    def _posed_rest_and_moments(self, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`posed_rest` and its moments ``Σ_l ω_l S0_lc B_l[:, d]``, shape (3, 3, E), from precomputed parts."""
        if self.pose_offsets is None:
            return self.rest, self.rest_moments
        features = _pose_features(rotation)
        rest = _add_pose_offsets(self.rest, self.pose_offsets, features)
        moments = self.rest_moments + np.tensordot(features, self.pose_offset_moments, 1)
        return rest, moments

    def posed_rest(self, rotation: np.ndarray) -> np.ndarray:
        """Rest landmarks plus the detector's pose-dependent offsets at this head rotation, shape (L, 3)."""
        if self.pose_offsets is None:
            return self.rest
        return _add_pose_offsets(self.rest, self.pose_offsets, _pose_features(rotation))
