"""Perceiving a photo or a clip: every frame through :class:`~drivers.perception.stream.PerceptionStream`,
then what only the whole clip tells — the main face, each face's time on screen, captions, a summary.

The offline path is the stream: a clip's frames (MediaPipe a few frames ahead on its own thread, as
``avatar track``) and their audio are pushed one by one, so ``perceive_video`` and a live loop give the same
numbers.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from drivers.face_mesh import DetectedFaces
from drivers.perception.captions import Caption, face_captions
from drivers.perception.facs import ACTION_UNITS, EMOTIONS, bilateral
from drivers.perception.stream import FaceRecord, FrameRecord, PerceptionStream

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


@dataclass
class PerceptionResult:
    """What ``avatar perceive`` reports (``to_json`` is ``OUT.json``).

    Attributes:
        input: the input's name.
        fps: frame rate (a photo: 0).
        image_size: (height, width).
        frames: per-frame records.
        main_face: id of the main face (highest main-face score at the end).
        main_scores: the final main-face score of every face.
        captions: captions of facial change (a photo has none).
        open_labels: per frame and face, scores of the user's free-text labels (``--labels``), or ``None``.
    """

    input: str
    fps: float
    image_size: tuple[int, int]
    frames: list[FrameRecord]
    main_face: int | None
    main_scores: dict[int, float]
    captions: list[Caption] = field(default_factory=list)
    open_labels: dict[tuple[int, int], dict[str, float]] | None = None

    def face_ids(self) -> list[int]:
        return sorted({f.id for fr in self.frames for f in fr.faces})

    def select(self, face: str | int) -> PerceptionResult:
        """Only the faces asked for: ``"all"``, ``"main"`` or an id."""
        if face == "all":
            return self
        if face == "main":
            keep = self.main_face
        else:
            try:
                keep = int(face)
            except (TypeError, ValueError):
                raise AvatarInputError(f"--face must be main, all or a face id, got {face!r}") from None
            if keep not in self.face_ids():
                raise AvatarInputError(f"--face {keep}: no such face; this input has faces {self.face_ids()}")
        frames = [FrameRecord(fr.index, fr.time, [f for f in fr.faces if f.id == keep]) for fr in self.frames]
        captions = [c for c in self.captions if c.face == keep]
        labels = None if self.open_labels is None else {k: v for k, v in self.open_labels.items() if k[1] == keep}
        return PerceptionResult(self.input, self.fps, self.image_size, frames, self.main_face,
                                {keep: self.main_scores.get(keep, 0.0)}, captions, labels)

    def face_tracks(self, face_id: int) -> tuple[np.ndarray, np.ndarray, list[str], list[FaceRecord]]:
        """(times, AU channels (T, C), labels, records) of one face over the frames it is in."""
        rows = [(fr.time, f) for fr in self.frames for f in fr.faces if f.id == face_id]
        if not rows:
            return np.zeros(0), np.zeros((0, 0)), [], []
        times = np.array([t for t, _ in rows])
        return times, np.stack([f.channels for _, f in rows]), [f.emotion for _, f in rows], [f for _, f in rows]

    def summary(self) -> dict:
        """Per face: seconds visible, emotion shares, mean valence/arousal, strongest AUs; the main face."""
        faces = {}
        step = 1.0 / self.fps if self.fps else 0.0
        for face_id in self.face_ids():
            _, _, _, records = self.face_tracks(face_id)
            faces[str(face_id)] = {"frames": len(records), **summarise(records),
                                   "unknown_share": round(float(np.mean([r.unknown for r in records])), 3),
                                   "seconds_visible": round(len(records) * step, 2)}
        return {"main_face": self.main_face, "faces": faces, "captions": len(self.captions)}

    def to_json(self) -> dict:
        step = 1.0 / self.fps if self.fps else 0.0
        counts = Counter(f.id for fr in self.frames for f in fr.faces)
        frames = []
        for fr in self.frames:
            faces = []
            for f in fr.faces:
                entry = f.to_json()
                if self.open_labels is not None:
                    entry["open_labels"] = {k: round(v, 3) for k, v in self.open_labels.get((fr.index, f.id), {}).items()}
                faces.append(entry)
            frames.append({"time": round(fr.time, 4), "faces": faces})
        return {
            "input": self.input, "fps": self.fps, "image_size": list(self.image_size),
            "faces": [{"id": i, "main": i == self.main_face, "seconds_visible": round(counts[i] * step, 2),
                       "main_score": round(self.main_scores.get(i, 0.0), 4)} for i in self.face_ids()],
            "action_units": {code: name for code, (name, _, _) in ACTION_UNITS.items()},
            "frames": frames,
            "captions": [c.to_json() for c in self.captions],
            "summary": self.summary(),
        }  # fmt: skip


def read_tracked_face(weights: np.ndarray, rotation: np.ndarray, visible: np.ndarray, fps: float = 30.0) -> dict:
    """What a tracked face showed over a clip (the speaker of ``avatar listen``), from its weights alone.

    Args:
        weights: tracked expression weights, shape :math:`(T, 53)`.
        rotation: head rotation (axis-angle, rad), shape :math:`(T, 3)`.
        visible: frames where the face was tracked, shape :math:`(T,)` bool.
        fps: frame rate.

    Returns:
        ``{"frames_seen", "emotion_share", "dominant_emotion", "segments": [{"start", "end", "emotion",
        "because"}], "valence", "arousal", "top_aus"}`` (``None`` values when the face was never seen).
    """
    from drivers.perception.model import load_perception_model
    from drivers.perception.stream import FaceReader, StreamConfig

    reader = FaceReader(load_perception_model(), StreamConfig(), fps)
    readings = [(k / fps, reader.read(weights[k], rotation[k])) for k in range(len(weights)) if visible[k]]
    if not readings:
        return {"frames_seen": 0, "emotion_share": {}, "dominant_emotion": None, "segments": [], "valence": None,
                "arousal": None, "top_aus": []}  # fmt: skip
    segments: list[dict] = []
    for t, r in readings:
        if segments and segments[-1]["emotion"] == r.emotion and t - segments[-1]["end"] <= 1.5 / fps:
            segments[-1]["end"] = round(t + 1 / fps, 3)
            continue
        segments.append({"start": round(t, 3), "end": round(t + 1 / fps, 3), "emotion": r.emotion, "because": r.because})
    return {"frames_seen": len(readings), **summarise([r for _, r in readings]),
            "segments": [s for s in segments if s["emotion"] != "neutral"]}


def summarise(readings) -> dict:
    """Emotion shares, the dominant emotion, mean valence/arousal and the strongest mean AUs (≥ 0.5, at most 3)
    of one face's readings (anything with ``emotion``, ``channels``, ``valence``, ``arousal``; at least one)."""
    counts = Counter(r.emotion for r in readings)
    mean_aus = bilateral(np.mean([r.channels for r in readings], 0))
    return {
        "emotion_share": {e: round(counts[e] / len(readings), 3) for e in EMOTIONS if counts[e]},
        "dominant_emotion": counts.most_common(1)[0][0],
        "valence": round(float(np.mean([r.valence for r in readings])), 3),
        "arousal": round(float(np.mean([r.arousal for r in readings])), 3),
        "top_aus": [c for c, v in sorted(mean_aus.items(), key=lambda kv: -kv[1])[:3] if v >= 0.5],
    }


def is_photo(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """An RGB uint8 photo :math:`(H, W, 3)`; unreadable files raise :class:`AvatarInputError`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise AvatarInputError(f"{path} does not exist; pass a photo or a video that shows a face")
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise AvatarInputError(f"{path}: not a readable image ({error.__class__.__name__}); pass a JPEG or PNG photo") from None


def perceive_image(image: np.ndarray, name: str = "image", stream: PerceptionStream | None = None,
                   faces: list[np.ndarray] | None = None) -> PerceptionResult:
    """Perceive every face of one photo.

    Args:
        image: RGB uint8 :math:`(H, W, 3)`.
        name: what ``input`` says.
        stream: a stream to use (default: a fresh one in photo mode).
        faces: the faces' MediaPipe normalised landmarks, each :math:`(478, 3)`, when found already (the
            surface hands in the photo detector of :mod:`avatar.fitting.detect`, which also finds small faces
            in group photos); default: MediaPipe Face Mesh on the whole image.

    Raises:
        AvatarInputError: not an RGB image, or no face in it.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise AvatarInputError(f"{name}: expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    own = stream is None
    stream = stream or PerceptionStream(fps=30.0, static_images=True)
    try:
        record = stream.push(image if faces is None else DetectedFaces(0, list(faces), tuple(image.shape[:2])))
    finally:
        if own:
            stream.close()
    if not record.faces:
        raise AvatarInputError(f"{name}: no face found; pass a photo that shows a face (frontal, not too small)")
    record.time = 0.0
    return PerceptionResult(name, 0.0, tuple(image.shape[:2]), [record], stream.main_face(), stream.main_scores())


def perceive_video(path: str | os.PathLike, progress=None, stream: PerceptionStream | None = None) -> PerceptionResult:
    """Perceive every face of a clip at 30 fps, with the clip's audio for the speaking score.

    Args:
        path: a video ``avatar track`` reads.
        progress: ``callback(frames_done, frames_total)`` or ``None``.
        stream: a stream to use (default: a fresh one).

    Raises:
        AvatarInputError: what ``avatar track`` refuses (missing, unreadable, audio only, no face in any frame).
    """
    from avatar.core.motion import MOTION_FPS
    from drivers.face_mesh import DetectedFaces, detect_ahead
    from drivers.media import probe, read_audio
    from drivers.tracking import iter_video_frames

    path = Path(path)
    info = probe(path, check_silence=False)
    if not info.has_video:
        raise AvatarInputError(f"{path} has no video stream (audio only); perception needs a video that shows a face")
    total = info.num_motion_frames()
    audio = read_audio(path, fill_missing=True) if info.has_audio else None
    hop = 16000 / MOTION_FPS
    own = stream is None
    stream = stream or PerceptionStream(fps=MOTION_FPS)
    frames: list[FrameRecord] = []
    size = (0, 0)
    try:
        for index, (faces, size) in enumerate(detect_ahead(iter_video_frames(path, MOTION_FPS), stream.config.max_faces)):
            chunk = None if audio is None else audio[int(index * hop): int((index + 1) * hop)]
            frames.append(stream.push(DetectedFaces(index, faces, size), chunk))
            if progress is not None:
                progress(index + 1, total)
    finally:
        if own:
            stream.close()
    if not frames:
        raise AvatarInputError(f"{path}: no frames; the clip is empty")
    if not any(fr.faces for fr in frames):
        raise AvatarInputError(f"{path}: no face found in any frame; pass a clip that shows a face")
    result = PerceptionResult(path.name, float(MOTION_FPS), tuple(size), frames, stream.main_face(), stream.main_scores())
    for fr in frames:
        for f in fr.faces:
            f.main = f.id == result.main_face
    captions = []
    for face_id in result.face_ids():
        times, channels, labels, _ = result.face_tracks(face_id)
        captions += face_captions(times, channels, labels, face_id)
    result.captions = sorted(captions, key=lambda c: (c.start, c.face))
    return result
