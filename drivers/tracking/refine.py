"""A learned read-out of the landmark fit: per-frame expression weights from what the fit leaves unexplained.

The landmark fit (:mod:`drivers.tracking.landmark_fit`) explains MediaPipe's 478 points with ICT's linear basis
under non-negativity and sparsity priors. Where the basis and the detector disagree — MediaPipe's lips and
brows on a face differ from ICT's shapes, its noise is structured, several shapes move the same points — the
fit spreads the difference over shapes that are not there: on held-out synthetic clips it rests at jawOpen ≈ 0.08
and browDown ≈ 0.1 on closed, relaxed faces. Google's blendshape model solves the same problem by learning a
read-out from landmarks; this module does the same on top of the fit.

:class:`WeightRefiner` is a linear read-out (ridge regression on standardised features, clipped to [0, 1])
trained on synthetic ground truth (rendered ICT heads, MediaPipe in video mode, this tracker:
``scripts/train_weight_refiner.py``). Linear on purpose: a two-layer network trained on the same data was three
times more accurate on held-out renders but agreed *less* with Google's blendshapes on real faces than the fit
itself (docs/DECISIONS.md); the linear read-out keeps most of the synthetic gain and transfers. Its input per
frame:

- the observed landmarks in the head frame, minus the person's rest landmarks at the fitted rotation
  (``displacement``, cm, :math:`(478, 3)`): what the expression moved, with pose and identity taken out;
- the fit's own weights :math:`(53,)`, its head rotation (axis-angle, rad, :math:`(3,)`), one over the
  number of frames the identity was fitted on (a photo's identity holds part of its expression), and
  piecewise-linear terms of the fit's weights (:data:`KNOTS`).

It outputs the 53 weights in [0, 1]. One numpy matrix-vector product (0.12 ms per frame with the features), run
under the tracker's single-threaded BLAS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR

REFINER_FILE = ASSETS_DIR / "landmarks" / "weight_refiner.safetensors"
#: Knots of the piecewise-linear terms ``max(w - k, 0)`` of the fit's weights: a linear map of them is a
#: calibration curve per shape (the fit's noise floor, clipped at zero, needs a bend the plain weights lack).
KNOTS = (0.05, 0.15, 0.3, 0.5)


def refiner_features(displacement: np.ndarray, weights: np.ndarray, rotation: np.ndarray, identity_frames: int) -> np.ndarray:
    """The refiner's input vector.

    Args:
        displacement: observed minus rest landmarks in the head frame (cm), shape :math:`(L, 3)`.
        weights: the landmark fit's expression weights, shape :math:`(E,)`.
        rotation: the fit's head rotation, axis-angle (rad), shape :math:`(3,)`.
        identity_frames: how many frames the person's identity was fitted on (1 for a photo, or a live
            stream that starts at once: the identity then holds part of that frame's expression).

    Returns:
        shape :math:`(` :func:`num_features` :math:`,)` float32.
    """
    weights = np.asarray(weights, np.float32)
    clipped = np.clip(weights, 0.0, 1.0)
    return np.concatenate([np.asarray(displacement, np.float32).reshape(-1), weights,
                           np.asarray(rotation, np.float32).reshape(3), np.array([1.0 / max(1, identity_frames)], np.float32),
                           *(np.maximum(clipped - knot, 0.0) for knot in KNOTS)])


def num_features(num_landmarks: int, num_expressions: int) -> int:
    """Length of :func:`refiner_features`' vector; the fit's weights are its entries ``3L … 3L + E``."""
    return 3 * num_landmarks + num_expressions + 4 + len(KNOTS) * num_expressions


@dataclass(frozen=True)
class WeightRefiner:
    """Landmark fit → expression weights: ``clip(W (x - mean) / scale + b, 0, 1)`` (see the module docstring).

    Attributes:
        mean: feature mean, shape :math:`(F,)`.
        scale: feature standard deviation, shape :math:`(F,)`.
        weight: shape :math:`(E, F)`.
        bias: shape :math:`(E,)`.
    """

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    @property
    def num_features(self) -> int:
        return int(self.mean.shape[0])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Weights in [0, 1] for features :math:`(F,)` or a batch :math:`(N, F)`; returns :math:`(E,)` / :math:`(N, E)`."""
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        return np.clip(x @ self.weight.T + self.bias, 0.0, 1.0)

    def tensors(self) -> dict[str, np.ndarray]:
        """The arrays as stored (safetensors names)."""
        out = {"feature_mean": self.mean, "feature_scale": self.scale, "weight": self.weight, "bias": self.bias}
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def read_weight_refiner(path: str | Path) -> WeightRefiner:
    """Load a refiner written by :meth:`WeightRefiner.tensors` (``safetensors.numpy``)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
        return WeightRefiner(*(arrays[k].astype(np.float32) for k in ("feature_mean", "feature_scale", "weight", "bias")))
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise AvatarInputError(f"weight refiner {path} is unreadable ({exc}); rebuild it with scripts/train_weight_refiner.py") from exc


@lru_cache(maxsize=1)
def load_weight_refiner() -> WeightRefiner | None:
    """The shipped refiner, or ``None`` when ``assets/landmarks/weight_refiner.safetensors`` is absent."""
    return read_weight_refiner(REFINER_FILE) if REFINER_FILE.is_file() else None

