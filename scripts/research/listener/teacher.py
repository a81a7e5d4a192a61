"""Behavioural teacher: plausible listener motion from speaker cues, by published rules.

No dyadic data can be had, so the listener model learns to imitate this rule-based listener,
driven by real and synthetic speakers. Each behaviour follows a finding on human listeners:

Backchannel nods
    - *Low-pitch cue* (Ward & Tsukahara 2000, "Prosodic features which cue back-channel
      responses in English and Japanese", J. Pragmatics 32:1177–1207): a region of pitch below the
      speaker's 26th percentile lasting at least 110 ms, after at least 700 ms of speech, with no
      backchannel in the preceding 800 ms, is followed by a backchannel about 700 ms later.
    - *Pauses and final intonation* (Gravano & Hirschberg 2011, "Turn-taking cues in task-oriented
      dialogue", Comput. Speech Lang. 25:601–634): backchannels follow inter-pausal units that end
      in a pause, with a falling (turn-yielding) or rising (backchannel-inviting) final contour and
      lower intensity more likely to be answered. Poppe, Truong, Reidsma & Heylen 2010
      ("Backchannel strategies for artificial listeners", IVA 2010) found such pause- and
      pitch-triggered backchannels rated more natural than randomly timed ones.
    - Nod kinematics: listener nods are small (a few degrees), cyclic, 1–3 cycles of 0.4–0.7 s
      (Hadar, Steiner & Clifford Rose 1985, "Head movement during listening turns in
      conversation", J. Nonverbal Behav. 9:214–228).
Smile mirroring
    Facial mimicry: people mirror a partner's smile within about a second (Dimberg, Thunberg &
    Elmehed 2000, Psychol. Sci. 11:86 — EMG within 0.5 s; Hess & Fischer 2013, "Emotional
    mimicry as social regulation", Pers. Soc. Psychol. Rev. 17:142; zygomatic EMG onset 300–400 ms,
    Dimberg & Thunberg 1998, Scand. J. Psychol. 39:39). The listener follows the speaker's visible smile
    with a per-listener lag of 0.3–0.6 s (its own smile then shows within about 1 s; a 0.5–1 s lag made
    the visible return 1.2–1.6 s late), scaled by its smile tendency, and
    smiles briefly with some backchannels; brow lowering (concern) is mirrored the same way, weaker.
Brow flashes
    The eyebrow flash (a raise held about 1/6 s) is a greeting and acknowledgement signal
    (Eibl-Eibesfeldt 1972, in *Non-verbal communication*, Hinde ed.; Ekman 1979, "About brows");
    rapid brow raises go with pitch accents (Cavé et al. 1996, "About the relationship between
    eyebrow movements and F0 variations", ICSLP). The listener flashes its brows, with a
    probability set by its expressiveness, 0.15–0.35 s after a speaker pitch accent (f0 peak well
    above the speaker's median) or after the speaker's own visible brow raise.
Blinks
    Spontaneous blink rate is about 17/min at rest (Bentivoglio et al. 1997, "Analysis of blink
    rate patterns in normal subjects", Mov. Disord. 12:1028); visual attention lowers it. The
    listener blinks as a renewal process with gamma-distributed intervals at ``blink_rate`` per
    minute, reduced by attentiveness while the speaker talks; blinks cluster at the speaker's
    pauses (Nakano & Kitazawa 2010, "Eyeblink entrainment at breakpoints of speech", Exp. Brain
    Res. 205:577) and go with large gaze shifts (Evinger et al. 1994, Exp. Brain Res. 100:337).
    A blink lasts 120–300 ms, closing faster than it opens (blink durations 100–400 ms).
Gaze
    Listeners look at the speaker most of the time, about 75 % (Argyle & Cook 1976, *Gaze and
    mutual gaze*; Kendon 1967, "Some functions of gaze-direction in social interaction", Acta
    Psychol. 26:22), in glances of a few seconds broken by shorter looks away. The share of time
    at the speaker grows with attentiveness and drops when the speaker is silent; the head turns
    a little with large eye movements (eye–head coordination).
Idle motion
    Small low-frequency head sway (Ornstein–Uhlenbeck processes of about 1–2° and 2 s time
    constant, smoothed) and a per-listener posture (tilt, forward lean), so that even a silent
    speaker gets an idle but alive listener: it blinks, sways and glances, and never nods.

Causality and latency. The teacher runs frame by frame: listener frame ``k`` is a function of the
cues of frames ``0..k`` and the seed only. Reactions are scheduled *after* the cue that triggers
them (human reaction times, 0.1–1 s) and drawn when the cue is seen, so perturbing cues after
frame ``k`` leaves frames ``0..k`` bit-identical. Algorithmic latency: 0 frames beyond the cues'
own look-ahead of one motion frame (33 ms of audio, :mod:`drivers.audio`). Feeding the cues in
chunks (:meth:`ListenerTeacher.push`) gives exactly the result of one call on the whole clip.

CLI::

    PYTHONPATH=scripts python -m research.listener.teacher CLIP -o OUT.motion.npz --seed N [--style lively,nod_rate=1.5] [--force]

``CLIP`` is a video, an audio file or a ``*.cues.npz`` written by :mod:`drivers.listener.cues`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM, codes_to_motion
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, NUM_EXPRESSIONS
from avatar.core.geometry import euler_to_matrix, matrix_to_axis_angle
from avatar.core.motion import MOTION_FPS, Motion
from drivers.listener.cues import (
    BROW_DOWN_COLUMNS,
    PauseDetector,
    SpeakerCues,
    frame_energy_db,
    frame_pitch_semitones,
    frame_speaker_brow_raise,
    frame_speaker_smile,
    frame_speaking,
)
from drivers.listener.style import STYLE_PRESETS, ListenerStyle

# ----------------------------------------------------------------------------------------------
# Timing constants (seconds unless said otherwise), with their sources


@dataclass(frozen=True)
class TeacherTiming:
    """Timing of the rules (defaults from the literature cited in the module docstring)."""

    # Ward & Tsukahara 2000
    low_pitch_percentile: float = 26.0
    low_pitch_min_s: float = 0.110
    low_pitch_min_speech_s: float = 0.700
    backchannel_refractory_s: float = 0.800
    low_pitch_response_s: float = 0.700
    # Pauses (Gravano & Hirschberg 2011); PauseDetector semantics
    pause_min_s: float = 0.2
    pause_min_speech_s: float = 1.0
    pause_response_s: tuple[float, float] = (0.1, 0.45)
    final_contour_s: float = 0.7
    # Brow flashes (Eibl-Eibesfeldt 1972; Cavé et al. 1996)
    accent_semitones: float = 4.0
    brow_response_s: tuple[float, float] = (0.15, 0.35)
    brow_refractory_s: float = 1.2
    # Smile mimicry lag (Dimberg & Thunberg 1998; Dimberg et al. 2000; Hess & Fischer 2013)
    mimicry_lag_s: tuple[float, float] = (0.3, 0.6)
    # Pitch statistics need this much voiced speech first
    pitch_warmup_s: float = 1.0


# ----------------------------------------------------------------------------------------------
# Channels of the teacher's working rows: 53 weights, then pitch, yaw, roll (rad), tx, ty, tz (cm)

_W = {name: i for i, name in enumerate(EXPRESSION_NAMES)}
_PITCH, _YAW, _ROLL, _TX, _TY, _TZ = range(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 6)
_BLINK = [_W["eyeBlink_L"], _W["eyeBlink_R"]]
_SMILE = [_W["mouthSmile_L"], _W["mouthSmile_R"]]
_CHEEK = [_W["cheekSquint_L"], _W["cheekSquint_R"]]
_EYE_SQUINT = [_W["eyeSquint_L"], _W["eyeSquint_R"]]
_BROW_INNER = [_W["browInnerUp_L"], _W["browInnerUp_R"]]
_BROW_OUTER = [_W["browOuterUp_L"], _W["browOuterUp_R"]]
_BROW_DOWN = [_W["browDown_L"], _W["browDown_R"]]
_EYE_WIDE = [_W["eyeWide_L"], _W["eyeWide_R"]]
_PRESS = [_W["mouthPress_L"], _W["mouthPress_R"]]
_JAW_OPEN = _W["jawOpen"]

_RING = 512  # frames of future contributions held (17 s at 30 fps; longest event < 4 s)
_PITCH_BINS = np.arange(-24.0, 48.0 + 0.25, 0.5)  # semitones re 100 Hz
_ENERGY_BINS = np.arange(-100.0, 1.0, 1.0)  # dBFS
_DEG = math.pi / 180.0


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class _Normals:
    """Standard normals from one generator in fixed blocks, so chunking never changes the stream."""

    def __init__(self, rng: np.random.Generator, width: int, block: int = 256) -> None:
        self.rng, self.width, self.block = rng, width, block
        self.buffer = np.zeros((0, width))
        self.index = 0

    def next(self) -> np.ndarray:
        if self.index >= self.buffer.shape[0]:
            self.buffer = self.rng.standard_normal((self.block, self.width))
            self.index = 0
        row = self.buffer[self.index]
        self.index += 1
        return row


class _Histogram:
    """Running histogram of a speaker's values (causal percentiles)."""

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        self.counts = np.zeros(edges.size + 1)
        self.total = 0

    def add(self, value: float) -> None:
        self.counts[int(np.searchsorted(self.edges, value))] += 1
        self.total += 1

    def percentile(self, q: float) -> float:
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, q / 100.0 * self.total))
        index = min(max(index, 1), self.edges.size)
        return float(self.edges[index - 1])


# ----------------------------------------------------------------------------------------------
# The teacher


class ListenerTeacher:
    """Rule-based causal listener (see the module docstring for the rules and their sources).

    Args:
        style: the listener's :class:`ListenerStyle` (default: neutral).
        seed: random seed; the same cues, style and seed give bit-identical motion.
        fps: motion frames per second of the cues.
        timing: rule timing (defaults from the literature).

    Example:
        >>> teacher = ListenerTeacher(ListenerStyle.parse("warm"), seed=3)   # doctest: +SKIP
        >>> codes = teacher.push(cues)          # (T, 59) listener codes, frame by frame causal
    """

    def __init__(self, style: ListenerStyle | None = None, seed: int = 0, fps: float = MOTION_FPS,
                 timing: TeacherTiming | None = None) -> None:
        self.style = style or ListenerStyle()
        self.seed = int(seed)
        self.fps = float(fps)
        self.timing = timing or TeacherTiming()
        self.dt = 1.0 / self.fps
        streams = np.random.SeedSequence(self.seed).spawn(6)
        init, self._events, self._blinks, self._gaze = (np.random.default_rng(s) for s in streams[:4])
        self._sway_noise = _Normals(np.random.default_rng(streams[4]), 7)
        self._gaze_noise = _Normals(np.random.default_rng(streams[5]), 2)
        s, t = self.style, self.timing
        self.amplitude = 0.45 + 0.55 * s.expressiveness
        self.mimicry_lag = int(round(init.uniform(*t.mimicry_lag_s) * self.fps))
        # posture: head tilt, slight pitch, attentive forward lean (rad / cm)
        self.posture = np.array([init.uniform(-1.0, 2.0) * _DEG, 0.0, init.uniform(-2.5, 2.5) * _DEG,
                                 0.0, 0.0, 0.4 * s.attentiveness])
        self.sway_sigma = (0.6 + 0.4 * min(s.expressiveness, 1.5)) * np.array(
            [1.2 * _DEG, 1.5 * _DEG, 0.8 * _DEG, 0.15, 0.12, 0.2, 0.01])
        self.sway_tau = np.array([2.0, 2.5, 2.0, 2.5, 2.5, 2.0, 1.0])
        # state
        self.frame = 0
        self._pending = np.zeros((_RING, CODE_DIM))
        self._pauses = PauseDetector(self.fps, t.pause_min_s, t.pause_min_speech_s)
        self._pitch = _Histogram(_PITCH_BINS)
        self._energy = _Histogram(_ENERGY_BINS)
        self._thresholds = (math.nan, math.nan, math.nan)  # p_low, median, energy median
        self._low_run = 0
        self._low_fired = False
        self._last_backchannel = -10 ** 9
        self._busy_until = -10 ** 9
        self._last_flash = -10 ** 9
        self._recent: list[tuple[int, float, float]] = []  # (frame, semitones or nan, energy) of the last ~1 s
        self._prev_pitch = [math.nan, math.nan]
        self._speaker_smile = np.zeros(_RING)
        self._speaker_brow_down = np.zeros(_RING)
        self._speaker_brow = np.zeros(_RING)
        self._smile = 0.0
        self._brow_down = 0.0
        self._last_speech = -10 ** 9
        # renewal processes start in equilibrium: part of the first interval has already passed
        self._blink_budget = float(self._blinks.gamma(3.0, 1.0 / 3.0))
        self._blink_acc = float(self._blinks.uniform(0.0, self._blink_budget))
        self._last_blink = -10 ** 9
        self._gaze_away = False
        self._gaze_budget = float(self._gaze.gamma(2.0, 0.5))
        self._gaze_acc = float(self._gaze.uniform(0.0, self._gaze_budget))
        self._gaze_target = np.zeros(2)
        self._eyes = np.zeros(2)
        self._head_follow = 0.0
        self._sway = np.zeros(7)
        self._sway_smooth = np.zeros(7)
        #: (frame, kind) of every scheduled behaviour: "nod", "blink", "brow", "smile", "gaze_away", "gaze_back".
        self.events: list[tuple[int, str]] = []

    # -- scheduling ------------------------------------------------------------------------------

    def _add(self, start: int, channels, values: np.ndarray) -> None:
        """Add a waveform ``values (L,)`` or ``(L, C)`` to ``channels`` from frame ``start`` on."""
        if start < self.frame:
            raise RuntimeError("the teacher cannot schedule into the past")
        length = values.shape[0]
        if start + length - self.frame > _RING:
            raise RuntimeError("event longer than the teacher's look-ahead buffer")
        rows = (start + np.arange(length)) % _RING
        if values.ndim == 1:
            values = values[:, None]
        self._pending[np.ix_(rows, np.atleast_1d(channels))] += values

    def _schedule_nod(self, start: int) -> None:
        rng, s = self._events, self.style
        cycles = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        frequency = rng.uniform(1.5, 2.5)
        amplitude = self.amplitude * rng.uniform(4.0, 9.0) * _DEG
        t = np.arange(int(math.ceil(cycles / frequency * self.fps)) + 1) * self.dt
        decay = 0.65 ** np.floor(t * frequency)
        shape = amplitude * decay * 0.5 * (1.0 - np.cos(2.0 * math.pi * frequency * t))
        shape[t >= cycles / frequency] = 0.0
        self._add(start, [_PITCH, _TY, _TZ], np.stack([shape, -0.25 * shape / _DEG / 6.0,
                                                       0.15 * shape / _DEG / 6.0], axis=1))
        self._busy_until = start + shape.size
        self._last_backchannel = start
        self.events.append((start, "nod"))
        # what goes with a nod: a brief smile, a closed-lip "mm", a small brow raise
        if rng.random() < 0.5 * s.smile_tendency:
            self._schedule_smile(start + int(rng.integers(0, 6)), rng.uniform(0.2, 0.5) * (0.5 + s.smile_tendency))
        if rng.random() < 0.3:
            press = 0.25 * self.amplitude * self._pulse(0.08, 0.25, 0.2)
            self._add(start, _PRESS, np.repeat(press[:, None], 2, axis=1))
        if rng.random() < 0.15 * s.expressiveness:
            self._schedule_brow(start, 0.5)

    def _pulse(self, rise: float, hold: float, fall: float) -> np.ndarray:
        """A 0→1→0 envelope: smoothstep rise, hold, smoothstep fall (seconds)."""
        n_rise, n_hold, n_fall = (max(1, int(round(x * self.fps))) for x in (rise, hold, fall))
        up = _smoothstep(np.arange(1, n_rise + 1) / n_rise)
        down = 1.0 - _smoothstep(np.arange(1, n_fall + 1) / n_fall)
        return np.concatenate([up, np.ones(n_hold), down])

    def _schedule_smile(self, start: int, amplitude: float) -> None:
        rng = self._events
        pulse = amplitude * self._pulse(0.3, rng.uniform(0.4, 1.2), 0.6)
        self._add(start, _SMILE, np.stack([pulse * 1.0, pulse * rng.uniform(0.85, 1.0)], axis=1))
        self._add(start, _CHEEK, np.stack([pulse * 0.4] * 2, axis=1))
        self.events.append((start, "smile"))

    def _schedule_brow(self, start: int, scale: float = 1.0) -> None:
        rng = self._events
        amplitude = scale * self.amplitude * rng.uniform(0.35, 0.7)
        pulse = amplitude * self._pulse(0.1, 1.0 / 6.0, 0.3)
        self._add(start, _BROW_INNER + _BROW_OUTER + _EYE_WIDE,
                  np.stack([pulse, pulse, 0.8 * pulse, 0.8 * pulse, 0.2 * pulse, 0.2 * pulse], axis=1))
        self._last_flash = start
        self.events.append((start, "brow"))

    def _schedule_blink(self, start: int) -> None:
        rng = self._blinks
        duration = rng.uniform(0.12, 0.30)
        frames = max(4, int(round(duration * self.fps)))
        closing = max(1, int(round(0.35 * frames)))
        depth = rng.uniform(0.9, 1.0)
        up = _smoothstep(np.arange(1, closing + 1) / closing)
        down = 1.0 - _smoothstep(np.arange(1, frames - closing + 1) / (frames - closing))
        shape = depth * np.concatenate([up, down])
        self._add(start, _BLINK, np.stack([shape, shape], axis=1))
        self._last_blink = start
        self.events.append((start, "blink"))

    def _can_backchannel(self, start: int) -> bool:
        return (self.frame - self._last_backchannel >= self.timing.backchannel_refractory_s * self.fps
                and start >= self._busy_until + int(0.2 * self.fps))

    # -- one frame -------------------------------------------------------------------------------

    def _update_pitch(self, speaking: bool, semitones: float, energy: float) -> None:
        k, t = self.frame, self.timing
        voiced = speaking and not math.isnan(semitones)
        if voiced:
            self._pitch.add(semitones)
            self._energy.add(energy)
            if self._pitch.total % 5 == 0 and self._pitch.total >= t.pitch_warmup_s * self.fps:
                self._thresholds = (self._pitch.percentile(t.low_pitch_percentile), self._pitch.percentile(50.0),
                                    self._energy.percentile(50.0))
        self._recent.append((k, semitones if voiced else math.nan, energy))
        horizon = k - int(t.final_contour_s * self.fps) - 2
        while self._recent and self._recent[0][0] < horizon:
            self._recent.pop(0)

    def _final_contour(self, onset: int) -> tuple[float, float]:
        """Slope (semitones/s) of the pitch and mean energy (dB) of the speech before a pause."""
        window = [(f, st, e) for f, st, e in self._recent
                  if onset - self.timing.final_contour_s * self.fps <= f < onset and not math.isnan(st)]
        if len(window) < 4:
            return 0.0, math.nan
        frames = np.array([w[0] for w in window], dtype=float) * self.dt
        pitch = np.array([w[1] for w in window])
        slope = float(np.polyfit(frames - frames.mean(), pitch, 1)[0])
        return slope, float(np.mean([w[2] for w in window[-10:]]))

    def _backchannel_cues(self, speaking: bool, semitones: float, pause_onset: int | None) -> None:
        k, s, t, rng = self.frame, self.style, self.timing, self._events
        p_low, median, energy_median = self._thresholds
        # Ward & Tsukahara: a low-pitch region of >= 110 ms after >= 700 ms of speech
        if speaking and not math.isnan(semitones) and not math.isnan(p_low) and semitones < p_low:
            self._low_run += 1
        elif not speaking or (not math.isnan(semitones) and not math.isnan(p_low) and semitones >= p_low):
            self._low_run, self._low_fired = 0, False
        if (not self._low_fired and self._low_run >= math.ceil(t.low_pitch_min_s * self.fps)
                and self._pauses.speech_frames >= t.low_pitch_min_speech_s * self.fps):
            self._low_fired = True
            delay = t.low_pitch_response_s * rng.uniform(0.7, 1.15)
            start = k + int(round(delay * self.fps))
            if self._can_backchannel(start) and rng.random() < min(1.0, 0.3 * s.nod_rate):
                self._schedule_nod(start)
        # Gravano & Hirschberg: a pause after speech, more likely answered after a falling or
        # rising final contour and lower intensity
        if pause_onset is not None:
            slope, final_energy = self._final_contour(pause_onset)
            probability = 0.65 + (0.2 if slope < -3.0 or slope > 4.0 else 0.0)
            if not math.isnan(final_energy) and not math.isnan(energy_median) and final_energy < energy_median - 3.0:
                probability += 0.1
            probability = min(0.97, probability * s.nod_rate)
            delay = rng.uniform(*t.pause_response_s) * (1.2 - 0.4 * s.attentiveness)
            start = k + int(round(delay * self.fps))
            if self._can_backchannel(start) and rng.random() < probability:
                self._schedule_nod(start)

    def _brow_cues(self, speaking: bool, semitones: float, speaker_brow: float) -> None:
        k, s, t, rng = self.frame, self.style, self.timing, self._events
        median = self._thresholds[1]
        a, b = self._prev_pitch  # pitch of frames k-2, k-1
        accent = (speaking and not math.isnan(median) and not math.isnan(b) and not math.isnan(a)
                  and b >= a and (math.isnan(semitones) or semitones < b) and b >= median + t.accent_semitones)
        # the speaker's own brow raise: up by 0.15 within the last 0.2 s, to at least 0.25
        before = self._speaker_brow[(k - int(round(0.2 * self.fps))) % _RING] if k >= 0.2 * self.fps else 0.0
        mirrored = speaker_brow >= 0.25 and speaker_brow - before >= 0.15
        self._speaker_brow[k % _RING] = speaker_brow
        self._prev_pitch = [b, semitones]
        if (accent or mirrored) and k - self._last_flash >= t.brow_refractory_s * self.fps:
            chance = (0.35 if accent else 0.5) * min(s.expressiveness, 1.5)
            if rng.random() < chance:
                self._schedule_brow(k + int(round(rng.uniform(*t.brow_response_s) * self.fps)))

    def _blink_step(self, speaking_recently: bool, pause_onset: int | None, gaze_shift: float) -> None:
        s, rng = self.style, self._blinks
        rate = s.blink_rate * ((1.0 - 0.35 * s.attentiveness) if speaking_recently else 1.0)
        self._blink_acc += rate / 60.0 * self.dt
        if pause_onset is not None:
            self._blink_acc += 0.25  # blinks cluster at the speaker's pauses
        refractory = self.frame - self._last_blink >= int(0.3 * self.fps)
        if refractory and gaze_shift > 0.3 and rng.random() < 0.1:
            self._schedule_blink(self.frame)
            self._blink_acc, self._blink_budget = 0.0, float(rng.gamma(3.0, 1.0 / 3.0))
        elif refractory and self._blink_acc >= self._blink_budget:
            self._schedule_blink(self.frame)
            self._blink_acc, self._blink_budget = 0.0, float(rng.gamma(3.0, 1.0 / 3.0))

    def _gaze_step(self, speaking_recently: bool) -> float:
        """Advance the gaze state; returns the size of a gaze shift started now (0 if none)."""
        s, rng = self.style, self._gaze
        share = float(np.clip(0.6 + 0.25 * s.attentiveness - (0.0 if speaking_recently else 0.15), 0.3, 0.93))
        away_mean = 1.2 if speaking_recently else 1.5
        at_mean = away_mean * share / (1.0 - share)
        self._gaze_acc += self.dt / (away_mean if self._gaze_away else at_mean)
        shift = 0.0
        if self._gaze_acc >= self._gaze_budget:
            self._gaze_acc, self._gaze_budget = 0.0, float(rng.gamma(2.0, 0.5))
            self._gaze_away = not self._gaze_away
            if self._gaze_away:
                horizontal = rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.55)
                roll = rng.random()
                vertical = -rng.uniform(0.1, 0.5) if roll < 0.5 else rng.uniform(0.1, 0.35) if roll < 0.7 \
                    else rng.uniform(-0.08, 0.08)
                target = np.array([horizontal, vertical])
                self.events.append((self.frame, "gaze_away"))
            else:
                target = np.zeros(2)
                self.events.append((self.frame, "gaze_back"))
            shift = float(np.abs(target - self._gaze_target).max())
            self._gaze_target = target
        return shift

    def _continuous(self, speaker_smile_lagged: float, speaker_brow_down_lagged: float) -> np.ndarray:
        """This frame's contributions of the smooth processes (smile, gaze, sway, idle mouth)."""
        s, dt = self.style, self.dt
        row = np.zeros(CODE_DIM)
        # smile mimicry with a lag; asymmetric rise/decay
        target = 0.05 * s.smile_tendency + (0.25 + 0.75 * s.smile_tendency) * speaker_smile_lagged
        tau = 0.25 if target > self._smile else 0.6
        self._smile += (target - self._smile) * (1.0 - math.exp(-dt / tau))
        row[_SMILE] = self._smile
        row[_CHEEK] = 0.4 * self._smile
        row[_EYE_SQUINT] = 0.2 * self._smile
        target = 0.3 * min(s.expressiveness, 1.5) * speaker_brow_down_lagged
        self._brow_down += (target - self._brow_down) * (1.0 - math.exp(-dt / 0.4))
        row[_BROW_DOWN] = self._brow_down
        # gaze: saccade to the target, fixational jitter, head follows a little
        jitter = 0.012 * self._gaze_noise.next()
        self._eyes += (self._gaze_target - self._eyes) * (1.0 - math.exp(-dt / 0.03))
        horizontal, vertical = self._eyes + jitter
        if horizontal >= 0:
            row[_W["eyeLookOut_L"]], row[_W["eyeLookIn_R"]] = horizontal, horizontal
        else:
            row[_W["eyeLookIn_L"]], row[_W["eyeLookOut_R"]] = -horizontal, -horizontal
        if vertical >= 0:
            row[_W["eyeLookUp_L"]] = row[_W["eyeLookUp_R"]] = vertical
        else:
            row[_W["eyeLookDown_L"]] = row[_W["eyeLookDown_R"]] = -vertical
            row[_BLINK] += 0.25 * -vertical  # the lids follow a downward look
        self._head_follow += (0.25 * 30.0 * _DEG * self._eyes[0] - self._head_follow) * (1.0 - math.exp(-dt / 0.35))
        # sway: Ornstein-Uhlenbeck per channel, then smoothed
        noise = self._sway_noise.next()
        self._sway += -self._sway * dt / self.sway_tau + self.sway_sigma * np.sqrt(2.0 * dt / self.sway_tau) * noise
        self._sway_smooth += (self._sway - self._sway_smooth) * (1.0 - math.exp(-dt / 0.35))
        row[_PITCH:_TZ + 1] = self.posture + self._sway_smooth[:6]
        row[_YAW] += self._head_follow
        row[_JAW_OPEN] = 0.03 + self._sway_smooth[6]
        return row

    def _step(self, speaking: bool, semitones: float, energy: float, speaker_smile: float,
              speaker_brow: float, speaker_brow_down: float) -> np.ndarray:
        k = self.frame
        slot = k % _RING
        if speaking:
            self._last_speech = k
        speaking_recently = k - self._last_speech <= 2.0 * self.fps
        pause_onset = self._pauses.step(speaking)
        self._update_pitch(speaking, semitones, energy)
        self._backchannel_cues(speaking, semitones, pause_onset)
        self._brow_cues(speaking, semitones, speaker_brow)
        self._speaker_smile[slot] = speaker_smile
        self._speaker_brow_down[slot] = speaker_brow_down
        lag_slot = (k - self.mimicry_lag) % _RING
        lagged = k >= self.mimicry_lag
        gaze_shift = self._gaze_step(speaking_recently)
        self._blink_step(speaking_recently, pause_onset, gaze_shift)
        row = self._continuous(self._speaker_smile[lag_slot] if lagged else 0.0,
                               self._speaker_brow_down[lag_slot] if lagged else 0.0)
        row += self._pending[slot]
        self._pending[slot] = 0.0
        self.frame += 1
        return row

    # -- public ----------------------------------------------------------------------------------

    def push(self, cues: SpeakerCues) -> torch.Tensor:
        """Listener codes of the next ``T`` frames, given their speaker cues.

        Args:
            cues: :class:`SpeakerCues` of the frames following those already pushed.

        Returns:
            :math:`(T, 59)` float32 listener codes (weights in [0, 1], axis-angle head rotation,
            translation in cm).
        """
        if abs(cues.fps - self.fps) > 1e-6:
            raise AvatarInputError(f"speaker cues run at {cues.fps} fps; the teacher expects {self.fps}")
        speaking = frame_speaking(cues).tolist()
        pitch = frame_pitch_semitones(cues).double().tolist()
        energy = frame_energy_db(cues).double().tolist()
        smile = frame_speaker_smile(cues).double().tolist()
        brow = frame_speaker_brow_raise(cues).double().tolist()
        brow_down = torch.where(cues.face_visible, cues.expression_weights[:, list(BROW_DOWN_COLUMNS)].mean(1),
                                torch.zeros(len(cues))).double().tolist()
        rows = np.zeros((len(cues), CODE_DIM))
        for i in range(len(cues)):
            rows[i] = self._step(speaking[i], pitch[i], energy[i], smile[i], brow[i], brow_down[i])
        return _rows_to_codes(rows)

    def generate(self, cues: SpeakerCues) -> Motion:
        """Listener motion for a whole clip (the teacher must be fresh: no frames pushed yet)."""
        if self.frame:
            raise RuntimeError("generate() needs a fresh teacher; use push() to continue a stream")
        return codes_to_motion(self.push(cues), fps=self.fps)


def _rows_to_codes(rows: np.ndarray) -> torch.Tensor:
    """Working rows (weights, pitch, yaw, roll, translation) → listener codes (axis-angle)."""
    rows_t = torch.from_numpy(rows)
    weights = rows_t[:, :NUM_EXPRESSIONS].clamp(0.0, 1.0)
    pitch, yaw, roll = rows_t[:, _PITCH], rows_t[:, _YAW], rows_t[:, _ROLL]
    rotation = euler_to_axis_angle(pitch, yaw, roll)
    return torch.cat([weights, rotation, rows_t[:, _TX:_TZ + 1]], dim=1).float()


def euler_to_axis_angle(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Axis-angle :math:`(T, 3)` of the head rotation ``R_y(yaw) R_x(pitch) R_z(roll)``
    (:func:`avatar.core.geometry.euler_to_matrix`): pitch > 0 nods down, yaw > 0 turns to the head's left."""
    if pitch.numel() == 0:
        return torch.zeros(0, 3, dtype=pitch.dtype)
    return matrix_to_axis_angle(euler_to_matrix(yaw, pitch, roll))


def teach(cues: SpeakerCues, style: ListenerStyle | str | None = None, seed: int = 0) -> Motion:
    """Listener motion for speaker cues (one call of a fresh :class:`ListenerTeacher`).

    Args:
        cues: :class:`SpeakerCues` of ``T`` frames.
        style: a :class:`ListenerStyle`, ``--style`` text, or ``None`` for neutral.
        seed: random seed.

    Returns:
        :class:`~avatar.core.motion.Motion` of ``T`` frames at the cues' rate.
    """
    if isinstance(style, str) or style is None:
        style = ListenerStyle.parse(style)
    return ListenerTeacher(style, seed=seed, fps=cues.fps).generate(cues)


# ----------------------------------------------------------------------------------------------
# CLI


def load_cues(path: str | Path) -> SpeakerCues:
    """Cues of a clip: a ``*.cues.npz`` file is read, any media file is analysed."""
    path = Path(path)
    if path.name.endswith(".cues.npz"):
        return SpeakerCues.load(path)
    from drivers.listener.cues import speaker_cues

    return speaker_cues(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research.listener.teacher",
        description="Behavioural listener teacher: speaker clip -> listener motion (.motion.npz).")
    parser.add_argument("clip", help="speaker video, audio file, or *.cues.npz")
    parser.add_argument("-o", "--output", required=True, help="output *.motion.npz")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--style", default=None,
                        help="presets (" + ", ".join(STYLE_PRESETS) + ") and/or name=value pairs, e.g. "
                             "'warm,nod_rate=1.5'; names: " + ", ".join(f.name for f in fields(ListenerStyle)))
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = parser.parse_args(argv)
    try:
        style = ListenerStyle.parse(args.style)
        output = Path(args.output)
        if output.exists() and not args.force:
            raise AvatarInputError(f"{output} exists; pass --force to overwrite")
        cues = load_cues(args.clip)
        if len(cues) == 0:
            raise AvatarInputError(f"{args.clip}: no motion frames (the clip is empty)")
        teacher = ListenerTeacher(style, seed=args.seed, fps=cues.fps)
        motion = teacher.generate(cues)
        motion.save(output, force=args.force)
    except AvatarInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = {kind: sum(1 for _, k in teacher.events if k == kind) for kind in ("nod", "blink", "brow", "smile")}
    print(f"{output}: {motion.num_frames} frames ({motion.num_frames / motion.fps:.2f} s), "
          + ", ".join(f"{v} {k}s" for k, v in counts.items()))
    return 0


__all__ = ["ListenerTeacher", "TeacherTiming", "euler_to_axis_angle", "load_cues", "main", "teach"]
