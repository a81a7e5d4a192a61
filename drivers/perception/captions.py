"""Captions of facial change: spans where a face moves away from its resting state, said in words.

A span is a run of frames where at least one expressive AU (everything but blinks and the lips parting of
speech) is at or above ``onset`` intensity over the person's baseline; spans closer than ``merge_s`` are
joined and spans shorter than ``min_s`` dropped. The text names the AUs active in at least half of the
span's frames, strongest first (at most three; inner + outer brow raiser read "raises the brows"), and
the emotion label that held most of the span unless it was neutral:
``"0:03.2–0:04.1 raises the brows and drops the jaw — surprise"``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from drivers.perception.facs import ACTION_UNITS, INCIDENTAL, bilateral_array


@dataclass(frozen=True)
class Caption:
    start: float
    end: float
    face: int
    text: str

    def to_json(self) -> dict:
        return {"start": round(self.start, 2), "end": round(self.end, 2), "face": self.face, "text": self.text}


def describe(codes: list[str]) -> str:
    """Words for AU codes, e.g. ``["AU01", "AU02", "AU26"]`` → ``"raises the brows and drops the jaw"``."""
    phrases = []
    codes = list(codes)
    if "AU01" in codes and "AU02" in codes:
        phrases.append("raises the brows")
        codes = [c for c in codes if c not in ("AU01", "AU02")]
    phrases += [ACTION_UNITS[c][1] for c in codes]
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def face_captions(times: np.ndarray, channels: np.ndarray, labels: list[str], face: int, onset: float = 1.5,
                  merge_s: float = 0.25, min_s: float = 0.3) -> list[Caption]:
    """Captions of one face.

    Args:
        times: frame times (s), shape :math:`(T,)`.
        channels: AU channels over the baseline per frame, shape :math:`(T, C)`.
        labels: the emotion label per frame.
        face: the face id.

    Returns:
        the captions, in time order.
    """
    if len(times) == 0:
        return []
    codes = [c for c in ACTION_UNITS if c not in INCIDENTAL]
    intensity = bilateral_array(channels)[:, [list(ACTION_UNITS).index(c) for c in codes]]  # (T, K)
    active = (intensity >= onset).any(1)
    spans, start = [], None
    for t, on in enumerate(active):
        if on and start is None:
            start = t
        if not on and start is not None:
            spans.append([start, t])
            start = None
    if start is not None:
        spans.append([start, len(active)])
    merged: list[list[int]] = []
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / 30.0
    for span in spans:
        if merged and (span[0] - merged[-1][1]) * dt <= merge_s:
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    out = []
    for a, b in merged:
        if (b - a) * dt < min_s:
            continue
        share = (intensity[a:b] >= onset).mean(0)
        strength = intensity[a:b].mean(0)
        chosen = [codes[k] for k in np.argsort(-strength) if share[k] >= 0.5][:3]
        if not chosen:
            chosen = [codes[int(np.argmax(strength))]]
        text = describe(chosen)
        label = Counter(labels[a:b]).most_common(1)[0][0]
        if label != "neutral":
            text += f" — {label}"
        out.append(Caption(float(times[a]), float(times[b - 1] + dt), face, text))
    return out


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{rest:06.3f}"


def to_webvtt(captions: list[Caption], face_names: dict[int, str] | None = None) -> str:
    """WebVTT text of the captions (one cue each; the face named as a voice span when several)."""
    lines = ["WEBVTT", ""]
    faces = {c.face for c in captions}
    for k, c in enumerate(sorted(captions, key=lambda c: (c.start, c.face)), 1):
        who = (face_names or {}).get(c.face, f"face {c.face}")
        text = f"<v {who}>{c.text}" if len(faces) > 1 else c.text
        lines += [str(k), f"{_clock(c.start)} --> {_clock(c.end)}", text, ""]
    return "\n".join(lines)
