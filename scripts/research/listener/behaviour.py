"""Listener behaviour statistics against published human norms (issue 16, part 2: the measurement).

Per listener code track (and its speaker's cues): blinks per minute, nods per minute, the share of speaker pauses
(≥ 300 ms after ≥ 700 ms of speech) answered by a nod within 1 s, smile return after the speaker's smile onsets
(the speaker's smiles measured by Google's Face Landmarker on the speaker video, an estimator independent of the
listener's own input path, which uses our tracker), gaze-on-speaker share, head-motion spread, the longest frozen
stretch and the expression variance (DIM's Var). :data:`HUMAN_NORMS` holds the published ranges with their sources.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar.core.code_layout import EXPRESSION_SLICE, ROTATION_SLICE
from avatar.core.expressions import EXPRESSION_NAMES
from drivers.listener.cues import frame_speaking, speech_pause_onsets
from drivers.listener.events import count_blinks, detect_nods, head_pitch_yaw

#: Published ranges (low, high) and where they come from (docs/LISTENER.md has the full references).
HUMAN_NORMS = {
    "blinks_per_min": (8.0, 26.0, "Bentivoglio et al. 1997 (rest 17/min, 95 % range 8–21 looking ahead, 10.5–32.5 "
                                  "in conversation); Doughty 2001; the issue's goal 8–26/min"),
    "pause_answered_share": (0.0, 0.6, "Ward & Tsukahara 2000; Poppe et al. 2011: backchannels at clause ends and "
                                       "pauses, most opportunities unanswered"),
    "smile_return_share": (0.5, 1.0, "Hinsz & Tomhave 1991: over half of smiles returned"),
    "smile_return_median_s": (0.3, 1.0, "Dimberg & Thunberg 1998 (EMG onset 300–400 ms); Riehle et al. 2017"),
    "gaze_on_speaker_share": (0.6, 0.9, "Argyle & Cook 1976: ~75 % of listening time"),
    "longest_frozen_s": (0.0, 3.0, "the issue: no frozen stretch of 3 s or more"),
}
_SMILE = [EXPRESSION_NAMES.index("mouthSmile_L"), EXPRESSION_NAMES.index("mouthSmile_R")]
_GAZE = [EXPRESSION_NAMES.index(n) for n in EXPRESSION_NAMES if n.startswith("eyeLook")]


def smile_onsets(smile: np.ndarray, fps: float, on: float = 0.35, off: float = 0.15, rest_s: float = 0.5) -> list[int]:
    """Frames where a smile starts: the signal rises above ``on`` after ≥ ``rest_s`` below ``off``."""
    onsets, calm = [], 0
    for k, value in enumerate(smile):
        if value < off:
            calm += 1
        elif value > on:
            if calm >= rest_s * fps:
                onsets.append(k)
            calm = 0
    return onsets


def smile_return(listener_smile: np.ndarray, onsets: list[int], fps: float, rise: float = 0.15,
                 window_s: float = 2.0) -> tuple[float, float | None, int]:
    """Share of speaker smile onsets the listener answers (its smile rises by ``rise`` within ``window_s``) and the
    median latency (s); returns ``(share, median_latency, onsets counted)``."""
    window = int(round(window_s * fps))
    counted, latencies = 0, []
    for onset in onsets:
        if onset + window >= len(listener_smile):
            continue
        counted += 1
        base = listener_smile[max(0, onset - 3):onset + 1].min()
        above = np.flatnonzero(listener_smile[onset:onset + window] >= base + rise)
        if above.size:
            latencies.append(above[0] / fps)
    share = len(latencies) / counted if counted else float("nan")
    return share, (float(np.median(latencies)) if latencies else None), counted


def longest_frozen_s(codes: torch.Tensor, fps: float, tolerance: float = 1e-3) -> float:
    """Longest run of frames where no weight or pose number moves by more than ``tolerance``."""
    if codes.shape[0] < 2:
        return 0.0
    still = (codes[1:] - codes[:-1]).abs().amax(dim=1) <= tolerance
    best = run = 0
    for flag in still.tolist():
        run = run + 1 if flag else 0
        best = max(best, run)
    return best / fps


def behaviour(codes: torch.Tensor, cues, speaker_smile: np.ndarray | None) -> dict:
    """The statistics of one listener track (see the module docstring)."""
    fps = cues.fps
    minutes = codes.shape[0] / fps / 60.0
    nods = detect_nods(codes[:, ROTATION_SLICE], fps)
    window = int(round(fps))
    onsets = [o for o in speech_pause_onsets(frame_speaking(cues), fps, 0.3, 0.7) if o + window < codes.shape[0]]
    answered = sum(any(o <= nod.onset <= o + window for nod in nods) for o in onsets)
    pitch, yaw = head_pitch_yaw(codes[:, ROTATION_SLICE])
    gaze = codes[:, _GAZE].amax(dim=1).numpy()
    on_speaker = (np.abs(np.degrees(pitch.numpy())) < 15) & (np.abs(np.degrees(yaw.numpy())) < 15) & (gaze < 0.3)
    listener_smile = codes[:, _SMILE].mean(dim=1).numpy()
    stats = {
        "seconds": round(codes.shape[0] / fps, 2),
        "blinks_per_min": round(count_blinks(codes) / minutes, 1),
        "nods_per_min": round(len(nods) / minutes, 1),
        "pause_opportunities": len(onsets),
        "pause_answered_share": round(answered / len(onsets), 3) if onsets else None,
        "gaze_on_speaker_share": round(float(on_speaker.mean()), 3),
        "head_pitch_yaw_std_deg": [round(float(np.degrees(pitch.std())), 2), round(float(np.degrees(yaw.std())), 2)],
        "longest_frozen_s": round(longest_frozen_s(codes, fps), 2),
        "expression_var": round(float(codes[:, EXPRESSION_SLICE].var()), 5),
        "listener_smile_mean": round(float(listener_smile.mean()), 3),
    }
    if speaker_smile is not None:
        n = min(len(speaker_smile), len(listener_smile))
        share, latency, counted = smile_return(listener_smile[:n], smile_onsets(speaker_smile[:n], fps), fps)
        stats.update({"speaker_smile_onsets": counted, "smile_return_share": None if counted == 0 else round(share, 3),
                      "smile_return_median_s": None if latency is None else round(latency, 2)})
    return stats


def within_norms(stats: dict) -> dict:
    """Which statistics fall inside :data:`HUMAN_NORMS` (``None`` where not measured)."""
    out = {}
    for key, (low, high, _) in HUMAN_NORMS.items():
        value = stats.get(key)
        out[key] = None if value is None or (isinstance(value, float) and np.isnan(value)) else bool(low <= value <= high)
    return out
