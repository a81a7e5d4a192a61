"""Listener events counted in a code track: nods (head-pitch strokes) and blinks.

Used by ``avatar listen``'s report and by the listener's evaluation (responsiveness: nods after
speaker pauses). No ``scipy.signal`` here (see :func:`prominent_peaks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatar.core.code_layout import BLINK_LEFT
from avatar.core.errors import AvatarInputError
from avatar.core.geometry import axis_angle_to_matrix
from avatar.core.motion import MOTION_FPS, Motion

__all__ = ["Nod", "count_blinks", "detect_nods", "head_pitch_yaw", "prominent_peaks"]


def head_pitch_yaw(head_rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch (face down positive) and yaw (to the head's left positive) of axis-angle rotations.

    Exact for :func:`avatar.core.geometry.euler_to_matrix` whatever the roll: the face's forward axis ``R e_z`` is
    ``(cos p sin y, -sin p, cos p cos y)``.

    Args:
        head_rotation: :math:`(T, 3)` axis-angle (rad).

    Returns:
        pitch :math:`(T,)` and yaw :math:`(T,)` in radians.
    """
    rotation = torch.as_tensor(head_rotation, dtype=torch.float64)
    if rotation.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    matrix = axis_angle_to_matrix(rotation)
    forward = matrix[:, :, 2]
    return torch.asin((-forward[:, 1]).clamp(-1.0, 1.0)), torch.atan2(forward[:, 0], forward[:, 2])


@dataclass(frozen=True)
class Nod:
    """A detected nod: frames where the head starts down, is lowest, and is back up."""

    onset: int
    peak: int
    end: int
    amplitude_deg: float


def prominent_peaks(x: np.ndarray, prominence: float, wlen: int) -> list[tuple[int, int, int]]:
    """Local maxima of ``x`` at least ``prominence`` above their bases: ``scipy.signal.find_peaks(x,
    prominence=prominence, wlen=wlen)`` (same peaks, same bases; tested).

    Written out because importing ``scipy.signal`` costs about 0.7 s, a seventh of ``avatar listen``'s
    budget for an 8 s clip, to count nods for its report (see docs/DECISIONS.md).

    Args:
        x: :math:`(T,)` signal.
        prominence: smallest prominence (height above the higher of the two bases).
        wlen: window (in samples) around each peak that the bases are searched in.

    Returns:
        ``(peak, left_base, right_base)`` index triples in time order.
    """
    x = np.asarray(x, dtype=np.float64)
    half, last = int(wlen) // 2, x.shape[0] - 1
    out = []
    i = 1
    while i < last:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < last and x[ahead] == x[i]:  # a plateau: the peak is its middle
                ahead += 1
            if x[ahead] < x[i]:
                peak = (i + ahead - 1) // 2
                left = right = peak
                k = peak
                while k >= max(peak - half, 0) and x[k] <= x[peak]:  # lowest point before a higher one
                    left = k if x[k] < x[left] else left
                    k -= 1
                k = peak
                while k <= min(peak + half, last) and x[k] <= x[peak]:
                    right = k if x[k] < x[right] else right
                    k += 1
                if x[peak] - max(x[left], x[right]) >= prominence:
                    out.append((peak, left, right))
                i = ahead
        i += 1
    return out


def detect_nods(head_rotation, fps: float = MOTION_FPS, *, min_amplitude_deg: float = 1.5,
                min_speed_deg_s: float = 8.0, max_stroke_s: float = 0.6) -> list[Nod]:
    """Nods in a head-rotation track: fast down-and-up strokes of head pitch.

    A nod cycle is a local maximum of pitch (face down) that rises at least ``min_amplitude_deg``
    above the lowest pitch within ``max_stroke_s`` on *both* sides, with a peak pitch velocity of
    at least ``min_speed_deg_s`` on the way down and on the way up (pitch is smoothed over 3
    frames first). Its onset (end) is where the downward (upward) speed first exceeds a fifth of
    that stroke's peak speed. Cycles that follow each other within 0.2 s are one (multi-cycle)
    nod. Slow sway and single downward glances are not nods.

    Args:
        head_rotation: :math:`(T, 3)` axis-angle (rad), or a :class:`~avatar.core.motion.Motion`.
        fps: frames per second.
        min_amplitude_deg: smallest down-and-up excursion.
        min_speed_deg_s: smallest peak pitch speed of each stroke.
        max_stroke_s: longest down (or up) stroke.

    Returns:
        :class:`Nod` list in time order.
    """
    if isinstance(head_rotation, Motion):
        fps, head_rotation = head_rotation.fps, head_rotation.head_rotation
    if isinstance(head_rotation, torch.Tensor):
        rotation = head_rotation.detach().double()
    else:
        rotation = torch.from_numpy(np.array(head_rotation, dtype=np.float64))
    if rotation.ndim != 2 or rotation.shape[1] != 3:
        raise AvatarInputError(f"head_rotation must be T x 3, got {tuple(rotation.shape)}")
    if rotation.shape[0] < 3:
        return []
    pitch = np.degrees(head_pitch_yaw(rotation)[0].numpy())
    padded = np.pad(pitch, 1, mode="edge")
    pitch = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0  # 3-frame moving average, edges repeated
    velocity = np.gradient(pitch) * fps
    stroke = max(2, int(round(max_stroke_s * fps)))
    cycles = []
    for peak, left, right in prominent_peaks(pitch, min_amplitude_deg, 2 * stroke + 1):
        if pitch[peak] - pitch[left] < min_amplitude_deg or pitch[peak] - pitch[right] < min_amplitude_deg:
            continue
        if velocity[left:peak + 1].max() < min_speed_deg_s or -velocity[peak:right + 1].min() < min_speed_deg_s:
            continue
        amplitude = float(pitch[peak] - min(pitch[left], pitch[right]))
        # the stroke starts (ends) where the head's speed falls below a fifth of its peak speed
        down_speed, up_speed = velocity[left:peak + 1].max(), -velocity[peak:right + 1].min()
        onset = left + int(np.argmax(velocity[left:peak + 1]))
        while onset > left and velocity[onset - 1] > 0.2 * down_speed:
            onset -= 1
        end = peak + int(np.argmin(velocity[peak:right + 1]))
        while end < right and -velocity[end + 1] > 0.2 * up_speed:
            end += 1
        cycles.append((int(onset), int(peak), int(end), amplitude))
    nods: list[Nod] = []
    for left, peak, right, amplitude in cycles:
        if nods and left <= nods[-1].end + int(round(0.2 * fps)):
            last = nods[-1]
            nods[-1] = Nod(last.onset, last.peak, right, max(last.amplitude_deg, amplitude))
        else:
            nods.append(Nod(left, peak, right, amplitude))
    return nods


def count_blinks(codes: torch.Tensor, threshold: float = 0.5) -> int:
    """Blinks in listener codes: upward crossings of ``threshold`` by the left eyelid's weight.

    Args:
        codes: :math:`(T, 59)` listener codes.
        threshold: eyelid weight that counts as closed.
    """
    if codes.shape[0] < 2:
        return 0
    lid = codes[:, BLINK_LEFT]
    return int(((lid[1:] > threshold) & (lid[:-1] <= threshold)).sum())
