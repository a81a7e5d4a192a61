"""`avatar listen` (avatar.commands.listen → drivers.listener.clip_listener): outputs, errors, seeds, real clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from avatar.api import default_avatar
from avatar.commands.listen import run_listen_command
from avatar.core.code_layout import CODE_DIM
from avatar.core.errors import AvatarInputError
from avatar.core.motion import Motion
from drivers import media
from drivers.listener.clip_listener import output_paths
from drivers.listener.model import ListenerDenoiser, ListenerModelConfig
from drivers.listener.pipeline import ListenerPipeline, SamplingConfig, default_listener_dir

SR = 16000


@pytest.fixture()
def small_listener(monkeypatch):
    """A small random listener in place of the shipped weights (structure tests stay fast)."""
    torch.manual_seed(0)
    model = ListenerDenoiser(ListenerModelConfig(width=32, heads=2, layers=2, window=16))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    pipeline = ListenerPipeline(model, sampling=SamplingConfig(chunk=3, steps=2))
    monkeypatch.setattr("drivers.listener.pipeline.load_listener", lambda *a, **k: pipeline)
    return pipeline


@pytest.fixture()
def speech_wav(tmp_path):
    t = np.arange(int(3.0 * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.4 * t) > -0.3)
    path = tmp_path / "speaker.wav"
    soundfile.write(path, wave.astype(np.float32), SR)
    return path


def _decoded(path):
    frames = sum(1 for _ in media.iter_frames(path, fps=None))
    audio = media.read_audio(path)
    return frames, audio.size / SR, media.probe(path, check_silence=False)


def test_default_avatar_renders():
    from avatar.core.code_render import CodeRenderer

    avatar = default_avatar()
    codes = torch.zeros(2, CODE_DIM)
    codes[1, 10:12] = 1.0  # eyes closed
    frames = CodeRenderer(avatar, 64).render(codes)
    assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    assert (frames[0] != 255).any()  # the head is drawn over the white background
    assert not np.array_equal(frames[0], frames[1])


def test_write_default_avatar_round_trip(tmp_path, monkeypatch):
    """What scripts/build_default_avatar.py writes loads back as the same avatar (within its quantisation)."""
    from avatar.morphable.default_avatar import read_default_avatar, write_default_avatar

    avatar = default_avatar()
    write_default_avatar(avatar.bundle, tmp_path / "default_avatar.npz", texture_size=64)
    again = read_default_avatar(tmp_path / "default_avatar.npz")
    assert torch.allclose(again.vertices, avatar.bundle.vertices, atol=1e-2)
    step = avatar.bundle.expression_deltas.abs().amax(dim=(1, 2)) / 127.0  # int8 step per expression
    assert ((again.expression_deltas - avatar.bundle.expression_deltas).abs().amax(dim=(1, 2)) <= step * 0.51 + 1e-6).all()
    assert again.texture.shape == (64, 64, 3) and torch.equal(again.faces, avatar.bundle.faces)


def test_listener_renderer_frames_camera_and_threads():
    """The drawing threads' path (parallel=False) gives the same frames; the framing is the avatar's."""
    from avatar.core.code_render import CodeRenderer

    avatar = default_avatar()
    renderer = CodeRenderer(avatar, 48, batch=3)
    camera = avatar._default_camera((48, 48))
    assert torch.equal(renderer.camera.view, camera.view) and torch.equal(renderer.camera.projection, camera.projection)
    codes = torch.zeros(5, CODE_DIM)
    codes[:, 26] = torch.linspace(0, 1, 5)  # jawOpen
    codes[:, 53:56] = torch.tensor([0.1, -0.2, 0.05]) * torch.linspace(0, 1, 5)[:, None]  # a turn
    frames = renderer.render(codes)
    assert np.array_equal(frames, renderer.render(codes, parallel=False))
    assert np.array_equal(frames[:3], renderer.render(codes[:3]))  # a frame does not depend on its batch
    assert len({f.tobytes() for f in frames}) == 5


def test_rotation_matrices_equal_kornia():
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    from avatar.core.geometry import axis_angle_to_matrix

    generator = torch.Generator().manual_seed(0)
    for scale in (0.0, 1e-6, 1e-3, 0.05, 1.0, 3.0):
        rotation = torch.randn(64, 3, generator=generator, dtype=torch.float64) * scale
        expected = axis_angle_to_rotation_matrix(rotation)
        torch.testing.assert_close(axis_angle_to_matrix(rotation), expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(axis_angle_to_matrix(rotation.float()), expected.float(), atol=1e-6, rtol=0)
    batched = torch.randn(2, 5, 3, generator=generator)
    assert torch.equal(axis_angle_to_matrix(batched)[1], axis_angle_to_matrix(batched[1]))


def test_listen_path_does_not_import_kornia():
    """kornia's import costs `avatar listen` 0.3 s: none of the modules it runs may pull it in."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import avatar.api, avatar.core.export.livelink, avatar.commands.listen, drivers.listener.clip_listener\n"
            "import drivers.listener.pipeline, avatar.core.code_render, drivers.listener.stream, drivers.tracking\n"
            "from avatar.api import default_avatar\n"
            "from avatar.core.code_render import CodeRenderer\n"
            "from drivers.listener.events import detect_nods\n"
            "import torch\n"
            "CodeRenderer(default_avatar(), 32).render(torch.zeros(2, 59))\n"
            "detect_nods(torch.zeros(90, 3))\n"
            "assert 'kornia' not in sys.modules, [m for m in sys.modules if m.startswith('kornia')][:3]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_listen_starts_tracking_before_torch():
    """`avatar listen` starts its MediaPipe child before importing torch: the modules it runs up to then are light."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import avatar, avatar.api, avatar.cli, avatar.commands.listen, drivers.listener.clip_listener, drivers.face_mesh\n"
            "import drivers.media, avatar.core.code_layout, avatar.core.expressions, avatar.core.geometry\n"
            "assert 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_listen_on_audio_only_writes_everything(tmp_path, speech_wav, small_listener):
    out = tmp_path / "out" / "listener.mp4"
    result = run_listen_command(speech_wav, out=out, size=64, seed=3)
    paths = output_paths(out)
    assert all(p.is_file() for p in paths.values())
    frames, audio_seconds, info = _decoded(out)
    assert frames == result.frames == 90  # 30 fps x 3 s
    assert info.has_audio and audio_seconds == pytest.approx(3.0, abs=0.05)
    assert (info.width, info.height) == (64, 64)
    motion = Motion.load(paths["motion"])
    assert motion.num_frames == 90 and motion.fps == 30.0
    header = paths["csv"].read_text().splitlines()[0]
    assert header.startswith("Timecode,BlendShapeCount")
    document = json.loads(paths["report"].read_text())
    for key in ("frames", "seconds_total", "timings", "latency_ms", "seed", "avatar"):
        assert key in document
    assert document["frames"] == 90 and document["avatar"] == "built-in default avatar"


def test_listen_seeds_reproduce_and_differ(tmp_path, speech_wav, small_listener):
    motions = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        result = run_listen_command(speech_wav, out=tmp_path / f"{name}.mp4", size=32, seed=seed)
        motions.append(Motion.load(result.motion))
    assert np.array_equal(motions[0].weights, motions[1].weights)
    assert np.array_equal(motions[0].head_rotation, motions[1].head_rotation)
    assert not np.array_equal(motions[0].head_rotation, motions[2].head_rotation)


def test_listen_refuses_to_overwrite(tmp_path, speech_wav, small_listener):
    out = tmp_path / "x.mp4"
    run_listen_command(speech_wav, out=out, size=32)
    before = out.stat().st_mtime_ns
    with pytest.raises(AvatarInputError, match="--force"):
        run_listen_command(speech_wav, out=out, size=32)
    assert out.stat().st_mtime_ns == before
    run_listen_command(speech_wav, out=out, size=32, force=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"avatar_dir": "a.avatar", "photo": "p.jpg"}, "either"),
    ({"size": 8}, "--size"),
    ({"style": "not_a_preset"}, "preset"),
    ({"out": "listener.avi"}, ".mp4"),
])
def test_listen_bad_input(tmp_path, speech_wav, kwargs, message):
    kwargs = {"out": tmp_path / "o.mp4", **kwargs}
    with pytest.raises(AvatarInputError, match=message):
        run_listen_command(speech_wav, **kwargs)


def test_listen_missing_speaker(tmp_path):
    with pytest.raises(AvatarInputError, match="not found"):
        run_listen_command(tmp_path / "nope.mp4", out=tmp_path / "o.mp4")


def test_listen_real_video_without_audio_side_by_side(tmp_path, shared, small_listener):
    """d0: 3.12 s video with no audio track — the output still has an audio track (silence) of equal length."""
    clip = shared / "media" / "videos" / "d0.mp4"
    out = tmp_path / "d0.mp4"
    result = run_listen_command(clip, out=out, size=48, side_by_side=True)
    frames, audio_seconds, info = _decoded(out)
    expected = media.probe(clip).num_motion_frames()
    assert frames == result.frames == expected
    assert (info.width, info.height) == (96, 48)
    assert info.has_audio and audio_seconds == pytest.approx(expected / 30.0, abs=0.05)


def test_listen_codes_equal_the_one_thread_stream(tmp_path, shared, small_listener):
    """Tracking on its own thread and drawing on others leave the codes bit-identical to a plain stream."""
    from threadpoolctl import threadpool_limits

    from drivers.listener.clip_listener import TRACKING_STRIDE
    from drivers.listener.stream import ListenerStream

    clip = shared / "media" / "videos" / "pyfeat_single_face.mp4"
    result = run_listen_command(clip, out=tmp_path / "t.mp4", size=32, seed=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            stream = ListenerStream(seed=5, audio=True, video=True, pipeline=small_listener,
                                    tracking_stride=TRACKING_STRIDE)
            audio = media.iter_audio(clip, chunk_size=SR, sample_rate=SR)
            codes, pushed = [], 0
            for frame in media.iter_frames(clip):
                while pushed <= (frame.index + 1) * SR // 30 and (chunk := next(audio, None)) is not None:
                    pushed += chunk.size
                    codes.append(stream.push(audio=chunk))
                codes.append(stream.push(frame=frame.image))
            codes += [stream.push(audio=chunk) for chunk in audio] + [stream.flush()]
    finally:
        torch.set_num_threads(threads)
    codes = torch.cat(codes)[:result.frames]
    motion = Motion.load(result.motion)
    assert np.array_equal(motion.weights, codes[:, :53].numpy())
    assert np.array_equal(motion.head_rotation, codes[:, 53:56].numpy())


def test_tracking_failure_leaves_nothing(tmp_path, shared, small_listener, monkeypatch):
    """An error on the tracking thread surfaces in the caller and no output is left behind."""
    from drivers.listener.stream import StridedFaceTracker

    calls = {"n": 0}
    original = StridedFaceTracker.push

    def failing(self, image):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("tracker failed")
        return original(self, image)

    monkeypatch.setattr(StridedFaceTracker, "push", failing)
    out = tmp_path / "run" / "listener.mp4"
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match="tracker failed"):
        run_listen_command(shared / "media" / "videos" / "d0.mp4", out=out, size=32)
    assert list(out.parent.iterdir()) == []


@pytest.fixture(scope="module")
def shipped_weights():
    if not (default_listener_dir() / "model.safetensors").is_file():
        pytest.skip("the shipped listener weights are not installed")


def test_listen_real_speech_clip(tmp_path, shared, shipped_weights):
    """pyfeat_single_face (2.4 s, mp3 audio): plays back with 30 fps x duration frames and equal audio."""
    clip = shared / "media" / "videos" / "pyfeat_single_face.mp4"
    out = tmp_path / "p.mp4"
    result = run_listen_command(clip, out=out, size=64, style="warm")
    frames, audio_seconds, info = _decoded(out)
    expected = media.probe(clip).num_motion_frames()
    assert frames == result.frames == expected
    assert info.has_audio and audio_seconds == pytest.approx(expected / 30.0, abs=0.05)
    assert result.info["style_caption"]
    seen = result.info["speaker_perception"]  # what the listener saw of the speaker's face (perception stage)
    assert seen["frames_seen"] > 0.8 * frames and seen["dominant_emotion"] in seen["emotion_share"]
    assert json.loads(result.report.read_text())["speaker_perception"] == seen


def test_listen_silent_clip_is_idle_but_alive(tmp_path, shared, shipped_weights):
    """d18 (7.2 s, an audio track of pure silence): blinks and sway, no nods."""
    from drivers.listener.events import detect_nods

    result = run_listen_command(shared / "media" / "videos" / "d18.mp4", out=tmp_path / "s.mp4", size=32)
    motion = Motion.load(result.motion)
    blink = motion.weights[:, 10]
    assert ((blink[1:] > 0.5) & (blink[:-1] <= 0.5)).sum() >= 1
    assert motion.head_rotation.std(axis=0).max() > 0.002
    assert detect_nods(motion.head_rotation) == []


# ---------------------------------------------------------------------------------- CLI, demo, nothing half-written


def _cli(argv):
    from avatar import cli

    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


def test_cli_listen_bad_input_is_one_line_exit_2(tmp_path, capfd):
    bad = tmp_path / "speaker.mp4"
    bad.write_text("not a video")
    out = tmp_path / "o" / "listener.mp4"
    assert _cli(["listen", "--speaker", str(bad), "-o", str(out)]) == 2
    err = capfd.readouterr().err.strip()
    assert "not a readable video or audio file" in err and len(err.splitlines()) == 1
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_listen_writes_the_outputs(tmp_path, speech_wav, small_listener, capfd):
    out = tmp_path / "cli.mp4"
    code = _cli(["listen", "--speaker", str(speech_wav), "-o", str(out), "--size", "32", "--seed", "4"])
    assert code in (0, None)
    assert all(p.is_file() for p in output_paths(out).values())
    assert "wrote" in capfd.readouterr().out


def test_failure_while_listening_leaves_nothing(tmp_path, speech_wav, small_listener, monkeypatch):
    from avatar.core.code_render import CodeRenderer

    calls = {"n": 0}
    original = CodeRenderer.render

    def failing(self, codes, parallel=True):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("renderer failed")
        return original(self, codes, parallel)

    monkeypatch.setattr(CodeRenderer, "render", failing)
    out = tmp_path / "run" / "listener.mp4"
    out.parent.mkdir()
    with pytest.raises(RuntimeError):
        run_listen_command(speech_wav, out=out, size=32)
    assert list(out.parent.iterdir()) == []


def test_demo_listen_uses_the_shipped_speaker_clip(tmp_path, small_listener):
    from avatar.commands.listen import DEMO_SPEAKER, run_demo_listen

    clip = DEMO_SPEAKER
    info = media.probe(clip, check_silence=False)
    assert info.has_audio and not info.has_video and 5.0 < info.duration < 20.0
    bundle = tmp_path / "demo.avatar"
    default_avatar().save(bundle)
    out = tmp_path / "demo_listens.mp4"
    result = run_demo_listen(bundle, out, size=32)
    frames, audio_seconds, probed = _decoded(out)
    assert frames == result.frames == int(np.ceil(info.audio_duration * 30 - 1e-6))
    assert probed.has_audio and audio_seconds == pytest.approx(frames / 30.0, abs=0.05)
    assert result.info["avatar"] == str(bundle)
