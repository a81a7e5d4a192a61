"""Zero-shot scores of free-text labels (``avatar perceive --labels "bored, amused"``).

A face is said in words twice: its AU pattern over its baseline (``"a person who raises the brows and drops
the jaw, looking surprised"``, :func:`face_sentence`) and its emotion probabilities, as the probability-weighted
mean of the eight emotions' sentences (``"a person who looks surprised"``, …), so that an uncertain face is
described as uncertain. The two unit vectors are mixed 0.3 / 0.7 (on the shared photos the AU sentence alone
let incidental AUs decide: a surprised face read "amused") and matched against each label's description
(``"a person who looks <label>"``) in a sentence-embedding space (all-MiniLM-L6-v2, shipped in a wheel; the
encoder is handed in by the caller so this stage does not import the generator's). Scores are a softmax of
cosine similarities over the labels. Sentences repeat across frames, so embeddings are cached by text.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from avatar.core.errors import AvatarInputError
from drivers.perception.captions import describe
from drivers.perception.facs import EMOTION_ADJECTIVES, EMOTIONS, INCIDENTAL, bilateral

TEMPERATURE = 0.05
AU_SHARE = 0.3  # weight of the AU sentence against the emotion sentences


def parse_labels(labels) -> list[str]:
    """``"bored, amused , confused"`` (or a list of labels) → ``["bored", "amused", "confused"]``: at least one,
    at most 32, duplicates dropped."""
    text = labels if isinstance(labels, str) else ",".join(str(label) for label in labels)
    out = [part.strip() for part in text.split(",") if part.strip()]
    if not out:
        raise AvatarInputError("--labels needs comma-separated words, e.g. --labels \"bored, amused, confused\"")
    if len(out) > 32:
        raise AvatarInputError(f"--labels takes at most 32 labels, got {len(out)}")
    return list(dict.fromkeys(out))


def face_sentence(record, onset: float = 1.0) -> str:
    """A face in words, e.g. ``"a person who raises the brows and drops the jaw, looking surprised"``."""
    aus = bilateral(record.channels)
    active = [c for c, v in sorted(aus.items(), key=lambda kv: -kv[1]) if v >= onset and c not in INCIDENTAL][:4]
    look = EMOTION_ADJECTIVES[record.emotion]
    if not active:
        return f"a person with a still, relaxed face, looking {look}"
    return f"a person who {describe(active)}, looking {look}"


class LabelScorer:
    """Scores of the user's labels for faces, with an ``encode(list[str]) -> (N, D)`` sentence encoder."""

    def __init__(self, labels: list[str], encode: Callable):
        self.labels = labels
        self._encode = encode
        self._cache: dict[str, np.ndarray] = {}
        self._label_vectors = self._vectors([f"a person who looks {label}" for label in labels])
        self._emotion_vectors = self._vectors([f"a person who looks {EMOTION_ADJECTIVES[e]}" for e in EMOTIONS])

    def _vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = np.asarray(self._encode(missing), np.float64)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
            self._cache.update(zip(missing, vectors))
        return np.stack([self._cache[t] for t in texts])

    def scores(self, record) -> dict[str, float]:
        """Label → probability for one face record."""
        mixture = record.scores @ self._emotion_vectors
        face = AU_SHARE * self._vectors([face_sentence(record)])[0] + (1.0 - AU_SHARE) * mixture / np.linalg.norm(mixture)
        sim = face @ self._label_vectors.T
        p = np.exp((sim - sim.max()) / TEMPERATURE)
        p /= p.sum()
        return dict(zip(self.labels, (float(v) for v in p)))


__all__ = ["LabelScorer", "face_sentence", "parse_labels"]
