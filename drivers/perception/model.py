"""The perception model: ARKit-style weights → action units → emotion, compound, open-set, valence/arousal.

Two learned linear maps, both shipped in ``assets/perception`` and fitted by ``scripts/train_perception.py``
on SynFER-style renders read back through this stage's own front end:

1. **AUs** (:meth:`PerceptionModel.action_units`): ``au = clip(A [w; r; 1], 0, 5)`` with ``w`` the 53
   tracked weights and ``r`` the head rotation (pitch is confused with brow motion by landmark trackers, so
   the map may correct for it). ``A`` starts from the published ARKit↔FACS correspondence
   (:func:`drivers.perception.facs.correspondence_matrix`) and is fitted by ridge regression *towards* it.
2. **Emotions** (:meth:`PerceptionModel.classify`): a softmax over the 8 emotions and ``other`` (a
   non-prototypical face) from a one-hidden-layer ReLU network over the AU intensities only (AU-guided FER:
   nothing but the AUs reaches the decision). ``because`` lists the AUs the decision rests on, by occlusion:
   how much the class's log-probability drops when that AU (both sides) is taken away.
   Compounds aggregate pairs of basic probabilities (``sqrt(p_a p_b)``, the ABAW pair-wise scheme);
   ``unknown_score = p(other)``, the probability that the face is none of the 8 (a non-prototypical AU pattern:
   it separated held-out emotions best of the scores tried, docs/PERCEPTION.md); valence/arousal is the probability-weighted
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
from drivers.perception.facs import (
    AU_CHANNELS,
    CIRCUMPLEX,
    CODE_CHANNELS,
    COMPOUNDS,
    EMOTIONS,
    MAX_INTENSITY,
    NUM_CHANNELS,
)

MODEL_DIR = ASSETS_DIR / "perception"
CLASSES: tuple[str, ...] = (*EMOTIONS, "other")
#: AUs listed under ``because``: at most this many, each worth at least ``BECAUSE_MIN`` nats of the decision
BECAUSE_MAX, BECAUSE_MIN = 4, 0.1


@dataclass(frozen=True)
class Decision:
    """One face's reading (before temporal voting).

    Attributes:
        probabilities: over :data:`CLASSES` (8 emotions + ``other``), shape :math:`(9,)`.
        channels: the AU channels it was read from, shape :math:`(C,)`.
    """

    probabilities: np.ndarray
    channels: np.ndarray


class PerceptionModel:
    """The shipped AU map and emotion head (see the module docstring).

    Args:
        au_map: ``A``, shape :math:`(C, 53 + 3 + 1)`.
        head: the emotion network over AU intensities / 5: ``w1 (H, C)``, ``b1 (H,)``, ``w2 (9, H)``, ``b2 (9,)``.
        config: thresholds — ``unknown_threshold`` (unknown_score above it = unknown),
            ``compound_threshold`` (the second emotion's probability from which a compound is named).
    """

    def __init__(self, au_map: np.ndarray, head: dict[str, np.ndarray], config: dict):
        self.head = {k: np.asarray(head[k], np.float64) for k in ("w1", "b1", "w2", "b2")}
        if au_map.shape[0] != NUM_CHANNELS or self.head["w1"].shape[1] != NUM_CHANNELS or self.head["w2"].shape[0] != len(CLASSES):
            raise AvatarInputError("the perception model does not match this version's AU channels; rebuild it")
        self.au_map = np.asarray(au_map, np.float64)
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
        channels = np.asarray(channels, np.float64)
        return Decision(self.probabilities(channels[None])[0], channels)

    def probabilities(self, channels: np.ndarray) -> np.ndarray:
        """Batched class probabilities, channels :math:`(N, C)` → :math:`(N, 9)`."""
        h = self.head
        hidden = np.maximum(np.asarray(channels, np.float64) / MAX_INTENSITY @ h["w1"].T + h["b1"], 0.0)
        logits = hidden @ h["w2"].T + h["b2"]
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(-1, keepdims=True)

    # ------------------------------------------------------------------ readings
    def because(self, decision: Decision, label: str) -> list[str]:
        """The AUs ``label`` rests on, strongest first: the drop of its log-probability when each present AU
        (both sides) is taken away, at least ``BECAUSE_MIN`` nats, at most ``BECAUSE_MAX`` AUs."""
        k = CLASSES.index(label)
        x = decision.channels
        present = [code for code, idx in CODE_CHANNELS.items() if x[idx].max() > 0.0]
        if not present:
            return []
        occluded = np.repeat(x[None], len(present), 0)
        for row, code in enumerate(present):
            occluded[row, CODE_CHANNELS[code]] = 0.0
        drop = np.log(decision.probabilities[k] + 1e-12) - np.log(self.probabilities(occluded)[:, k] + 1e-12)
        ranked = sorted(zip(present, drop), key=lambda kv: -kv[1])
        return [code for code, value in ranked[:BECAUSE_MAX] if value >= BECAUSE_MIN]

    @staticmethod
    def unknown_score(probabilities: np.ndarray) -> np.ndarray:
        """``p(other)`` of class probabilities :math:`(..., 9)`."""
        return np.asarray(probabilities)[..., CLASSES.index("other")]

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
        tensors = {"au_map": self.au_map, **self.head}
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(folder / "model.safetensors"))
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
    return PerceptionModel(tensors["au_map"], {k: tensors[k] for k in ("w1", "b1", "w2", "b2")}, config)
