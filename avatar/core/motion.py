"""The motion file (``*.motion.npz``): expression weights and head pose over time.

A plain NumPy ``.npz`` archive, readable without this library (``np.load(path)``), holding

====================  ===========  ==================================================================
key                   shape        meaning
====================  ===========  ==================================================================
``fps``               ()           frames per second (float)
``names``             (53,)        expression names, ICT order and spelling (unicode strings)
``weights``           (T, 53)      expression weights, nominally in [0, 1]
``head_rotation``     (T, 3)       axis-angle rotation of the head (rad) in the avatar's head frame
``head_translation``  (T, 3)       head translation in the avatar's head frame (template units, cm)
``time``              (T,)         seconds of each frame, strictly increasing
====================  ===========  ==================================================================

No pickled objects: the names are a unicode array and files are read with ``allow_pickle=False``.
:meth:`Motion.load` also reads files whose ``names`` are ARKit's 52 (canonical or Live Link spelling, any
order; :mod:`avatar.core.expressions` says how they map) with ``weights`` of shape ``(T, 52)``.

Example:
    >>> motion = Motion.from_arrays(weights, fps=30.0)          # doctest: +SKIP
    >>> motion.save("take.motion.npz")                           # doctest: +SKIP
    >>> Motion.load("take.motion.npz").weights.shape             # doctest: +SKIP
    (T, 53)
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, NUM_EXPRESSIONS, column_order, expression_from_arkit
from avatar.core.io import atomic_output_file

#: The internal motion rate.
MOTION_FPS = 30.0


MOTION_KEYS = ("fps", "names", "weights", "head_rotation", "head_translation", "time")


def _numpy(x, dtype) -> np.ndarray:
    """A torch tensor or array-like as a new NumPy array of ``dtype`` (IO edge)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=dtype, copy=True)


@dataclass(frozen=True)
class Motion:
    """Expression weights and head pose over time, as stored in a ``*.motion.npz`` file.

    Attributes:
        fps: frames per second.
        weights: :math:`(T, 53)` float32 expression weights in :data:`EXPRESSION_NAMES` order.
        head_rotation: :math:`(T, 3)` float32 axis-angle head rotation (rad).
        head_translation: :math:`(T, 3)` float32 head translation (template units).
        time: :math:`(T,)` float64 seconds, strictly increasing.

    The constructor converts and validates its inputs (torch tensors are accepted) and raises
    :class:`AvatarInputError` on wrong shapes, non-finite values or a bad time axis.
    """

    fps: float
    weights: np.ndarray
    head_rotation: np.ndarray
    head_translation: np.ndarray
    time: np.ndarray

    def __post_init__(self) -> None:
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise AvatarInputError(f"motion fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "fps", fps)
        arrays = {}
        for name, dtype, tail in (
            ("weights", np.float32, (NUM_EXPRESSIONS,)),
            ("head_rotation", np.float32, (3,)),
            ("head_translation", np.float32, (3,)),
            ("time", np.float64, ()),
        ):
            try:
                arrays[name] = (_numpy(getattr(self, name), dtype), tail)
            except (TypeError, ValueError) as error:
                raise AvatarInputError(f"motion {name} is not a numeric array ({error})") from error
        num_frames = arrays["weights"][0].shape[0] if arrays["weights"][0].ndim else 0
        if num_frames == 0:
            raise AvatarInputError("motion has no frames (weights must be T x 53 with T >= 1)")
        for name, (array, tail) in arrays.items():
            if array.shape != (num_frames, *tail):
                want = " x ".join(["T", *map(str, tail)])
                raise AvatarInputError(f"motion {name} has shape {array.shape}; expected {want} with T = {num_frames}")
            if not np.isfinite(array).all():
                raise AvatarInputError(f"motion {name} contains NaN or infinite values")
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if num_frames > 1 and not (np.diff(self.time) > 0).all():
            raise AvatarInputError("motion time must be strictly increasing")

    @property
    def names(self) -> tuple[str, ...]:
        """The 53 expression names (ICT order and spelling, :data:`~avatar.core.expressions.EXPRESSION_NAMES`)."""
        return EXPRESSION_NAMES

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return self.weights.shape[0]

    def __len__(self) -> int:
        return self.num_frames

    @classmethod
    def from_arrays(cls, weights, head_rotation=None, head_translation=None, fps: float = MOTION_FPS, time=None) -> Motion:
        """A motion from per-frame arrays; pose defaults to rest and time to ``arange(T) / fps``.

        Args:
            weights: :math:`(T, 53)` expression weights (array or tensor).
            head_rotation: :math:`(T, 3)` axis-angle (rad), or ``None`` for zeros.
            head_translation: :math:`(T, 3)`, or ``None`` for zeros.
            fps: frames per second.
            time: :math:`(T,)` seconds, or ``None`` for ``arange(T) / fps``.
        """
        weights = _numpy(weights, np.float32)
        num_frames = weights.shape[0] if weights.ndim else 0
        zeros = np.zeros((num_frames, 3), np.float32)
        return cls(
            fps=fps,
            weights=weights,
            head_rotation=zeros if head_rotation is None else head_rotation,
            head_translation=zeros if head_translation is None else head_translation,
            time=np.arange(num_frames) / float(fps) if time is None else time,
        )

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write the motion file atomically; refuses to overwrite unless ``force``. Returns ``path``."""
        with atomic_output_file(path, force=force) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                fps=np.float64(self.fps),
                names=np.array(EXPRESSION_NAMES, dtype=np.str_),
                weights=self.weights,
                head_rotation=self.head_rotation,
                head_translation=self.head_translation,
                time=self.time,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Motion:
        """Read and validate a motion file.

        Columns are reordered to :data:`EXPRESSION_NAMES` when the file lists the same names in
        another order.

        Raises:
            AvatarInputError: missing file, not an ``.npz``, missing keys, wrong shapes, NaN,
                unknown or missing expression names.
        """
        path = Path(path)
        if not path.is_file():
            raise AvatarInputError(f"motion file {path} not found")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in MOTION_KEYS if key not in archive.files]
                if missing:
                    raise AvatarInputError(f"motion file {path} lacks {', '.join(missing)}; expected keys {', '.join(MOTION_KEYS)}")
                data = {key: archive[key] for key in MOTION_KEYS}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            if isinstance(error, AvatarInputError):
                raise
            raise AvatarInputError(f"{path} is not a readable motion .npz file ({error})") from error
        fps = data["fps"]
        if fps.shape != () or not np.issubdtype(fps.dtype, np.number):
            raise AvatarInputError(f"motion file {path}: fps must be one number, got {fps.dtype} of shape {fps.shape}")
        names = data["names"]
        if names.dtype.kind != "U" or names.ndim != 1:
            raise AvatarInputError(f"motion file {path}: names must be a 1-D array of strings")
        order = column_order(names)
        if order is None:
            unknown = sorted(set(map(str, names)) - set(EXPRESSION_NAMES))
            raise AvatarInputError(
                f"motion file {path}: expression names are neither the 53 ICT names nor ARKit's 52"
                f" (first unknown: {unknown[:3] or 'none'}, {len(names)} names)"
            )
        weights = data["weights"]
        if weights.ndim != 2 or weights.shape[1] != len(names):
            raise AvatarInputError(f"motion file {path}: weights have shape {weights.shape}; expected T x {len(names)}")
        table, columns = order
        weights = weights[:, columns]
        if table == "arkit":
            weights = expression_from_arkit(weights)
        try:
            return cls(float(fps), weights, data["head_rotation"], data["head_translation"], data["time"])
        except ValueError as error:  # AvatarInputError included; also non-numeric arrays
            raise AvatarInputError(f"motion file {path}: {error}") from error
