"""Perception (``avatar perceive``, ``PerceptionStream``): the AU/emotion model, stable face ids, causal
stream = batch, no flicker, captions, and bad input as a one-line error with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from avatar.core.errors import AvatarInputError
from drivers.face_mesh import DetectedFaces
from drivers.perception.captions import describe, face_captions, to_webvtt
from drivers.perception.facs import (
    AU_CHANNELS,
    COMPOUNDS,
    EMOTIONS,
    NUM_CHANNELS,
    bilateral,
    correspondence_matrix,
    mirror_channels,
)  # fmt: skip
from drivers.perception.model import CLASSES, load_perception_model
from drivers.perception.stream import PerceptionStream


def _aus(**codes) -> np.ndarray:
    """AU channels with both sides of each named code at the given intensity."""
    out = np.zeros(NUM_CHANNELS)
    for code, value in codes.items():
        for k, ch in enumerate(AU_CHANNELS):
            if ch.startswith(code):
                out[k] = value
    return out


def _face(expression: dict[str, float] | None = None, centre=(0.5, 0.5), scale=0.012) -> np.ndarray:
    """MediaPipe-like normalised landmarks (478, 3) of the landmark layer's mean face, orthographic."""
    from avatar.morphable.landmarks import load_landmark_layer

    layer = load_landmark_layer()
    points = layer.mean.double().numpy().copy()
    for name, value in (expression or {}).items():
        points += value * layer.expression_basis[layer.expression_names.index(name)].double().numpy()
    points -= points.mean(0)
    return np.stack([centre[0] + points[:, 0] * scale, centre[1] - points[:, 1] * scale, -points[:, 2] * scale], 1).astype(np.float32)


def test_tables_are_consistent():
    assert len(AU_CHANNELS) == NUM_CHANNELS == 36 and len(EMOTIONS) == 8 and len(COMPOUNDS) == 7
    assert correspondence_matrix().shape == (NUM_CHANNELS, 53)
    x = np.arange(NUM_CHANNELS, dtype=float)
    assert np.array_equal(mirror_channels(mirror_channels(x)), x)
    assert bilateral(_aus(AU12=3.0))["AU12"] == 3.0 and set(CLASSES) == {*EMOTIONS, "other"}


def test_model_reads_prototypes_and_explains_them():
    model = load_perception_model()
    cases = {"happiness": _aus(AU06=3, AU12=4), "surprise": _aus(AU01=4, AU02=4, AU05=3, AU26=4),
             "sadness": _aus(AU01=3, AU04=3, AU15=4), "neutral": _aus()}  # fmt: skip
    for emotion, aus in cases.items():
        decision = model.classify(aus)
        assert EMOTIONS[int(np.argmax(decision.probabilities[:8]))] == emotion  # labels are over the 8 emotions
    because = model.because(model.classify(cases["happiness"]), "happiness")
    assert "AU12" in because and "AU04" not in because
    both = model.classify(_aus(AU01=4, AU02=4, AU12=4, AU25=3)).probabilities[:8]
    assert list(COMPOUNDS)[int(np.argmax(model.compound_scores(both)))] == "happily surprised"
    assert abs(model.compound_scores(both).sum() - 1.0) < 1e-9


def test_captions_and_webvtt():
    assert describe(["AU01", "AU02", "AU26"]) == "raises the brows and drops the jaw"
    times = np.arange(90) / 30.0
    channels = np.zeros((90, NUM_CHANNELS))
    channels[30:60] = _aus(AU01=3, AU02=3, AU26=3)
    labels = ["neutral"] * 30 + ["surprise"] * 30 + ["neutral"] * 30
    (caption,) = face_captions(times, channels, labels, face=0)
    assert caption.text == "raises the brows and drops the jaw — surprise"
    assert abs(caption.start - 1.0) < 1e-6 and abs(caption.end - 2.0) < 1e-6
    vtt = to_webvtt([caption])
    assert vtt.startswith("WEBVTT") and "00:00:01.000 --> 00:00:02.000" in vtt


def test_face_ids_are_stable_through_reordering_and_absence():
    stream = PerceptionStream(fps=30.0)
    left, right = _face(centre=(0.3, 0.5)), _face(centre=(0.7, 0.5), scale=0.009)
    first = stream.push(DetectedFaces(0, [left, right], (480, 640)))
    ids = {f.box[0] < 320: f.id for f in first.faces}
    swapped = stream.push(DetectedFaces(1, [right, left], (480, 640)))
    assert {f.box[0] < 320: f.id for f in swapped.faces} == ids
    for k in range(2, 8):  # the left face leaves for a while
        assert [f.id for f in stream.push(DetectedFaces(k, [right], (480, 640))).faces] == [ids[False]]
    empty = stream.push(DetectedFaces(8, [], (480, 640)))
    assert empty.faces == []  # a frame without faces is a record without faces
    back = stream.push(DetectedFaces(9, [_face(centre=(0.25, 0.45))], (480, 640)))
    assert [f.id for f in back.faces] == [ids[True]]  # re-found by shape, not a new id
    assert stream.main_face() == ids[False]  # smaller, but on screen 10 of 10 frames against 3


def test_the_speaking_face_is_the_main_face():
    """Two faces alike in size and place; the one whose mouth moves with the audio is the main face."""
    t = np.arange(150) / 30.0
    speech = np.clip(np.sin(2 * np.pi * 1.3 * t), 0.0, None)  # bursts of voice
    chewing = np.clip(np.sin(2 * np.pi * 0.37 * t + 1.0), 0.0, None)  # a mouth moving out of step
    rng = np.random.default_rng(0)
    stream = PerceptionStream(fps=30.0)
    for k in range(len(t)):
        speaker, other = _face({"jawOpen": 0.5 * speech[k]}, (0.3, 0.5)), _face({"jawOpen": 0.5 * chewing[k]}, (0.7, 0.5))
        record = stream.push(DetectedFaces(k, [other, speaker], (480, 640)), (0.05 + 0.3 * speech[k]) * rng.standard_normal(533))
    (main,) = [f for f in record.faces if f.main]
    assert main.box[0] < 320  # the speaker, on the left


def test_static_face_does_not_flicker():
    stream = PerceptionStream(fps=30.0)
    face = _face({"mouthSmile_L": 0.1, "mouthSmile_R": 0.1})
    labels = [stream.push(DetectedFaces(k, [face], (480, 640))).faces[0].emotion for k in range(90)]
    assert sum(a != b for a, b in zip(labels, labels[1:])) <= 1


@pytest.mark.shared
def test_real_smile_is_happiness_and_the_mirror_swaps_sides(shared):
    """single_face.jpg: a smiling man. Mirrored: the same label, left and right AUs swapped."""
    import avatar
    from drivers.perception import read_photo

    image = read_photo(shared / "media/photos/single_face.jpg")
    record = avatar.perceive(image).frames[0].faces[0]
    mirrored = avatar.perceive(image[:, ::-1].copy()).frames[0].faces[0]
    assert record.emotion == mirrored.emotion == "happiness" and "AU12" in record.because
    sided = [k for k, ch in enumerate(AU_CHANNELS) if ch[-1] in "LR"]
    swapped = np.abs(mirrored.channels[sided] - mirror_channels(record.channels)[sided]).mean()
    kept = np.abs(mirrored.channels[sided] - record.channels[sided]).mean()
    assert swapped < kept


def test_bad_inputs_are_one_line_errors_with_nothing_written(tmp_path):
    from PIL import Image

    from avatar.commands.perceive import run_perceive_command

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    out = tmp_path / "out"
    with pytest.raises(AvatarInputError, match="no face found"):
        run_perceive_command(blank, out / "b.json")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(AvatarInputError, match="not a readable image"):
        run_perceive_command(tmp_path / "bad.jpg", out / "c.json")
    with pytest.raises(AvatarInputError, match="does not exist"):
        run_perceive_command(tmp_path / "missing.mp4", out / "d.json")
    with pytest.raises(AvatarInputError, match=".json"):
        run_perceive_command(blank, out / "e.txt")
    assert not out.exists() or list(out.iterdir()) == []
    result = subprocess.run([sys.executable, "-m", "avatar", "perceive", str(blank), "-o", str(out / "f.json")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "no face found" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.shared
def test_open_labels_follow_the_face(shared):
    import avatar

    result = avatar.perceive(shared / "media/photos/single_face.jpg", labels="amused, bored, sulky")
    scores = result.open_labels[(0, result.main_face)]
    assert scores["amused"] > max(scores["bored"], scores["sulky"]) and abs(sum(scores.values()) - 1) < 1e-6


@pytest.mark.shared
def test_photo_with_many_faces(tmp_path, shared):
    from avatar.commands.perceive import run_perceive_command

    out = tmp_path / "group.json"
    result = run_perceive_command(shared / "media/photos/multi_face.jpg", out, labels="bored, amused")
    data = json.loads(out.read_text())
    assert result.faces == len(data["faces"]) >= 4 and sum(f["main"] for f in data["faces"]) == 1
    face = data["frames"][0]["faces"][0]
    assert set(face["aus"]) >= {"AU01", "AU12", "AU26"} and face["emotion"]["label"] in EMOTIONS
    assert set(face["open_labels"]) == {"bored", "amused"} and len(face["arkit"]) == 52
    assert (tmp_path / "group.csv").read_text().count("\n") == 1 + result.faces
    assert (tmp_path / "group.png").stat().st_size > 10_000 and not (tmp_path / "group.vtt").exists()
    with pytest.raises(AvatarInputError, match="exists"):
        run_perceive_command(shared / "media/photos/multi_face.jpg", out)


@pytest.mark.shared
@pytest.mark.slow
def test_clip_stream_equals_batch_and_files(tmp_path, shared):
    """The offline path is the causal stream: pushing the frames one by one gives the same numbers."""
    from avatar.commands.perceive import run_perceive_command
    from drivers.media import read_audio
    from drivers.tracking import iter_video_frames

    clip = shared / "media/videos/pyfeat_single_face.mp4"
    result = run_perceive_command(clip, tmp_path / "p.json", preview=tmp_path / "p.mp4")
    data = json.loads((tmp_path / "p.json").read_text())
    assert len(data["frames"]) == result.frames and data["fps"] == 30.0
    assert (tmp_path / "p.vtt").read_text().startswith("WEBVTT") and (tmp_path / "p.png").exists()
    audio = read_audio(clip)
    with PerceptionStream(30.0) as stream:
        live = [stream.push(img, audio[int(k * 16000 / 30): int((k + 1) * 16000 / 30)])
                for k, img in enumerate(iter_video_frames(clip, 30.0))]
    assert len(live) == len(data["frames"])
    for rec, row in zip(live, data["frames"]):
        assert len(rec.faces) == len(row["faces"])
        for f, g in zip(rec.faces, row["faces"]):
            assert f.emotion == g["emotion"]["label"]
            assert np.allclose([bilateral(f.channels)[k] for k in g["aus"]], list(g["aus"].values()), atol=2e-3)


@pytest.mark.shared
def test_audio_only_input_is_refused_like_track(tmp_path, shared):
    from avatar.commands.perceive import run_perceive_command

    with pytest.raises(AvatarInputError, match="no video stream"):
        run_perceive_command(shared / "media/audio/RD_Radio31_000.wav", tmp_path / "a.json")
    assert list(tmp_path.iterdir()) == []
