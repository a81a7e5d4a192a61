"""Identity and expression codes: samplers for training data and validation of user codes.

* ``z_geo`` — identity geometry code, shape ``(B, 100)``, aligned with ICT's variance-scaled PCA
  identity weights (draw from N(0, 1)).
* ``expr`` — the 53 ICT expression weights in ICT order (:mod:`avatar.core.expressions`), range [0, 1].
  Weights outside [0, 1] are **clamped with a warning** (trackers overshoot slightly); NaN/inf and
  wrong sizes are rejected with :class:`AvatarInputError`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from avatar.core.errors import AvatarInputError

# Realistic, sparse combinations: facial actions that co-occur (FACS-style groups), named by the
# ARKit shapes they drive. Each entry: shape name → (low, high) weight range when the action is on.
EXPRESSION_ACTIONS: dict[str, dict[str, tuple[float, float]]] = {
    "smile": {"mouthSmile_L": (0.4, 1.0), "mouthSmile_R": (0.4, 1.0), "cheekSquint_L": (0.0, 0.6),
              "cheekSquint_R": (0.0, 0.6), "eyeSquint_L": (0.0, 0.4), "eyeSquint_R": (0.0, 0.4)},
    "smirk_L": {"mouthSmile_L": (0.3, 0.9), "mouthDimple_L": (0.0, 0.6), "mouthLeft": (0.0, 0.3)},
    "smirk_R": {"mouthSmile_R": (0.3, 0.9), "mouthDimple_R": (0.0, 0.6), "mouthRight": (0.0, 0.3)},
    "surprise": {"browInnerUp_L": (0.4, 1.0), "browInnerUp_R": (0.4, 1.0), "browOuterUp_L": (0.3, 1.0),
                 "browOuterUp_R": (0.3, 1.0), "eyeWide_L": (0.2, 0.9), "eyeWide_R": (0.2, 0.9),
                 "jawOpen": (0.0, 0.6)},
    "frown": {"browDown_L": (0.3, 1.0), "browDown_R": (0.3, 1.0), "mouthFrown_L": (0.0, 0.8),
              "mouthFrown_R": (0.0, 0.8), "mouthPress_L": (0.0, 0.5), "mouthPress_R": (0.0, 0.5)},
    "sad": {"browInnerUp_L": (0.3, 0.9), "browInnerUp_R": (0.3, 0.9), "mouthFrown_L": (0.3, 1.0),
            "mouthFrown_R": (0.3, 1.0), "mouthShrugLower": (0.0, 0.6)},
    "disgust": {"noseSneer_L": (0.3, 1.0), "noseSneer_R": (0.3, 1.0), "mouthUpperUp_L": (0.0, 0.7),
                "mouthUpperUp_R": (0.0, 0.7), "browDown_L": (0.0, 0.5), "browDown_R": (0.0, 0.5)},
    "blink": {"eyeBlink_L": (0.5, 1.0), "eyeBlink_R": (0.5, 1.0)},
    "wink_L": {"eyeBlink_L": (0.6, 1.0), "cheekSquint_L": (0.0, 0.5)},
    "wink_R": {"eyeBlink_R": (0.6, 1.0), "cheekSquint_R": (0.0, 0.5)},
    "gaze": {"eyeLookUp_L": (0.0, 0.8), "eyeLookUp_R": (0.0, 0.8), "eyeLookDown_L": (0.0, 0.5),
             "eyeLookDown_R": (0.0, 0.5)},
    "gaze_side_L": {"eyeLookOut_L": (0.2, 1.0), "eyeLookIn_R": (0.2, 1.0)},
    "gaze_side_R": {"eyeLookOut_R": (0.2, 1.0), "eyeLookIn_L": (0.2, 1.0)},
    "talk_open": {"jawOpen": (0.1, 0.7), "mouthLowerDown_L": (0.0, 0.6), "mouthLowerDown_R": (0.0, 0.6),
                  "mouthUpperUp_L": (0.0, 0.3), "mouthUpperUp_R": (0.0, 0.3)},
    "talk_round": {"mouthFunnel": (0.2, 0.9), "mouthPucker": (0.0, 0.8), "jawOpen": (0.0, 0.3)},
    "talk_closed": {"mouthClose": (0.0, 0.4), "mouthPress_L": (0.2, 0.8), "mouthPress_R": (0.2, 0.8),
                    "mouthRollLower": (0.0, 0.6), "mouthRollUpper": (0.0, 0.5)},
    "stretch": {"mouthStretch_L": (0.3, 1.0), "mouthStretch_R": (0.3, 1.0), "jawOpen": (0.0, 0.4)},
    "jaw_side": {"jawLeft": (0.0, 0.8), "jawRight": (0.0, 0.8), "jawForward": (0.0, 0.6)},
    "mouth_side": {"mouthLeft": (0.0, 0.9), "mouthRight": (0.0, 0.9)},
    "puff": {"cheekPuff_L": (0.4, 1.0), "cheekPuff_R": (0.4, 1.0), "mouthClose": (0.0, 0.3)},
    "shrug": {"mouthShrugUpper": (0.2, 1.0), "mouthShrugLower": (0.2, 1.0), "mouthRollLower": (0.0, 0.4)},
    "brow_raise": {"browOuterUp_L": (0.3, 1.0), "browOuterUp_R": (0.3, 1.0)},
}


def sample_identity_codes(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """ICT identity weights from their natural range N(0, 1), shape :math:`(count, dim)` float32."""
    return rng.standard_normal((count, dim)).astype(np.float32)


def sample_expression_codes(
    count: int, names: tuple[str, ...] | list[str], rng: np.random.Generator, neutral_fraction: float = 0.05
) -> tuple[np.ndarray, list[str]]:
    """Sparse, realistic expression weight vectors: 1–3 co-occurring facial actions, some single shapes.

    Args:
        count: number of vectors.
        names: the 53 expression names (ICT order).
        rng: random generator.
        neutral_fraction: share of all-zero (neutral) vectors.

    Returns:
        weights, shape :math:`(count, 53)` float32 in [0, 1]; a label per vector (the actions used).
    """
    index = {n: i for i, n in enumerate(names)}
    actions = list(EXPRESSION_ACTIONS)
    out = np.zeros((count, len(names)), dtype=np.float32)
    labels = []
    for row in range(count):
        u = rng.random()
        if u < neutral_fraction:
            labels.append("neutral")
            continue
        if u < neutral_fraction + 0.1:  # a single shape, full range
            j = int(rng.integers(len(names)))
            out[row, j] = rng.uniform(0.3, 1.0)
            labels.append(names[j])
            continue
        chosen = rng.choice(len(actions), size=int(rng.integers(1, 4)), replace=False)
        for a in chosen:
            for shape, (lo, hi) in EXPRESSION_ACTIONS[actions[a]].items():
                w = rng.uniform(lo, hi)
                out[row, index[shape]] = max(out[row, index[shape]], w)
        labels.append("+".join(actions[a] for a in sorted(chosen)))
    return np.clip(out, 0.0, 1.0), labels


def check_codes(
    z_geo: torch.Tensor | np.ndarray | None,
    expr: torch.Tensor | np.ndarray | None,
    geo_dim: int,
    expr_dim: int = 53,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and batch codes; clamp expression weights into [0, 1] with a warning.

    Args:
        z_geo: identity code, shape :math:`(B, D_{geo})` or :math:`(D_{geo},)`; ``None`` = zeros.
        expr: expression weights, shape :math:`(B, 53)` or :math:`(53,)`; ``None`` = neutral.
        geo_dim: expected identity code size.
        expr_dim: expected expression code size.

    Returns:
        z_geo, shape :math:`(B, D_{geo})`; expr, shape :math:`(B, 53)` (float32, broadcast to one B).

    Raises:
        AvatarInputError: wrong sizes, non-finite values, or batch sizes that do not broadcast.
    """
    def as_2d(x, dim, name):
        if x is None:
            return torch.zeros(1, dim)
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != dim:
            raise AvatarInputError(f"{name} must have shape (B, {dim}) or ({dim},), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise AvatarInputError(f"{name} contains NaN or infinite values; pass finite numbers")
        return x

    z = as_2d(z_geo, geo_dim, "z_geo")
    w = as_2d(expr, expr_dim, "expression weights")
    if w.min() < 0 or w.max() > 1:
        warnings.warn(
            f"expression weights outside [0, 1] (min {w.min().item():.3f}, max {w.max().item():.3f}) were clamped",
            stacklevel=3,
        )
        w = w.clamp(0.0, 1.0)
    if z.shape[0] != w.shape[0]:
        if z.shape[0] == 1:
            z = z.expand(w.shape[0], -1)
        elif w.shape[0] == 1:
            w = w.expand(z.shape[0], -1)
        else:
            raise AvatarInputError(f"z_geo batch {z.shape[0]} and expression batch {w.shape[0]} differ")
    return z.contiguous(), w.contiguous()
