"""Face landmarks of video frames: MediaPipe Face Mesh, in this process or in a child process of its own.

:class:`FaceMeshDetector` runs MediaPipe's 478-point face mesh (legacy solution API; its models ship inside
the ``mediapipe`` wheel) on RGB frames. :class:`FaceMeshProcess` runs it over a whole clip in a child
Python process that decodes the clip itself and streams :class:`DetectedFaces` back over a pipe:

- it runs on the other core without the parent's GIL — decoding and MediaPipe no longer compete with the
  listener's sampling, drawing and encoding;
- it starts before the parent imports torch (this module and :mod:`drivers.media` do not import it), so
  MediaPipe's import (0.5–1 s) overlaps torch's instead of following it.

In one process, :func:`detect_ahead` runs the detector on a thread a few frames ahead of whoever consumes
the landmarks (:func:`drivers.tracking.track_frames` fits them meanwhile).

``avatar listen`` uses the child process; :class:`drivers.tracking.FaceTracker` accepts a :class:`DetectedFaces` wherever
it accepts an image. The landmarks are the ones an in-process detector gives for the same frames (the
child decodes with :func:`drivers.media.iter_frames`, as the parent would).

The child is ``python -m drivers.face_mesh CLIP [--stride N] ...``; on its stdout, per decoded frame, four
int32 ``(index, faces, height, width)`` (``faces = -1``: not looked at, a frame between strides) then
``faces × 478 × 3`` float32.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError

NUM_LANDMARKS = 478
_HEADER = np.dtype("<i4")
_HEADER_BYTES = 4 * _HEADER.itemsize
_FACE_BYTES = NUM_LANDMARKS * 3 * 4


class FaceMeshDetector:
    """MediaPipe Face Mesh (legacy solution API; its models ship inside the mediapipe wheel).

    Args:
        max_num_faces: faces to look for.
        static_image_mode: ``False`` for video (tracks landmarks between frames), ``True`` for photos.
        min_detection_confidence: detector threshold.
        min_tracking_confidence: tracking threshold.
    """

    def __init__(
        self,
        max_num_faces: int = 2,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        from avatar.core.mediapipe_import import import_mediapipe

        mp = import_mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=int(max_num_faces),
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Landmarks of the faces in one RGB image.

        Args:
            image: RGB uint8 image, shape :math:`(H, W, 3)`.

        Returns:
            one :math:`(478, 3)` float32 array of MediaPipe normalised landmarks per face found.
        """
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise AvatarInputError(f"frames must be RGB uint8 arrays of shape (H, W, 3), got {image.dtype} {image.shape}")
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return []
        return [
            np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32) for face in result.multi_face_landmarks
        ]

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMeshDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class DetectedFaces:
    """One video frame's faces, detected already.

    Attributes:
        index: the frame's index in the clip (30 fps frames, from 0).
        faces: MediaPipe normalised landmarks of each face found, each :math:`(478, 3)` float32; ``None``
            when the frame was not looked at (between strides).
        image_size: (height, width) of the frame in pixels.
    """

    index: int
    faces: list[np.ndarray] | None
    image_size: tuple[int, int]


def detect_clip(path: str | os.PathLike, stride: int = 1, max_num_faces: int = 2,
                min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> Iterator[DetectedFaces]:
    """Faces of every ``stride``-th frame of a clip (MediaPipe in video mode), in this process.

    Args:
        path: the clip (frames resampled to 30 fps by :func:`drivers.media.iter_frames`).
        stride: look at frames ``0, stride, 2 stride, ...``; the others come with ``faces=None``.
        max_num_faces, min_detection_confidence, min_tracking_confidence: see :class:`FaceMeshDetector`.

    Yields:
        :class:`DetectedFaces` of every frame, in order.
    """
    from drivers.media import iter_frames

    if stride < 1:
        raise AvatarInputError(f"the stride must be >= 1, got {stride}")
    with FaceMeshDetector(max_num_faces, False, min_detection_confidence, min_tracking_confidence) as detector:
        size = None
        for frame in iter_frames(path, images=lambda k: k % stride == 0):  # frame 0 is looked at
            if frame.image is not None:
                size = (int(frame.image.shape[0]), int(frame.image.shape[1]))
            faces = detector.detect(frame.image) if frame.image is not None else None
            yield DetectedFaces(int(frame.index), faces, size)


def _put_unless_stopped(results: queue.Queue, item, stop: threading.Event) -> None:
    """Put ``item`` into the bounded queue, waiting for room, unless ``stop`` is set meanwhile (the consumer left)."""
    while not stop.is_set():
        try:
            results.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def detect_ahead(frames: Iterable, max_num_faces: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, ahead: int = 8) -> Iterator[tuple[list[np.ndarray], tuple[int, int]]]:
    """MediaPipe on a stream of frames, on a thread of its own that runs up to ``ahead`` frames ahead of the
    consumer (MediaPipe's graph runs without the GIL, so it overlaps with what the consumer does with the
    landmarks: :func:`drivers.tracking.track_frames` fits them meanwhile).

    Args:
        frames: RGB uint8 images :math:`(H, W, 3)` (numpy arrays or tensors).
        max_num_faces, min_detection_confidence, min_tracking_confidence: see :class:`FaceMeshDetector`.
        ahead: frames detected ahead at most (memory stays bounded).

    Yields:
        ``(faces, (height, width))`` per frame, in order: the landmarks of each face found (each
        :math:`(478, 3)` float32) and the frame's size. A failure of the thread (a bad frame) is raised here.
    """
    results: queue.Queue = queue.Queue(maxsize=max(1, int(ahead)))
    stop = threading.Event()
    done = object()

    def put(item) -> None:
        _put_unless_stopped(results, item, stop)

    def work() -> None:
        try:
            with FaceMeshDetector(max_num_faces, False, min_detection_confidence, min_tracking_confidence) as detector:
                for image in frames:
                    if stop.is_set():
                        return
                    if not isinstance(image, np.ndarray):  # a tensor
                        image = image.detach().cpu().numpy()
                    image = np.asarray(image)
                    faces = detector.detect(image)
                    put((faces, (int(image.shape[0]), int(image.shape[1]))))
            put(done)
        except BaseException as error:  # handed to the consumer
            put(error)

    worker = threading.Thread(target=work, name="avatar-face-mesh", daemon=True)
    worker.start()
    try:
        while True:
            item = results.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class FaceMeshProcess:
    """:func:`detect_clip` in a child process; iterate it for the :class:`DetectedFaces` of every frame.

    The child starts at construction. A reader thread keeps up to ``max_pending`` frames' results
    waiting (memory stays bounded for long clips: the child waits on the pipe). A failing child
    (an unreadable clip) raises :class:`~avatar.core.errors.AvatarInputError` with its message.

    Args:
        path: the clip.
        stride, max_num_faces, min_detection_confidence, min_tracking_confidence: see :func:`detect_clip`.
        max_pending: results read ahead of the consumer.

    Example:
        >>> with FaceMeshProcess("talk.mp4", stride=2) as frames:     # doctest: +SKIP
        ...     for detected in frames:
        ...         results += tracker.push(detected)
    """

    def __init__(self, path: str | os.PathLike, stride: int = 1, max_num_faces: int = 2,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 max_pending: int = 256) -> None:
        if stride < 1:
            raise AvatarInputError(f"the stride must be >= 1, got {stride}")
        self.path = Path(path)
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: MediaPipe's logs cannot block the child
        command = [sys.executable, "-m", "drivers.face_mesh", str(self.path), "--stride", str(int(stride)),
                   "--max-faces", str(int(max_num_faces)), "--min-detection", repr(float(min_detection_confidence)),
                   "--min-tracking", repr(float(min_tracking_confidence))]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=env)
        self._results: queue.Queue = queue.Queue(maxsize=int(max_pending))
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="avatar-face-mesh-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self._process.stdout
        try:
            while not self._closing.is_set():
                header = stream.read(_HEADER_BYTES)
                if len(header) < _HEADER_BYTES:
                    break
                index, count, height, width = np.frombuffer(header, _HEADER).tolist()
                faces = None
                if count >= 0:
                    data = stream.read(count * _FACE_BYTES)
                    if len(data) < count * _FACE_BYTES:
                        break  # the child stopped mid-frame: _finished() says why
                    faces = list(np.frombuffer(data, np.float32).reshape(count, NUM_LANDMARKS, 3).copy())
                self._put(DetectedFaces(index, faces, (height, width)))
            self._put(self._finished())
        except BaseException as error:  # handed to the consumer
            self._put(error)

    def _put(self, item) -> None:
        _put_unless_stopped(self._results, item, self._closing)

    def _finished(self) -> BaseException | None:
        """``None`` when the child exited cleanly, else the error to raise."""
        code = self._process.wait()
        if code == 0 or self._closing.is_set():
            return None
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {code}"
        return AvatarInputError(f"{self.path}: face tracking failed: {message}")

    def __iter__(self) -> Iterator[DetectedFaces]:
        while True:
            item = self._results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the child (if it still runs) and the reader."""
        self._closing.set()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._reader.join()
        self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> FaceMeshProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """The child of :class:`FaceMeshProcess`: :func:`detect_clip` written to stdout."""
    parser = argparse.ArgumentParser(prog="python -m drivers.face_mesh", description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--max-faces", type=int, default=2)
    parser.add_argument("--min-detection", type=float, default=0.5)
    parser.add_argument("--min-tracking", type=float, default=0.5)
    args = parser.parse_args(argv)
    # the results own the real stdout; anything else printed (a library's notice) goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        for detected in detect_clip(args.clip, args.stride, args.max_faces, args.min_detection, args.min_tracking):
            count = -1 if detected.faces is None else len(detected.faces)
            out.write(np.array([detected.index, count, *detected.image_size], _HEADER).tobytes())
            for face in detected.faces or []:
                out.write(np.ascontiguousarray(face, np.float32).tobytes())
        out.flush()
    except AvatarInputError as error:
        print(error, file=sys.stderr)
        return 2
    except BrokenPipeError:  # the parent stopped reading
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
