"""Faces and their 478 landmarks in a photo, with MediaPipe 0.10.14 (models ship inside the wheel).

Two stages, as MediaPipe's own face-mesh graph does, but with the detector we choose:

1. **Detection** — BlazeFace full-range (``model_selection=1``, faces up to ~5 m, small in the frame)
   and short-range (``model_selection=0``, close-ups) both run; their boxes are merged by
   non-maximum suppression. Faces are ordered largest first (``face_index=0`` is the largest).
2. **Landmarks** — Face Mesh with iris refinement (478 points) on a square crop around the chosen box,
   resampled to :data:`CROP_SIZE`, so small faces in large photos get the landmark model's full
   resolution; the points are mapped back into the photo's pixels.

Coordinates are working-image pixels: x right, y down, the image spanning ``[0, W] × [0, H]``; the
third landmark coordinate is MediaPipe's relative depth in the same pixel units (larger = farther).
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from avatar.core.errors import AvatarInputError

#: Side of the square crop the landmark model sees.
CROP_SIZE = 384
#: Crop side relative to the detector's box side.
CROP_MARGIN = 2.0
#: Smallest face (detector box side, original pixels) we fit.
MIN_FACE_PIXELS = 40
DETECTION_CONFIDENCE = 0.5
NMS_IOU = 0.3
_LOCK = threading.Lock()


@dataclass(frozen=True)
class FaceBox:
    """One detected face.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in working-image pixels.
        score: detector confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    score: float

    @property
    def side(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class FaceObservation:
    """What the fitter is given about one face.

    Attributes:
        landmarks: MediaPipe's 478 points (x, y, depth) in working-image pixels, shape :math:`(478, 3)` float32.
        face: the detection the landmarks belong to.
        num_faces: how many faces the photo holds.
        face_index: which of them (0 = largest) this is.
    """

    landmarks: np.ndarray
    face: FaceBox
    num_faces: int
    face_index: int


@contextmanager
def _quiet_native_stderr():
    """Silence MediaPipe's native (absl / TFLite) log lines, which bypass Python, for the duration."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@lru_cache(maxsize=1)
def _models():
    """The three MediaPipe solutions, created once per process (they are not re-entrant: use _LOCK)."""
    with warnings.catch_warnings(), _quiet_native_stderr():
        warnings.simplefilter("ignore")
        from avatar.core.mediapipe_import import import_mediapipe

        mp = import_mediapipe()  # imported lazily: ~0.4 s

        full = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=DETECTION_CONFIDENCE)
        short = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=DETECTION_CONFIDENCE)
        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=3, refine_landmarks=True, min_detection_confidence=0.3
        )
    return full, short, mesh


@lru_cache(maxsize=1)
def _segmenter():
    """MediaPipe's selfie segmentation (general model), created once per process (use _LOCK)."""
    with warnings.catch_warnings(), _quiet_native_stderr():
        warnings.simplefilter("ignore")
        from avatar.core.mediapipe_import import import_mediapipe

        return import_mediapipe().solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def person_mask(image: np.ndarray) -> np.ndarray:
    """Probability that each pixel shows a person (hair and clothes included), MediaPipe's selfie segmentation.

    Args:
        image: RGB image, shape :math:`(H, W, 3)` uint8.

    Returns:
        shape :math:`(H, W)` float32 in [0, 1].
    """
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _segmenter().process(np.ascontiguousarray(image))
    return np.asarray(result.segmentation_mask, np.float32)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_faces(image: np.ndarray) -> list[FaceBox]:
    """All faces in an image, largest first.

    Args:
        image: RGB image, shape :math:`(H, W, 3)` uint8.

    Returns:
        the detections (possibly empty), ordered by box area, largest first.
    """
    height, width = image.shape[:2]
    full, short, _ = _models()
    boxes: list[FaceBox] = []
    with _LOCK, warnings.catch_warnings(), _quiet_native_stderr():
        warnings.simplefilter("ignore")  # protobuf's deprecation notice inside MediaPipe
        results = [full.process(image), short.process(image)]
    for result in results:
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0, y0 = rel.xmin * width, rel.ymin * height
            boxes.append(FaceBox((x0, y0, x0 + rel.width * width, y0 + rel.height * height), float(detection.score[0])))
    boxes.sort(key=lambda b: -b.score)
    kept: list[FaceBox] = []
    for candidate in boxes:
        if all(_iou(candidate.box, k.box) < NMS_IOU for k in kept):
            kept.append(candidate)
    kept.sort(key=lambda b: -b.area)
    return kept


def crop_transform(face: FaceBox, size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> tuple[float, float, float]:
    """The square crop around a face: ``crop_px = (image_px - (x0, y0)) * scale``.

    Returns:
        ``(x0, y0, scale)``.
    """
    cx, cy = face.centre
    side = face.side * margin
    return cx - side / 2, cy - side / 2, size / side


def crop_image(image: np.ndarray, x0: float, y0: float, scale: float, size: int,
               fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """Resample a square crop; outside the image the edge colours continue (or ``fill``).

    Args:
        image: RGB image, shape :math:`(H, W, 3)` uint8.
        x0, y0: top-left corner of the crop in image pixels.
        scale: crop pixels per image pixel.
        size: crop side in pixels.
        fill: RGB colour outside the image instead of continuing the edge.

    Returns:
        the crop, shape :math:`(size, size, 3)` uint8.
    """
    height, width = image.shape[:2]
    side = size / scale
    # integer window holding the crop (plus a pixel for bilinear taps), padded by edge replication
    c0, r0 = int(np.floor(x0)) - 1, int(np.floor(y0)) - 1
    c1, r1 = int(np.ceil(x0 + side)) + 1, int(np.ceil(y0 + side)) + 1
    window = image[max(r0, 0):min(r1, height), max(c0, 0):min(c1, width)]
    if window.size == 0:
        window = image[min(max(r0, 0), height - 1):min(max(r0, 0), height - 1) + 1, min(max(c0, 0), width - 1):min(max(c0, 0), width - 1) + 1]
    pads = ((max(0, -r0), max(0, r1 - height)), (max(0, -c0), max(0, c1 - width)), (0, 0))
    if fill is None:
        window = np.pad(window, pads, mode="edge")
    else:
        window = np.stack([np.pad(window[..., c], pads[:2], constant_values=fill[c]) for c in range(3)], -1)
    pil = Image.fromarray(np.ascontiguousarray(window))
    factor = max(1, int(side // (2 * size)))
    if factor > 1:  # box-filter first so large downscales do not alias
        pil = pil.reduce(factor)
    step = 1 / (scale * factor)
    data = (step, 0.0, (x0 - c0) / factor, 0.0, step, (y0 - r0) / factor)
    out = pil.transform((size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def face_landmarks(image: np.ndarray, face: FaceBox) -> np.ndarray | None:
    """MediaPipe's 478 landmarks of one detected face.

    Args:
        image: RGB image, shape :math:`(H, W, 3)` uint8.
        face: the detection.

    Returns:
        (x, y, depth) in image pixels, shape :math:`(478, 3)` float32, or ``None`` when the landmark
        model finds no face in the crop.
    """
    _, _, mesh = _models()
    x0, y0, scale = crop_transform(face)
    crop = crop_image(image, x0, y0, scale, CROP_SIZE)
    with _LOCK, warnings.catch_warnings(), _quiet_native_stderr():
        warnings.simplefilter("ignore")
        result = mesh.process(np.ascontiguousarray(crop))
    if not result.multi_face_landmarks:
        return None
    candidates = []
    for found in result.multi_face_landmarks:
        points = np.array([(p.x, p.y, p.z) for p in found.landmark], dtype=np.float64) * CROP_SIZE
        centre = points[:, :2].mean(0)
        candidates.append((float(np.linalg.norm(centre - CROP_SIZE / 2)), points))
    points = min(candidates, key=lambda c: c[0])[1]
    out = np.empty_like(points)
    out[:, 0] = points[:, 0] / scale + x0
    out[:, 1] = points[:, 1] / scale + y0
    out[:, 2] = points[:, 2] / scale
    return out.astype(np.float32)


def observe_face(image: np.ndarray, name: str, face_index: int | None = None, pixel_scale: float = 1.0) -> FaceObservation:
    """Detect faces, choose one, and place its 478 landmarks.

    Args:
        image: RGB working image, shape :math:`(H, W, 3)` uint8.
        name: the photo's name, for messages.
        face_index: which face (0 = largest); ``None`` picks the largest.
        pixel_scale: original pixels per working pixel (to judge the face size in the original).

    Returns:
        the :class:`FaceObservation`.

    Raises:
        AvatarInputError: no face, ``face_index`` out of range, face too small, no landmarks.
    """
    faces = detect_faces(image)
    if not faces:
        raise AvatarInputError(f"no face found in {name}; use a photo with a clearly visible face")
    index = 0 if face_index is None else int(face_index)
    if not 0 <= index < len(faces):
        raise AvatarInputError(
            f"--face-index {index} is out of range: {name} has {len(faces)} face{'s' if len(faces) > 1 else ''} "
            f"(0 = largest … {len(faces) - 1})"
        )
    face = faces[index]
    side = face.side * pixel_scale
    if side < MIN_FACE_PIXELS:
        raise AvatarInputError(
            f"the face in {name} is too small ({side:.0f} px); use a photo where the face is at least {MIN_FACE_PIXELS} px wide"
        )
    landmarks = face_landmarks(image, face)
    if landmarks is None:
        raise AvatarInputError(f"no face found in {name} (a face-like region had no facial landmarks); use a clearer photo")
    return FaceObservation(landmarks, face, len(faces), index)
