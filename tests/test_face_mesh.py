"""MediaPipe face mesh in a child process: the same landmarks as in-process, errors, early close."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES
from drivers import media
from drivers.face_mesh import DetectedFaces, FaceMeshDetector, FaceMeshProcess, detect_ahead, detect_clip


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    """Two seconds of the built-in avatar nodding and opening its mouth, 192² at 30 fps."""
    from avatar.api import default_avatar
    from avatar.core.code_render import CodeRenderer

    renderer = CodeRenderer(default_avatar(), 192, batch=16)
    t = torch.arange(60, dtype=torch.float32) / 30
    codes = torch.zeros(60, 59)
    codes[:, EXPRESSION_NAMES.index("jawOpen")] = 0.5 + 0.5 * torch.sin(2 * np.pi * t)
    codes[:, 53] = 0.2 * torch.sin(np.pi * t)  # pitch
    path = tmp_path_factory.mktemp("face") / "face.mp4"
    with media.VideoWriter(path, 30.0, crf=12) as writer:
        for image in renderer.render(codes, parallel=False):
            writer.write_frame(image)
    return path


def test_child_process_gives_the_in_process_landmarks(face_clip):
    here = list(detect_clip(face_clip, stride=2))
    with FaceMeshProcess(face_clip, stride=2) as process:
        there = list(process)
    assert len(there) == len(here) == 60
    assert sum(1 for d in here if d.faces) >= 25  # the avatar's face is found
    for a, b in zip(here, there):
        assert (a.index, a.image_size) == (b.index, b.image_size) == (a.index, (192, 192))
        assert (a.faces is None) == (b.faces is None) == (a.index % 2 == 1)
        assert len(a.faces or []) == len(b.faces or [])
        for fa, fb in zip(a.faces or [], b.faces or []):
            assert fb.shape == (478, 3) and fb.dtype == np.float32
            np.testing.assert_array_equal(fa, fb)


def test_tracker_takes_detected_faces(face_clip):
    from drivers.tracking import FaceTracker

    images = [f.image for f in media.iter_frames(face_clip)][:36]
    from_images, from_faces = FaceTracker(30.0), FaceTracker(30.0)
    a = [r for image in images for r in from_images.push(image)] + from_images.finish()
    b = [r for d in list(detect_clip(face_clip))[:36] for r in from_faces.push(d)] + from_faces.finish()
    assert len(a) == len(b) == 36
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.weights, y.weights)
        np.testing.assert_array_equal(x.head_rotation, y.head_rotation)
    with pytest.raises(AvatarInputError, match="not looked at"):
        FaceTracker(30.0).push(DetectedFaces(1, None, (192, 192)))


def test_detection_ahead_on_a_thread_equals_detection_in_turn(face_clip):
    images = [f.image for f in media.iter_frames(face_clip)][:20]
    with FaceMeshDetector() as detector:
        expected = [detector.detect(image) for image in images]
    got = list(detect_ahead(images, ahead=3))
    assert len(got) == 20
    for want, (faces, size) in zip(expected, got):
        assert size == (192, 192) and len(faces) == len(want)
        for a, b in zip(faces, want):
            np.testing.assert_array_equal(a, b)
    tensors = list(detect_ahead([torch.from_numpy(image) for image in images[:2]]))
    assert [len(f) for f, _ in tensors] == [len(f) for f in expected[:2]]


def test_detection_ahead_raises_a_bad_frame_and_stops_early(face_clip):
    images = [f.image for f in media.iter_frames(face_clip)][:4]
    with pytest.raises(AvatarInputError, match="RGB uint8"):
        list(detect_ahead(images[:2] + [np.zeros((8, 8), np.uint8)]))
    stream = detect_ahead(images * 50, ahead=2)
    next(stream)
    stream.close()  # the thread stops instead of detecting the other 199 frames


def test_child_failure_is_a_one_line_input_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with FaceMeshProcess(bad) as process, pytest.raises(AvatarInputError, match="face tracking failed") as caught:
        list(process)
    assert "\n" not in str(caught.value)


def test_closing_early_stops_the_child(face_clip):
    process = FaceMeshProcess(face_clip, max_pending=2)
    first = next(iter(process))
    assert first.index == 0
    process.close()
    assert process._process.poll() is not None


def test_defaults_are_the_trackers():
    from drivers.tracking import TrackerConfig

    config, defaults = TrackerConfig(), inspect.signature(FaceMeshProcess).parameters
    assert defaults["max_num_faces"].default == config.max_num_faces
    assert defaults["min_detection_confidence"].default == config.min_detection_confidence
    assert defaults["min_tracking_confidence"].default == config.min_tracking_confidence
