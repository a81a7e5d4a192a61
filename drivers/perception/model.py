"""The perception model: ARKit-style weights → action units → emotion, compound, open-set, valence/arousal.

Two learned linear maps, both shipped in ``assets/perception`` and fitted by ``scripts/train_perception.py``
on SynFER-style renders read back through this stage's own front end:

1. **AUs** (:meth:`PerceptionModel.action_units`): ``au = clip(A [w; r; 1], 0, 5)`` with ``w`` the 53
   tracked weights and ``r`` the head rotation (pitch is confused with brow motion by landmark trackers, so
   the map may correct for it). ``A`` starts from the published ARKit↔FACS correspondence
   (:func:`drivers.perception.facs.correspondence_matrix`) and is fitted by ridge regression *towards* it.
2. **Emotions** (:meth:`PerceptionModel.classify`): a softmax over the 8 emotions and ``other`` (a
   non-prototypical face), linear in the AU intensities — so each decision is a sum of AU contributions and
   ``because`` lists the AUs that pushed the winning class up most (AU-guided, interpretable FER).
   Compounds aggregate pairs of basic probabilities (``sqrt(p_a p_b)``, the ABAW pair-wise scheme);
   ``unknown_score = 1 − max_c p_c`` over the 8 known classes; valence/arousal is the probability-weighted
   circumplex position of the classes (:data:`drivers.perception.facs.CIRCUMPLEX`).

Everything here is NumPy on one face at a time (microseconds), so the stream's latency is the tracker's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR
from drivers.perception.facs import AU_CHANNELS, CIRCUMPLEX, COMPOUNDS, EMOTIONS, MAX_INTENSITY, NUM_CHANNELS

MODEL_DIR = ASSETS_DIR / "perception"
CLASSES: tuple[str, ...] = (*EMOTIONS, "other")
#: AUs listed under ``because``: at most this many, each contributing at least ``BECAUSE_MIN`` logits
BECAUSE_MAX, BECAUSE_MIN = 4, 0.25


@dataclass(frozen=True)
class Decision:
    """One face's reading (before temporal voting).

    Attributes:
        probabilities: over :data:`CLASSES` (8 emotions + ``other``), shape :math:`(9,)`.
        contributions: logit contribution of each AU channel to each class, shape :math:`(9, C)`.
    """

    probabilities: np.ndarray
    contributions: np.ndarray


class PerceptionModel:
    """The shipped AU map and emotion head (see the module docstring).

    Args:
        au_map: ``A``, shape :math:`(C, 53 + 3 + 1)`.
        weight: emotion head weights over AU intensities / 5, shape :math:`(9, C)`.
        bias: emotion head bias, shape :math:`(9,)`.
        config: thresholds — ``unknown_threshold`` (unknown_score above it = unknown),
            ``compound_threshold`` (the second emotion's probability from which a compound is named).
    """

    def __init__(self, au_map: np.ndarray, weight: np.ndarray, bias: np.ndarray, config: dict):
        if au_map.shape[0] != NUM_CHANNELS or weight.shape != (len(CLASSES), NUM_CHANNELS):
            raise AvatarInputError("the perception model does not match this version's AU channels; rebuild it")
        self.au_map = np.asarray(au_map, np.float64)
        self.weight = np.asarray(weight, np.float64)
        self.bias = np.asarray(bias, np.float64)
        self.config = dict(config)
        self.unknown_threshold = float(config.get("unknown_threshold", 0.6))
        self.compound_threshold = float(config.get("compound_threshold", 0.25))
        self._circumplex = np.array([CIRCUMPLEX[e] for e in EMOTIONS])
        self._pairs = [(EMOTIONS.index(a), EMOTIONS.index(b)) for a, b in COMPOUNDS.values()]

    # ------------------------------------------------------------------ maps
    def action_units(self, weights: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """AU channel intensities in [0, 5].

        Args:
            weights: tracked expression weights (ICT order), shape :math:`(..., 53)`.
            rotation: head rotation (axis-angle, rad), shape :math:`(..., 3)`.

        Returns:
            intensities, shape :math:`(..., C)`.
        """
        weights, rotation = np.asarray(weights, np.float64), np.asarray(rotation, np.float64)
        x = np.concatenate([weights, rotation, np.ones(weights.shape[:-1] + (1,))], -1)
        return np.clip(x @ self.au_map.T, 0.0, MAX_INTENSITY)

    def classify(self, channels: np.ndarray) -> Decision:
        """Class probabilities and per-AU contributions for one face, channels :math:`(C,)` in [0, 5]."""
        x = np.asarray(channels, np.float64) / MAX_INTENSITY
        contributions = self.weight * x
        logits = contributions.sum(1) + self.bias
        p = np.exp(logits - logits.max())
        return Decision(p / p.sum(), contributions)

    def probabilities(self, channels: np.ndarray) -> np.ndarray:
        """Batched class probabilities, channels :math:`(N, C)` → :math:`(N, 9)`."""
        logits = np.asarray(channels, np.float64) / MAX_INTENSITY @ self.weight.T + self.bias
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(-1, keepdims=True)

    # ------------------------------------------------------------------ readings
    def because(self, decision: Decision, label: str) -> list[str]:
        """The AUs that pushed ``label`` up most (bilateral codes, strongest first)."""
        row = decision.contributions[CLASSES.index(label)]
        by_code: dict[str, float] = {}
        for channel, value in zip(AU_CHANNELS, row):
            code = channel[:4]
            by_code[code] = max(by_code.get(code, 0.0), float(value))
        ranked = sorted(by_code.items(), key=lambda kv: -kv[1])
        return [code for code, value in ranked[:BECAUSE_MAX] if value >= BECAUSE_MIN]

    def compound_scores(self, emotion_p: np.ndarray) -> np.ndarray:
        """Pair-wise aggregation: ``sqrt(p_a p_b)`` per compound, normalised, :math:`(8,)` → :math:`(7,)`."""
        scores = np.array([np.sqrt(emotion_p[a] * emotion_p[b]) for a, b in self._pairs])
        return scores / max(scores.sum(), 1e-12)

    def compound_label(self, emotion_p: np.ndarray) -> str | None:
        """The compound whose two emotions are this face's top two, when the second is strong enough."""
        first, second = np.argsort(-emotion_p)[:2]
        if emotion_p[second] < self.compound_threshold:
            return None
        for name, (a, b) in zip(COMPOUNDS, self._pairs):
            if {a, b} == {int(first), int(second)}:
                return name
        return None

    def valence_arousal(self, emotion_p: np.ndarray) -> tuple[float, float]:
        """Probability-weighted circumplex position, emotion probabilities :math:`(8,)` (renormalised)."""
        p = emotion_p / max(emotion_p.sum(), 1e-12)
        v, a = p @ self._circumplex
        return float(v), float(a)

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"au_map": self.au_map.astype(np.float32), "weight": self.weight.astype(np.float32),
                   "bias": self.bias.astype(np.float32)}, str(folder / "model.safetensors"))  # fmt: skip
        (folder / "model.json").write_text(json.dumps({**self.config, "channels": list(AU_CHANNELS),
                                                       "classes": list(CLASSES)}, indent=2) + "\n")  # fmt: skip


@lru_cache(maxsize=2)
def load_perception_model(folder: str | None = None) -> PerceptionModel:
    """The shipped model (``assets/perception``), or one in ``folder``."""
    from safetensors.numpy import load_file

    path = Path(folder) if folder is not None else MODEL_DIR
    if not (path / "model.safetensors").is_file():
        raise AvatarInputError(f"{path}/model.safetensors is missing; run scripts/train_perception.py")
    tensors = load_file(str(path / "model.safetensors"))
    config = json.loads((path / "model.json").read_text())
    if tuple(config.get("channels", ())) != AU_CHANNELS or tuple(config.get("classes", ())) != CLASSES:
        raise AvatarInputError(f"{path}: the perception model was built for other AU channels or classes; rebuild it")
    return PerceptionModel(tensors["au_map"], tensors["weight"], tensors["bias"], config)
