"""Live Link Face-style CSV: the take format of Epic's Live Link Face iOS app, for Unreal / Unity / Blender.

Columns (63), as the app writes them and open importers read them (e.g. the header constant in
JimWest/PyLiveLinkFace and the Live Link Face importers for Blender and Maya)::

    Timecode, BlendShapeCount, <52 ARKit blendshapes in Live Link order, PascalCase>,
    HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll

``BlendShapeCount`` is 61 (52 shapes + 9 angles). Angles are in radians.

From our 53-weight expression code to ARKit's 52 by :mod:`avatar.core.expressions`: ``BrowInnerUp``
and ``CheekPuff`` are the means of ICT's ``_L``/``_R`` pairs, ``TongueOut`` is 0; every other shape maps
one to one (``eyeBlink_L`` → ``EyeBlinkLeft``; ``_L`` is the face's own left, as in ARKit). Weights are
clipped to [0, 1].

Angles. The avatar's head frame (the ICT/ARKit face frame) has x to the head's own left, y up,
z out of the face toward the viewer. ``head_rotation`` (axis-angle) is decomposed as
``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)`` (intrinsic Y-X-Z: turn, then nod, then tilt), each angle
positive by the right-hand rule about its axis: yaw > 0 turns the face toward its own left, pitch > 0
tips the chin down, roll > 0 lifts the left ear (tilts toward the right shoulder). Eye angles use
the same frame, derived from the eyeLook weights (ICT's eyes are blendshapes, not bones): yaw =
``EYE_YAW_RANGE`` × (look toward the head's left − look toward its right), pitch = ``EYE_PITCH_RANGE``
× (lookDown − lookUp), roll = 0. For the left eye "out" is toward the head's left, for the right
eye "in" is.

Timecode ``HH:MM:SS:FF.mmm``: hours, minutes, seconds, frame within the second at the motion fps,
and the fraction of a frame in thousandths (``.000`` for frames on the motion's own grid).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, EXPRESSION_NAMES, arkit_from_expression, expression_from_arkit
from avatar.core.geometry import axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle, matrix_to_euler
from avatar.core.io import atomic_write_text
from avatar.core.motion import Motion

#: The 52 ARKit blendshapes in Live Link Face column order (its PascalCase spelling of ARKit's names).
LIVE_LINK_BLENDSHAPES: tuple[str, ...] = tuple(name[0].upper() + name[1:] for name in ARKIT_NAMES)
ANGLE_COLUMNS = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *LIVE_LINK_BLENDSHAPES, *ANGLE_COLUMNS)
BLENDSHAPE_COUNT = len(LIVE_LINK_BLENDSHAPES) + len(ANGLE_COLUMNS)  # 61, as the app writes

#: Eye rotation (rad) at an eyeLook weight of 1: about the human oculomotor range used in practice.
EYE_YAW_RANGE = math.radians(30.0)
EYE_PITCH_RANGE = math.radians(25.0)


def head_angles(head_rotation: np.ndarray) -> np.ndarray:
    """Axis-angle head rotations → (yaw, pitch, roll) in radians (see the module docstring).

    Args:
        head_rotation: :math:`(T, 3)` axis-angle (rad).

    Returns:
        :math:`(T, 3)` yaw, pitch, roll (rad).
    """
    return matrix_to_euler(axis_angle_to_matrix(np.asarray(head_rotation, np.float64).reshape(-1, 3)))


def head_rotation_from_angles(angles: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in radians → axis-angle, the inverse of :func:`head_angles`.

    Args:
        angles: :math:`(T, 3)`.

    Returns:
        :math:`(T, 3)` axis-angle (rad).
    """
    angles = np.asarray(angles, np.float64).reshape(-1, 3)
    return matrix_to_axis_angle(euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))


def eye_angles(weights: np.ndarray) -> np.ndarray:
    """Eye (yaw, pitch, roll) of the left then the right eye from the eyeLook weights.

    Args:
        weights: :math:`(T, 53)` expression weights.

    Returns:
        :math:`(T, 6)` radians: left yaw, pitch, roll, right yaw, pitch, roll.
    """
    w = {name: np.asarray(weights, np.float64)[:, i] for i, name in enumerate(EXPRESSION_NAMES)}
    zero = np.zeros_like(w["eyeLookUp_L"])
    left_yaw = EYE_YAW_RANGE * (w["eyeLookOut_L"] - w["eyeLookIn_L"])
    right_yaw = EYE_YAW_RANGE * (w["eyeLookIn_R"] - w["eyeLookOut_R"])
    left_pitch = EYE_PITCH_RANGE * (w["eyeLookDown_L"] - w["eyeLookUp_L"])
    right_pitch = EYE_PITCH_RANGE * (w["eyeLookDown_R"] - w["eyeLookUp_R"])
    return np.stack([left_yaw, left_pitch, zero, right_yaw, right_pitch, zero], axis=1)


def format_timecode(seconds: float, fps: float) -> str:
    """``HH:MM:SS:FF.mmm`` for a time in seconds at ``fps`` (see the module docstring).

    Computed in integer thousandths of a frame, so frames on the fps grid never round to ``.999``.
    """
    if not seconds >= 0:
        raise AvatarInputError(f"timecode needs a time >= 0 s, got {seconds}")
    ticks_per_second = round(fps * 1000)
    whole, ticks = divmod(round(seconds * ticks_per_second), ticks_per_second)
    frame, millis = divmod(ticks, 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{frame:02d}.{millis:03d}"


def parse_timecode(timecode: str, fps: float) -> float:
    """Seconds of a ``HH:MM:SS:FF[.fff]`` timecode at ``fps``."""
    try:
        hours, minutes, seconds, frames = timecode.strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(frames) / fps
    except ValueError as error:
        raise AvatarInputError(f"bad Live Link timecode {timecode!r}; expected HH:MM:SS:FF.mmm") from error


def livelink_csv_text(motion: Motion) -> str:
    """The CSV text of a motion (header + one row per frame)."""
    blendshapes = arkit_from_expression(motion.weights)
    angles = np.concatenate([head_angles(motion.head_rotation), eye_angles(motion.weights)], axis=1)
    lines = [",".join(HEADER)]
    for t, shapes, rotations in zip(motion.time, blendshapes, angles):
        values = ",".join(f"{v:.6f}" for v in shapes) + "," + ",".join(f"{v:.6f}" for v in rotations)
        lines.append(f"{format_timecode(float(t), motion.fps)},{BLENDSHAPE_COUNT},{values}")
    return "\n".join(lines) + "\n"


def write_livelink_csv(path: str | os.PathLike, motion: Motion, force: bool = False) -> Path:
    """Write a motion as a Live Link Face-style CSV, atomically; refuses to overwrite unless ``force``."""
    return atomic_write_text(path, livelink_csv_text(motion), force=force)


@dataclass(frozen=True)
class LiveLinkTake:
    """A Live Link Face CSV as arrays.

    Attributes:
        timecodes: T timecode strings as written.
        time: :math:`(T,)` seconds relative to the first row.
        blendshapes: :math:`(T, 52)` in :data:`LIVE_LINK_BLENDSHAPES` order.
        angles: :math:`(T, 9)` radians in :data:`ANGLE_COLUMNS` order (zeros where the file has none).
    """

    timecodes: tuple[str, ...]
    time: np.ndarray
    blendshapes: np.ndarray
    angles: np.ndarray

    def to_motion(self, fps: float) -> Motion:
        """The take as a :class:`~avatar.core.motion.Motion` (head translation 0; eye angles dropped,
        the eyeLook weights carry gaze)."""
        return Motion(
            fps=fps,
            weights=expression_from_arkit(self.blendshapes),
            head_rotation=head_rotation_from_angles(self.angles[:, :3]),
            head_translation=np.zeros((len(self.time), 3), np.float32),
            time=self.time,
        )


def read_livelink_csv(path: str | os.PathLike, fps: float) -> LiveLinkTake:
    """Read a Live Link Face CSV (ours or the app's; columns matched by name, case-insensitively).

    Args:
        path: the CSV file.
        fps: the frame rate the timecodes' frame field counts in (the app records at 60 or 30).

    Raises:
        AvatarInputError: missing file, no Timecode column, missing blendshape columns, bad numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise AvatarInputError(f"Live Link CSV {path} not found")
    try:
        rows = [line.split(",") for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError as error:
        raise AvatarInputError(f"{path} is not a text CSV file ({error.reason})") from error
    if len(rows) < 2:
        raise AvatarInputError(f"{path} has no frames; expected a Live Link Face CSV with a header row")
    header = [name.strip().lower() for name in rows[0]]
    if "timecode" not in header:
        raise AvatarInputError(f"{path} is not a Live Link Face CSV (no Timecode column)")
    missing = [name for name in LIVE_LINK_BLENDSHAPES if name.lower() not in header]
    if missing:
        raise AvatarInputError(f"{path} lacks blendshape columns {missing[:5]}{'…' if len(missing) > 5 else ''}")
    bad = next((i for i, row in enumerate(rows[1:], start=2) if len(row) > len(header)), None)
    if bad is not None:
        raise AvatarInputError(f"{path}: line {bad} has {len(rows[bad - 1])} columns, the header {len(header)}")
    rows = [row + [""] * (len(header) - len(row)) for row in rows]  # the app writes short rows on lost frames
    timecode_column = header.index("timecode")
    timecodes = tuple(row[timecode_column].strip() for row in rows[1:])
    try:
        values = np.array([[float(v) if i != timecode_column and v.strip() else 0.0 for i, v in enumerate(row)] for row in rows[1:]])
    except ValueError as error:
        raise AvatarInputError(f"{path} holds a non-numeric value ({error})") from error
    if not np.isfinite(values).all():
        raise AvatarInputError(f"{path} holds NaN or infinite values")

    def column(name: str) -> np.ndarray:
        return values[:, header.index(name.lower())] if name.lower() in header else np.zeros(len(values))

    seconds = np.array([parse_timecode(tc, fps) for tc in timecodes])
    return LiveLinkTake(
        timecodes=timecodes,
        time=seconds - seconds[0],
        blendshapes=np.stack([column(n) for n in LIVE_LINK_BLENDSHAPES], axis=1).astype(np.float32),
        angles=np.stack([column(n) for n in ANGLE_COLUMNS], axis=1),
    )
