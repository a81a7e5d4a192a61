"""Listener evaluation: DIM's protocol, the three baselines, and responsiveness.

The quality metrics follow the evaluation code of DIM (Tran et al. 2024, "Dyadic Interaction
Modeling for Social Behavior Generation", ECCV; repository ``Boese0601/Dyadic-Interaction-Modeling``,
``code/mymetrics.py`` and ``code/metrics/eval_utils.py``), which L2L-style listener papers share.
Our own implementation, with the same definitions, on our listener codes (53 expression weights
= "exp", 6 head-pose numbers = "pose", see :mod:`drivers.listener`):

- **FD** (per clip): Fréchet distance between the Gaussian statistics (mean, unbiased covariance)
  of the ground-truth and the generated frames of each clip, averaged over clips.
- **P-FD** (paired FD): the same on the frame-wise concatenation ``speaker ‖ listener``, so the
  speaker–listener relation is judged, not just the listener's marginal distribution.
- **MSE**: mean squared error to the ground truth per clip, averaged over clips.
- **SID** (SI-diversity): k-means (``k = 40`` for exp, ``20`` for pose, ``random_state = 0``) fitted
  on all ground-truth frames; the entropy (bits) of the histogram of cluster assignments of the
  generated frames, ``-Σ h log2(h + 1e-6)``.
- **Var**: the variance of all values of all frames (DIM's ``np.var`` over the flattened array —
  this includes the spread between dimensions, not only over time).
- **rPCC**: ``|PCC(gt, speaker) - PCC(generated, speaker)|`` with Pearson's correlation over the
  flattened frames of all clips: how far the generated speaker–listener correlation is from the
  real one.

DIM groups its 64-frame windows by source video before computing per-clip statistics; callers
pass whole clips (lists of ``(T_i, D)`` arrays) here.

Baselines (computed in the same run by ``scripts/eval_listener.py``): a random training clip,
nearest-neighbour retrieval on speaker features (as in DIM's ``code/baselines.py``: cosine
similarity of window-mean descriptors), and mirroring the speaker.

Responsiveness: the share of speaker pauses (:func:`drivers.listener.cues.speech_pause_onsets`)
followed by a listener nod (:func:`drivers.listener.events.detect_nods`, on head-pitch velocity) within 1 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM, EXPRESSION_SLICE, POSE_SLICE, ROTATION_SLICE, motion_to_codes
from avatar.core.errors import AvatarInputError
from avatar.core.motion import Motion
from drivers.listener.cues import SpeakerCues, frame_speaking, speech_pause_onsets
from drivers.listener.events import detect_nods

#: k-means clusters of SI-diversity (DIM's ``calcuate_sid``).
SID_CLUSTERS = {"exp": 40, "pose": 20}


def _as_clips(clips: Sequence, name: str) -> list[torch.Tensor]:
    out = []
    for i, clip in enumerate(clips):
        tensor = torch.as_tensor(np.asarray(clip) if not isinstance(clip, torch.Tensor) else clip).double()
        if tensor.ndim != 2:
            raise AvatarInputError(f"{name}[{i}] must be a (T, D) array, got shape {tuple(tensor.shape)}")
        out.append(tensor)
    if not out:
        raise AvatarInputError(f"{name} holds no clips")
    return out


def _check_pairs(a: list[torch.Tensor], b: list[torch.Tensor], names: tuple[str, str]) -> None:
    if len(a) != len(b):
        raise AvatarInputError(f"{names[0]} has {len(a)} clips but {names[1]} has {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            raise AvatarInputError(f"clip {i}: {names[0]} is {tuple(x.shape)} but {names[1]} is {tuple(y.shape)}")


# ----------------------------------------------------------------------------------------------
# Fréchet distance


def gaussian_statistics(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of frames (``np.cov(x, rowvar=False)``).

    Args:
        frames: :math:`(N, D)` with ``N >= 2``.

    Returns:
        mean :math:`(D,)` and covariance :math:`(D, D)`, float64.
    """
    frames = torch.as_tensor(frames).double()
    if frames.ndim != 2 or frames.shape[0] < 2:
        raise AvatarInputError(f"Gaussian statistics need a (N >= 2, D) array, got {tuple(frames.shape)}")
    mean = frames.mean(dim=0)
    centred = frames - mean
    return mean, centred.T @ centred / (frames.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0.0).sqrt()) @ vectors.T


def frechet_distance_from_statistics(mean1, cov1, mean2, cov2) -> float:
    """Fréchet distance of two Gaussians: ``|μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½)``.

    ``tr (Σ1 Σ2)^½`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric ``Σ1^½ Σ2 Σ1^½`` (similar to ``Σ1 Σ2``), which is exact for singular covariances and
    needs no ``eps`` retry (cf. ``scipy.linalg.sqrtm`` in the reference code).

    Args:
        mean1, mean2: :math:`(D,)`.
        cov1, cov2: :math:`(D, D)` positive semi-definite.

    Returns:
        the distance (>= 0, up to rounding).
    """
    from threadpoolctl import threadpool_limits

    mean1, mean2, cov1, cov2 = (torch.as_tensor(x).double() for x in (mean1, mean2, cov1, cov2))
    # one thread: LAPACK on these small matrices is ~1000x slower when its workers compete for cores
    with threadpool_limits(1):
        root1 = _psd_sqrt(cov1)
        middle = root1 @ cov2 @ root1
        trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0.0).sqrt().sum()
    diff = mean1 - mean2
    return float(diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2.0 * trace_sqrt)


def frechet_distance(real: torch.Tensor, generated: torch.Tensor) -> float:
    """Fréchet distance between the Gaussian statistics of two sets of frames.

    Args:
        real: :math:`(N, D)`, ``N >= 2``.
        generated: :math:`(M, D)`, ``M >= 2``.

    Returns:
        FD (0 for identical sets).

    Example:
        >>> x = torch.randn(100, 4)
        >>> round(frechet_distance(x, x), 6)
        0.0
    """
    return frechet_distance_from_statistics(*gaussian_statistics(real), *gaussian_statistics(generated))


def per_clip_fd(real: Sequence, generated: Sequence) -> float:
    """Mean over clips of :func:`frechet_distance` (DIM's ``fid_exp`` / ``fid_pose``).

    Args:
        real, generated: lists of :math:`(T_i, D)` clips (``T_i >= 2``), paired by index.
    """
    real, generated = _as_clips(real, "real"), _as_clips(generated, "generated")
    _check_pairs(real, generated, ("real", "generated"))
    return float(np.mean([frechet_distance(r, g) for r, g in zip(real, generated)]))


def paired_fd(speaker: Sequence, real: Sequence, generated: Sequence) -> float:
    """Mean over clips of the FD of ``speaker ‖ listener`` frames (DIM's ``pfid``).

    Args:
        speaker: list of :math:`(T_i, D_s)` speaker clips.
        real, generated: lists of :math:`(T_i, D)` listener clips.
    """
    speaker = _as_clips(speaker, "speaker")
    real, generated = _as_clips(real, "real"), _as_clips(generated, "generated")
    _check_pairs(real, generated, ("real", "generated"))
    if len(speaker) != len(real) or any(s.shape[0] != r.shape[0] for s, r in zip(speaker, real)):
        raise AvatarInputError("speaker and listener clips must have the same number of frames")
    return float(np.mean([frechet_distance(torch.cat([s, r], 1), torch.cat([s, g], 1))
                          for s, r, g in zip(speaker, real, generated)]))


def mean_squared_error(real: Sequence, generated: Sequence) -> float:
    """Mean over clips of the per-clip mean squared error."""
    real, generated = _as_clips(real, "real"), _as_clips(generated, "generated")
    _check_pairs(real, generated, ("real", "generated"))
    return float(np.mean([float(((r - g) ** 2).mean()) for r, g in zip(real, generated)]))


# ----------------------------------------------------------------------------------------------
# Diversity, variance, correlation


def fit_clusters(real: Sequence, num_clusters: int, seed: int = 0):
    """k-means on all real frames (scikit-learn ``KMeans(n_init="auto", random_state=seed)``)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    frames = torch.cat(_as_clips(real, "real")).numpy()
    if frames.shape[0] < num_clusters:
        raise AvatarInputError(f"SI-diversity with {num_clusters} clusters needs at least that many "
                               f"ground-truth frames, got {frames.shape[0]}")
    # one thread: these fits are small, and OpenMP workers on a busy 2-core machine cost 10x more
    with threadpool_limits(1):
        return KMeans(n_clusters=num_clusters, random_state=seed, n_init="auto").fit(frames)


def si_diversity(real: Sequence, generated: Sequence, num_clusters: int, seed: int = 0, clusters=None) -> float:
    """SI-diversity: entropy (bits) of the generated frames' k-means cluster histogram.

    Args:
        real: list of :math:`(T_i, D)` ground-truth clips (the k-means is fitted on them).
        generated: list of :math:`(T_j, D)` clips to score.
        num_clusters: k (40 for expression, 20 for pose in DIM).
        seed: k-means ``random_state``.
        clusters: a fitted k-means to reuse (from :func:`fit_clusters`).

    Returns:
        ``-Σ h log2(h + 1e-6)``, at most ``log2(k)``.
    """
    model = clusters if clusters is not None else fit_clusters(real, num_clusters, seed)
    from threadpoolctl import threadpool_limits

    frames = torch.cat(_as_clips(generated, "generated")).numpy()
    with threadpool_limits(1):
        labels = model.predict(frames)
    histogram = np.bincount(labels, minlength=model.n_clusters).astype(np.float64)
    histogram /= histogram.sum()
    return float(-(histogram * np.log2(histogram + 1e-6)).sum())


def flat_variance(clips: Sequence) -> float:
    """Variance of all values of all frames (DIM's ``np.var(x.reshape(-1))``)."""
    return float(torch.cat(_as_clips(clips, "clips")).flatten().var(unbiased=False))


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = float(torch.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / denominator if denominator > 0 else float("nan")


def rpcc(speaker: Sequence, real: Sequence, generated: Sequence) -> float:
    """Residual PCC: ``|PCC(real, speaker) - PCC(generated, speaker)|`` over all flattened frames.

    The speaker clips must have the listener's columns (e.g. speaker expression vs listener
    expression). NaN when either correlation is undefined (a constant input, such as an
    audio-only speaker without visual cues).
    """
    speaker = torch.cat(_as_clips(speaker, "speaker")).flatten()
    real = torch.cat(_as_clips(real, "real")).flatten()
    generated = torch.cat(_as_clips(generated, "generated")).flatten()
    if not speaker.shape == real.shape == generated.shape:
        raise AvatarInputError("rPCC needs speaker, real and generated clips of the same shapes")
    return abs(_pearson(real, speaker) - _pearson(generated, speaker))


# ----------------------------------------------------------------------------------------------
# The whole protocol


def speaker_codes(cues: SpeakerCues) -> torch.Tensor:
    """The speaker's visual cues in the listener-code layout: :math:`(T, 59)` (zeros without a face)."""
    visible = cues.face_visible[:, None].float()
    return torch.cat([cues.expression_weights, cues.head_rotation, cues.head_translation], 1) * visible


def evaluate_listener(speaker: Sequence, real: Sequence, generated: Sequence, *, seed: int = 0,
                      clusters: dict | None = None) -> dict[str, float]:
    """DIM's metrics for expression (columns 0:53) and pose (53:59) of listener codes.

    Args:
        speaker: list of :math:`(T_i, 59)` speaker codes (:func:`speaker_codes`).
        real: list of :math:`(T_i, 59)` ground-truth listener codes.
        generated: list of :math:`(T_i, 59)` generated listener codes.
        seed: k-means seed.
        clusters: ``{"exp": kmeans, "pose": kmeans}`` fitted on ``real`` (to share between methods).

    Returns:
        ``fd_exp, pfd_exp, mse_exp, sid_exp, var_exp, rpcc_exp`` and the same with ``_pose``.
    """
    speaker, real, generated = (_as_clips(c, n) for c, n in ((speaker, "speaker"), (real, "real"),
                                                             (generated, "generated")))
    for clips, name in ((speaker, "speaker"), (real, "real"), (generated, "generated")):
        if any(c.shape[1] != CODE_DIM for c in clips):
            raise AvatarInputError(f"{name} clips must be listener codes with {CODE_DIM} columns")
    clusters = clusters or {}
    result = {}
    for part, columns in (("exp", EXPRESSION_SLICE), ("pose", POSE_SLICE)):
        s = [c[:, columns] for c in speaker]
        r = [c[:, columns] for c in real]
        g = [c[:, columns] for c in generated]
        result[f"fd_{part}"] = per_clip_fd(r, g)
        result[f"pfd_{part}"] = paired_fd(s, r, g)
        result[f"mse_{part}"] = mean_squared_error(r, g)
        result[f"sid_{part}"] = si_diversity(r, g, SID_CLUSTERS[part], seed, clusters.get(part))
        result[f"var_{part}"] = flat_variance(g)
        result[f"rpcc_{part}"] = rpcc(s, r, g)
    return result


def ground_truth_reference(real: Sequence, *, seed: int = 0, clusters: dict | None = None) -> dict[str, float]:
    """SID and Var of the ground truth itself (the targets SID/Var are compared with)."""
    real = _as_clips(real, "real")
    clusters = clusters or {}
    result = {}
    for part, columns in (("exp", EXPRESSION_SLICE), ("pose", POSE_SLICE)):
        r = [c[:, columns] for c in real]
        result[f"sid_{part}"] = si_diversity(r, r, SID_CLUSTERS[part], seed, clusters.get(part))
        result[f"var_{part}"] = flat_variance(r)
    return result


def fit_reference_clusters(real: Sequence, seed: int = 0) -> dict:
    """The exp and pose k-means of the ground truth, to share across methods in one run."""
    real = _as_clips(real, "real")
    return {part: fit_clusters([c[:, columns] for c in real], SID_CLUSTERS[part], seed)
            for part, columns in (("exp", EXPRESSION_SLICE), ("pose", POSE_SLICE))}


# ----------------------------------------------------------------------------------------------
# Baselines


def _take(clip: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``length`` frames of ``clip`` from ``start``, wrapping around."""
    index = (start + torch.arange(length)) % clip.shape[0]
    return clip[index]


def random_clip_baseline(train_listener: Sequence, lengths: Sequence[int], *, window: int = 64,
                         seed: int = 0) -> list[torch.Tensor]:
    """Random-training-clip baseline: each test clip is filled with random training windows.

    Args:
        train_listener: list of :math:`(T_j, D)` training listener codes.
        lengths: frames of each test clip.
        window: frames per drawn window (64, as L2L/DIM).
        seed: random seed.

    Returns:
        list of :math:`(T_i, D)` float32 clips.
    """
    train = _as_clips(train_listener, "train_listener")
    rng = np.random.default_rng(seed)
    out = []
    for length in lengths:
        pieces, filled = [], 0
        while filled < length:
            clip = train[int(rng.integers(len(train)))]
            size = min(window, length - filled)
            pieces.append(_take(clip, int(rng.integers(clip.shape[0])), size))
            filled += size
        out.append(torch.cat(pieces).float())
    return out


def _window_descriptors(features: list[torch.Tensor], window: int, mean, std):
    """Mean standardised feature per window (stride ``window``); returns descriptors and (clip, start)."""
    descriptors, where = [], []
    for index, clip in enumerate(features):
        starts = range(0, max(clip.shape[0] - window, 0) + 1, window)
        for start in starts:
            piece = (clip[start:start + window] - mean) / std
            descriptors.append(piece.mean(dim=0))
            where.append((index, start))
    return torch.stack(descriptors), where


def nearest_neighbour_baseline(train_speaker: Sequence, train_listener: Sequence, test_speaker: Sequence, *,
                               window: int = 64) -> list[torch.Tensor]:
    """Nearest-neighbour retrieval on speaker features (DIM's ``code/baselines.py``, motion variant).

    Every test clip is cut into windows; each window's descriptor (the mean of its standardised
    speaker features) retrieves the training window with the highest cosine similarity, whose
    listener codes are returned. It sees each whole test window, so it is not causal.

    Args:
        train_speaker: list of :math:`(T_j, F)` training speaker features (e.g. cue matrices).
        train_listener: list of :math:`(T_j, D)` training listener codes, paired with them.
        test_speaker: list of :math:`(T_i, F)` test speaker features.
        window: frames per window.

    Returns:
        list of :math:`(T_i, D)` float32 clips.
    """
    train_speaker = _as_clips(train_speaker, "train_speaker")
    train_listener = _as_clips(train_listener, "train_listener")
    test_speaker = _as_clips(test_speaker, "test_speaker")
    if len(train_speaker) != len(train_listener) or any(
            s.shape[0] != l.shape[0] for s, l in zip(train_speaker, train_listener)):
        raise AvatarInputError("train_speaker and train_listener must pair clips of equal length")
    frames = torch.cat(train_speaker)
    mean, std = frames.mean(0), frames.std(0).clamp_min(1e-6)
    bank, where = _window_descriptors(train_speaker, window, mean, std)
    bank = torch.nn.functional.normalize(bank, dim=1)
    out = []
    for clip in test_speaker:
        pieces = []
        for start in range(0, clip.shape[0], window):
            piece = (clip[start:start + window] - mean) / std
            query = torch.nn.functional.normalize(piece.mean(0), dim=0)
            best = int(torch.argmax(bank @ query))
            index, source = where[best]
            pieces.append(_take(train_listener[index], source, piece.shape[0]))
        out.append(torch.cat(pieces).float())
    return out


def mirror_baseline(test_speaker_codes: Sequence) -> list[torch.Tensor]:
    """Mirror-the-speaker baseline: the listener copies the speaker's tracked codes frame by frame.

    Args:
        test_speaker_codes: list of :math:`(T_i, 59)` speaker codes (:func:`speaker_codes`;
            zeros for audio-only speakers).

    Returns:
        the same clips as float32.
    """
    return [clip.float().clone() for clip in _as_clips(test_speaker_codes, "test_speaker_codes")]


# ----------------------------------------------------------------------------------------------
# Responsiveness


@dataclass(frozen=True)
class Responsiveness:
    """Share of speaker pauses answered by a nod within the window.

    Attributes:
        share: answered / pauses (NaN when there is no pause to answer).
        pauses: pauses that could be judged (their whole window lies inside the clip).
        answered: pauses with a nod starting within the window.
        nods: nods detected in the whole clip.
    """

    share: float
    pauses: int
    answered: int
    nods: int


def responsiveness(listener, cues: SpeakerCues, *, window_s: float = 1.0, min_pause_s: float = 0.2,
                   min_speech_s: float = 1.0) -> Responsiveness:
    """Share of speaker pauses followed by a listener nod within ``window_s``.

    Args:
        listener: :class:`~avatar.core.motion.Motion` or :math:`(T, 59)` listener codes.
        cues: the speaker's :class:`SpeakerCues` (same ``T``).
        window_s: a nod must start within this long after the pause starts.
        min_pause_s, min_speech_s: pause definition (:func:`~drivers.listener.cues.speech_pause_onsets`).

    Returns:
        :class:`Responsiveness`.
    """
    codes = motion_to_codes(listener) if isinstance(listener, Motion) else torch.as_tensor(listener)
    if codes.ndim != 2 or codes.shape[1] != CODE_DIM or codes.shape[0] != len(cues):
        raise AvatarInputError(f"listener codes must be T x {CODE_DIM} with T = {len(cues)} (the cues' frames), "
                               f"got {tuple(codes.shape)}")
    fps = cues.fps
    nods = detect_nods(codes[:, ROTATION_SLICE], fps)
    window = int(round(window_s * fps))
    onsets = [o for o in speech_pause_onsets(frame_speaking(cues), fps, min_pause_s, min_speech_s)
              if o + window < len(cues)]
    answered = sum(any(o <= nod.onset <= o + window for nod in nods) for o in onsets)
    share = answered / len(onsets) if onsets else float("nan")
    return Responsiveness(share, len(onsets), answered, len(nods))


__all__ = [
    "Responsiveness", "SID_CLUSTERS", "evaluate_listener", "fit_clusters",
    "fit_reference_clusters", "flat_variance", "frechet_distance", "frechet_distance_from_statistics",
    "gaussian_statistics", "ground_truth_reference", "mean_squared_error", "mirror_baseline",
    "nearest_neighbour_baseline", "paired_fd", "per_clip_fd", "random_clip_baseline", "responsiveness",
    "rpcc", "si_diversity", "speaker_codes",
]
