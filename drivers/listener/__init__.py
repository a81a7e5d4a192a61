"""The virtual listener: speaker cues, the behavioural teacher, metrics and training data.

Listener code layout (one row per motion frame at 30 fps), shared by the teacher, the datasets,
the metrics and the model:

=============  =========  =======================================================================
columns        size       meaning
=============  =========  =======================================================================
``0:53``       53         expression weights, ICT order, ARKit names (:data:`EXPRESSION_NAMES`)
``53:56``      3          head rotation, axis-angle (rad), avatar head frame (x: head's left,
                          y: up, z: forward); a positive x component tilts the face down (a nod)
``56:59``      3          head translation (template units, cm)
=============  =========  =======================================================================

Modules: :mod:`drivers.listener.cues` (speaker cues of a clip), :mod:`~drivers.listener.teacher`
(rule-based listener), :mod:`~drivers.listener.metrics` (DIM's evaluation protocol, baselines,
responsiveness), :mod:`~drivers.listener.datasets` (training pairs, ViCo / Learning2Listen loaders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.motion import EXPRESSION_NAMES, MOTION_FPS, NUM_EXPRESSIONS, Motion

#: Columns of a listener code row (53 weights + 3 rotation + 3 translation).
CODE_DIM = NUM_EXPRESSIONS + 6
EXPRESSION_SLICE = slice(0, NUM_EXPRESSIONS)
ROTATION_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 3)
TRANSLATION_SLICE = slice(NUM_EXPRESSIONS + 3, NUM_EXPRESSIONS + 6)
POSE_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + 6)

if TYPE_CHECKING:  # torch is imported where used: `avatar listen` starts its face tracking process first
    import torch

__all__ = [
    "CODE_DIM", "EXPRESSION_NAMES", "EXPRESSION_SLICE", "MOTION_FPS", "POSE_SLICE", "ROTATION_SLICE",
    "TRANSLATION_SLICE", "codes_to_motion", "motion_to_codes",
]


def motion_to_codes(motion: Motion) -> torch.Tensor:
    """The listener codes of a motion.

    Args:
        motion: a :class:`~drivers.motion.Motion` of ``T`` frames.

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
        :class:`~drivers.motion.Motion` with ``time = arange(T) / fps``.
    """
    import torch

    codes = torch.as_tensor(codes, dtype=torch.float32)
    if codes.ndim != 2 or codes.shape[1] != CODE_DIM:
        from avatar.errors import AvatarInputError

        raise AvatarInputError(f"listener codes must be T x {CODE_DIM}, got {tuple(codes.shape)}")
    return Motion.from_arrays(
        codes[:, EXPRESSION_SLICE], codes[:, ROTATION_SLICE], codes[:, TRANSLATION_SLICE], fps=fps
    )

