"""The listener code layout: one row per motion frame at 30 fps, shared by the listener, its training
data, its metrics and the renderer.

=============  =========  =======================================================================
columns        size       meaning
=============  =========  =======================================================================
``0:53``       53         expression weights, ICT order (:data:`~avatar.core.expressions.EXPRESSION_NAMES`)
``53:56``      3          head rotation, axis-angle (rad), avatar head frame (x: head's left,
                          y: up, z: forward); a positive x component tilts the face down (a nod)
``56:59``      3          head translation (template units, cm)
=============  =========  =======================================================================

Index codes with the slices below, never with bare numbers. No torch at import: ``avatar listen``
imports this before torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, NUM_EXPRESSIONS
from avatar.core.motion import MOTION_FPS, Motion

if TYPE_CHECKING:
    import torch

#: Columns of a listener code row (53 weights + 3 rotation + 3 translation).
CODE_DIM = NUM_EXPRESSIONS + 6
EXPRESSION_SLICE = slice(0, NUM_EXPRESSIONS)
ROTATION_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 3)
TRANSLATION_SLICE = slice(NUM_EXPRESSIONS + 3, NUM_EXPRESSIONS + 6)
POSE_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 6)
#: Columns of the two eyelids (blinks are counted on the left one).
BLINK_LEFT = EXPRESSION_NAMES.index("eyeBlink_L")
BLINK_RIGHT = EXPRESSION_NAMES.index("eyeBlink_R")

__all__ = [
    "BLINK_LEFT", "BLINK_RIGHT", "CODE_DIM", "EXPRESSION_SLICE", "POSE_SLICE", "ROTATION_SLICE", "TRANSLATION_SLICE",
    "codes_to_motion", "motion_to_codes",
]


def motion_to_codes(motion: Motion) -> torch.Tensor:
    """The listener codes of a motion.

    Args:
        motion: a :class:`~avatar.core.motion.Motion` of ``T`` frames.

    Returns:
        :math:`(T, 59)` float32: weights, head rotation, head translation.
    """
    import torch

    parts = [motion.weights, motion.head_rotation, motion.head_translation]
    return torch.cat([torch.from_numpy(part.copy()) for part in parts], dim=1).float()


def codes_to_motion(codes: torch.Tensor, fps: float = MOTION_FPS) -> Motion:
    """A motion from listener codes (the inverse of :func:`motion_to_codes`).

    Args:
        codes: :math:`(T, 59)` listener codes.
        fps: frames per second.

    Returns:
        :class:`~avatar.core.motion.Motion` with ``time = arange(T) / fps``.
    """
    import torch

    codes = torch.as_tensor(codes, dtype=torch.float32)
    if codes.ndim != 2 or codes.shape[1] != CODE_DIM:
        raise AvatarInputError(f"listener codes must be T x {CODE_DIM}, got {tuple(codes.shape)}")
    return Motion.from_arrays(
        codes[:, EXPRESSION_SLICE], codes[:, ROTATION_SLICE], codes[:, TRANSLATION_SLICE], fps=fps
    )
