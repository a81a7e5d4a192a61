"""drivers.media: probing, 30 fps resampling (CFR and VFR), audio decoding, the atomic mp4 writer,
bad input. Clips are tiny and made here with PyAV; real clips come from ../shared when present."""

from __future__ import annotations

import math
import shutil
import subprocess
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from drivers import media

SR = 16000
BIT_WIDTH = 8  # each bit of a frame's index is a vertical stripe this wide


def index_image(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A frame whose index can be read back after lossy coding: 8 black/white stripes = 8 bits."""
    image = np.zeros((height, width, 3), np.uint8)
    for bit in range(8):
        if (index >> bit) & 1:
            image[:, bit * BIT_WIDTH:(bit + 1) * BIT_WIDTH] = 255
    return image


def read_index(image: np.ndarray) -> int:
    return sum(int(image[:, b * BIT_WIDTH:(b + 1) * BIT_WIDTH].mean() > 128) << b for b in range(8))


def sine(seconds: float, freq: float = 330.0, amplitude: float = 0.3, rate: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_clip(
    path: Path,
    *,
    container_format: str | None = None,
    video_codec: str | None = "libx264",
    audio_codec: str | None = "aac",
    fps: int = 25,
    num_frames: int = 50,
    times: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int = SR,
    size: tuple[int, int] = (64, 48),
    audio_start: float = 0.0,
) -> Path:
    """Write a clip with PyAV directly (independent of drivers.media's writer).

    ``times`` (seconds) gives each frame's presentation time for a variable-frame-rate clip.
    ``audio`` is mono float at ``audio_rate``; default: a sine as long as the video.
    """
    container = av.open(str(path), "w", format=container_format)
    video = None
    if video_codec:
        video = container.add_stream(video_codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        if times is not None:
            video.codec_context.time_base = Fraction(1, 1000)
    astream = None
    if audio_codec:
        astream = container.add_stream(audio_codec, rate=audio_rate)
        astream.layout = "stereo" if audio_codec == "libopus" else "mono"
        if audio is None:
            length = (times[-1] + 1 / fps) if times is not None else num_frames / fps
            audio = sine(length, rate=audio_rate)
    if video is not None:
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_image(i, *size), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    if astream is not None:
        fmt = astream.codec_context.format
        step = astream.codec_context.frame_size or 1024
        channels = 2 if astream.layout.name == "stereo" else 1
        for start in range(0, audio.size, step):
            chunk = np.repeat(audio[None, start:start + step], channels, axis=0)
            if not fmt.is_planar:
                chunk = chunk.T.reshape(1, -1)
            if fmt.name.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            elif fmt.name.startswith("s32"):
                chunk = (chunk * 2**31 * 0.999).astype(np.int32)
            else:
                chunk = chunk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt.name,
                                               layout=astream.layout.name)
            frame.sample_rate, frame.pts = audio_rate, start + int(round(audio_start * audio_rate))
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode(None):
            container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "mp4": make_clip(root / "clip.mp4"),
        "no_audio": make_clip(root / "mute.mp4", audio_codec=None),
        "silent": make_clip(root / "silent.mp4", audio=np.zeros(SR * 2, np.float32)),
        "wav": make_clip(root / "speech.wav", video_codec=None, audio_codec="pcm_s16le", audio=sine(1.5)),
        "mp3": make_clip(root / "speech.mp3", video_codec=None, audio_codec="libmp3lame",
                         audio=sine(1.5, rate=22050), audio_rate=22050),
    }


# --------------------------------------------------------------------------------------------
# probe


def test_probe_video_with_audio(clips):
    info = media.probe(clips["mp4"])
    assert info.has_video and info.has_audio and not info.is_audio_only
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.audio_is_silent is False and info.audio_rms_db == pytest.approx(20 * math.log10(0.3 / math.sqrt(2)), abs=1.0)
    assert info.num_motion_frames() == 60
    assert "64x48 h264 at 25 fps" in info.describe()


def test_probe_no_audio_silent_audio_and_audio_only(clips):
    mute = media.probe(clips["no_audio"])
    assert mute.has_video and not mute.has_audio and mute.audio_is_silent is None
    assert "no audio" in mute.describe()
    silent = media.probe(clips["silent"])
    assert silent.has_audio and silent.audio_is_silent is True and "(silent)" in silent.describe()
    for key in ("wav", "mp3"):
        info = media.probe(clips[key])
        assert info.is_audio_only and info.num_motion_frames() == 0 and info.fps is None
        assert info.audio_is_silent is False
        assert info.duration == pytest.approx(1.5, abs=0.06)


@pytest.mark.parametrize(
    "name, container_format, video_codec, audio_codec, audio_rate",
    [
        ("clip.mp4", "mp4", "libx264", "aac", 16000),
        ("clip.mov", "mov", "libx264", "aac", 16000),
        ("clip.mkv", "matroska", "libx264", "libopus", 48000),
        ("clip.webm", "webm", "libvpx-vp9", "libopus", 48000),
        ("clip.avi", "avi", "mpeg4", "pcm_s16le", 16000),
    ],
)
def test_containers(tmp_path, name, container_format, video_codec, audio_codec, audio_rate):
    path = make_clip(tmp_path / name, container_format=container_format, video_codec=video_codec,
                     audio_codec=audio_codec, audio_rate=audio_rate, audio=sine(2.0, rate=audio_rate))
    info = media.probe(path)
    assert info.has_video and info.has_audio and info.fps == pytest.approx(25.0)
    frames = list(media.iter_frames(path))
    assert abs(len(frames) - 60) <= 1
    # 25 -> 30 fps: motion frame k shows source frame floor(k * 25 / 30).
    assert [read_index(f.image) for f in frames[:30]] == [k * 25 // 30 for k in range(30)]
    audio = media.read_audio(path)
    assert audio.dtype == np.float32 and abs(audio.size - 2 * SR) <= 0.05 * SR
    rms = float(np.sqrt(np.mean(audio[SR // 4: -SR // 4] ** 2)))
    assert rms == pytest.approx(0.3 / math.sqrt(2), rel=0.1)


# --------------------------------------------------------------------------------------------
# frame-rate resampling


def test_constant_rate_resampling_rule(clips):
    frames = list(media.iter_frames(clips["mp4"]))
    assert len(frames) == 60
    for frame in frames:
        expected = math.floor(frame.index * 25 / 30 + 1e-9)
        assert frame.source_index == expected == read_index(frame.image)
        assert frame.time == pytest.approx(frame.index / 30)
        assert frame.source_time <= frame.time + 1e-9
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
    source = list(media.iter_frames(clips["mp4"], fps=None))
    assert [read_index(f.image) for f in source] == list(range(50))


def test_frames_can_skip_their_rgb_conversion(clips):
    every = list(media.iter_frames(clips["mp4"]))
    some = list(media.iter_frames(clips["mp4"], images=lambda k: k % 3 == 0))
    assert [(f.index, f.source_index) for f in some] == [(f.index, f.source_index) for f in every]
    for full, sparse in zip(every, some):
        if full.index % 3:
            assert sparse.image is None
        else:
            np.testing.assert_array_equal(sparse.image, full.image)


@pytest.mark.parametrize("suffix, container_format", [(".mp4", "mp4"), (".mkv", "matroska")])
def test_variable_rate_resampling_rule(tmp_path, suffix, container_format):
    steps = np.random.default_rng(3).choice([0.02, 0.033, 0.05, 0.1, 0.2], size=59)
    times = np.round(np.concatenate([[0.0], np.cumsum(steps)]), 3)
    path = make_clip(tmp_path / f"vfr{suffix}", container_format=container_format, audio_codec=None,
                     num_frames=60, times=times)
    info = media.probe(path)
    frames = list(media.iter_frames(path))
    assert len(frames) == info.num_motion_frames() == math.ceil(30 * info.video_duration - 1e-6)
    for frame in frames:
        t = frame.index / 30
        expected = int(np.searchsorted(times, t + 1e-6, side="right") - 1)  # latest pts <= t
        assert frame.source_index == expected == read_index(frame.image)
        assert frame.source_time == pytest.approx(times[expected], abs=1e-3)


def test_resize_and_torch_reader(clips):
    frames = media.read_frames(clips["mp4"], size=(32, 24))
    assert frames.shape == (60, 24, 32, 3) and frames.dtype == torch.uint8


def test_streaming_memory_is_bounded(tmp_path):
    # 300 frames of 320x240 RGB would be 69 MB held at once; the reader keeps ~2 frames.
    path = tmp_path / "long.mp4"
    media.write_video(path, (np.full((240, 320, 3), i % 256, np.uint8) for i in range(300)),
                      fps=30, crf=35)
    tracemalloc.start()
    count = 0
    for frame in media.iter_frames(path):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 300
    assert peak < 8 * 320 * 240 * 3


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_rotation_metadata_is_applied(tmp_path, clips):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clips["no_audio"]), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    plain = next(iter(media.iter_frames(clips["no_audio"]))).image
    turned = next(iter(media.iter_frames(rotated))).image
    info = media.probe(rotated)
    assert info.rotation in (90, 270) and (info.width, info.height) == (48, 64)
    assert turned.shape == (64, 48, 3)
    k = info.rotation // 90
    assert np.abs(np.rot90(plain, k).astype(int) - turned.astype(int)).mean() < 1.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_mp3_with_cover_art_is_audio_only(tmp_path, clips):
    cover = tmp_path / "cover.png"
    av.VideoFrame.from_ndarray(index_image(5), format="rgb24").to_image().save(cover)
    song = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clips["mp3"]), "-i", str(cover), "-map", "0",
                    "-map", "1", "-c:a", "copy", "-c:v", "mjpeg", "-disposition:v", "attached_pic",
                    str(song)], check=True)
    info = media.probe(song)
    assert info.is_audio_only and info.duration == pytest.approx(1.5, abs=0.06)
    with pytest.raises(AvatarInputError, match="audio only"):
        next(iter(media.iter_frames(song)))


# --------------------------------------------------------------------------------------------
# audio


def test_audio_streaming_chunks_match_whole_track(clips):
    whole = media.read_audio(clips["mp4"])
    chunks = list(media.iter_audio(clips["mp4"], chunk_size=3000))
    assert all(c.size == 3000 for c in chunks[:-1]) and 0 < chunks[-1].size <= 3000
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    assert whole.size == 2 * SR


def test_audio_resampled_to_16k_mono(clips):
    audio = media.read_audio(clips["mp3"])  # 22.05 kHz mp3
    assert abs(audio.size - 1.5 * SR) <= 0.05 * SR
    spectrum = np.abs(np.fft.rfft(audio[2000:2000 + SR]))
    assert np.argmax(spectrum) == pytest.approx(330, abs=2)  # 1 Hz bins


def test_audio_starting_late_stays_in_sync(tmp_path):
    path = make_clip(tmp_path / "late.mkv", container_format="matroska", audio_codec="pcm_s16le",
                     audio=sine(1.0), audio_start=0.5)
    audio = media.read_audio(path)
    assert audio.size == pytest.approx(1.5 * SR, abs=2)
    assert np.abs(audio[: int(0.49 * SR)]).max() == 0 and np.abs(audio[int(0.51 * SR):]).max() > 0.25
    assert len(list(media.iter_frames(path))) == 60


def test_missing_audio_track(clips):
    with pytest.raises(AvatarInputError, match="no audio track"):
        media.read_audio(clips["no_audio"])
    silence = media.read_audio(clips["no_audio"], fill_missing=True)
    assert silence.size == 2 * SR and not silence.any()


def test_audio_only_file_has_no_frames(clips):
    with pytest.raises(AvatarInputError, match="audio only"):
        next(iter(media.iter_frames(clips["wav"])))


# --------------------------------------------------------------------------------------------
# writer


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def test_write_read_round_trip_odd_size(tmp_path):
    height, width = 37, 51  # odd: padded to 38x52 for yuv420p
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = [  # smooth colour ramps and a moving bright disc
        np.clip(np.stack([xx * 4 + i, yy * 5 + 20, 120 + 80 * np.exp(
            -((xx - 10 - i * 0.6) ** 2 + (yy - 18) ** 2) / 40.0)], -1), 0, 255).astype(np.uint8)
        for i in range(45)
    ]
    wave = sine(1.5, freq=440.0, amplitude=0.5)
    path = media.write_video(tmp_path / "out.mp4", iter(frames), fps=30, audio=wave)
    info = media.probe(path)
    assert (info.width, info.height) == (52, 38) and info.fps == pytest.approx(30)
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.audio_sample_rate == SR
    back = list(media.iter_frames(path))
    assert len(back) == 45
    assert min(psnr(b.image[:height, :width], f) for b, f in zip(back, frames)) > 30
    edge = np.abs(back[0].image[height].astype(int) - back[0].image[height - 1].astype(int))
    assert edge.mean() < 3  # the padding row repeats the last row (up to coding noise)
    audio = media.read_audio(path)
    assert audio.size == wave.size
    # No offset between what was written and what is read (AAC priming is removed).
    segment = audio[4000:12000]
    lags = [float(np.dot(segment, wave[4000 + lag:12000 + lag])) for lag in range(-40, 41)]
    assert int(np.argmax(lags)) - 40 == 0
    assert np.corrcoef(segment, wave[4000:12000])[0, 1] > 0.99
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left


def test_writer_push_api_torch_frames_and_chunked_audio(tmp_path):
    path = tmp_path / "push.mp4"
    wave = sine(1.0)
    with media.VideoWriter(path, fps=25, with_audio=True) as writer:
        for i in range(25):
            writer.write_frame(torch.full((48, 64, 3), i / 25.0))  # float in [0, 1]
            writer.write_audio(wave[i * 640:(i + 1) * 640])
    assert writer.num_frames == 25
    info = media.probe(path)
    assert info.num_motion_frames(25) == 25 and info.audio_duration == pytest.approx(1.0, abs=0.01)
    means = [f.image.mean() for f in media.iter_frames(path, fps=25)]
    np.testing.assert_allclose(means, [i / 25 * 255 for i in range(25)], atol=3)


def test_writer_with_audio_but_none_pushed_writes_silence(tmp_path):
    with media.VideoWriter(tmp_path / "quiet.mp4", fps=30, with_audio=True) as writer:
        for i in range(30):
            writer.write_frame(index_image(i))
    info = media.probe(writer.path)
    assert info.has_audio and info.audio_is_silent is True
    assert info.audio_duration == pytest.approx(1.0, abs=0.01)


def test_writer_refuses_overwrite_without_force(tmp_path):
    path = tmp_path / "out.mp4"
    media.write_video(path, [index_image(1)] * 3)
    before = path.read_bytes()
    with pytest.raises(AvatarInputError, match="already exists"):
        media.write_video(path, [index_image(2)] * 3)
    assert path.read_bytes() == before
    media.write_video(path, [index_image(2)] * 3, force=True)
    assert read_index(next(iter(media.iter_frames(path))).image) == 2


def test_writer_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(path) as writer:
            writer.write_frame(index_image(0))
            raise RuntimeError("renderer crashed")
    with pytest.raises(AvatarInputError, match="size"):
        with media.VideoWriter(path) as writer:
            writer.write_frame(index_image(0))
            writer.write_frame(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(AvatarInputError, match="no frames"):
        media.write_video(path, [])
    assert list(tmp_path.iterdir()) == []


def test_writer_bad_arguments(tmp_path):
    with pytest.raises(AvatarInputError, match=".mp4"):
        media.VideoWriter(tmp_path / "out.gif")
    with pytest.raises(AvatarInputError, match="H, W, 3"):
        media.write_video(tmp_path / "a.mp4", [np.zeros((8, 8), np.uint8)])
    with media.VideoWriter(tmp_path / "b.mp4") as writer:
        writer.write_frame(index_image(0))
        with pytest.raises(AvatarInputError, match="no audio track"):
            writer.write_audio(np.zeros(10, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mp4"]


# --------------------------------------------------------------------------------------------
# bad input


@pytest.fixture(scope="module")
def good_bytes(clips) -> bytes:
    return clips["mp4"].read_bytes()


def _all_readers(path):
    return [lambda: media.probe(path), lambda: list(media.iter_frames(path)), lambda: media.read_audio(path)]


def _assert_one_line_error(path):
    for read in _all_readers(path):
        with pytest.raises(AvatarInputError) as caught:
            read()
        message = str(caught.value)
        assert "\n" not in message and str(path.name) in message


def test_missing_empty_and_folder(tmp_path):
    _assert_one_line_error(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_one_line_error(tmp_path / "empty.mp4")
    with pytest.raises(AvatarInputError, match="folder"):
        media.probe(tmp_path)


def test_text_file_named_mp4_and_unknown_container(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 40)
    _assert_one_line_error(text)
    junk = tmp_path / "data.xyz"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_one_line_error(junk)


def test_truncated_file(tmp_path, good_bytes):
    for fraction in (0.5, 0.9):
        path = tmp_path / f"cut{int(fraction * 100)}.mp4"
        path.write_bytes(good_bytes[: int(len(good_bytes) * fraction)])
        with pytest.raises(AvatarInputError, match="truncated|corrupt|readable"):
            media.probe(path)
        with pytest.raises(AvatarInputError, match="truncated|corrupt|readable"):
            list(media.iter_frames(path))


def test_corrupt_payload(tmp_path, good_bytes):
    data = bytearray(good_bytes)
    for i in range(len(data) // 3, len(data) - 64, 13):
        data[i] = (data[i] * 7 + 1) % 256
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(AvatarInputError, match="corrupt|truncated"):
        list(media.iter_frames(path))


# --------------------------------------------------------------------------------------------
# real clips (../shared)


def test_shared_clip_without_audio(shared):
    path = shared / "media" / "videos" / "d0.mp4"
    info = media.probe(path)
    assert info.has_video and not info.has_audio and (info.width, info.height) == (512, 512)
    frames = sum(1 for _ in media.iter_frames(path, size=(128, 128)))
    assert abs(frames - round(30 * info.duration)) <= 1
    assert media.read_audio(path, fill_missing=True).size == round(info.duration * SR)


def test_shared_clip_with_silent_audio(shared):
    info = media.probe(shared / "media" / "videos" / "d18.mp4")
    assert info.has_audio and info.audio_is_silent is True and info.fps == pytest.approx(30)


@pytest.mark.parametrize("name", ["WDA_AlexandriaOcasioCortez_000.mp4", "d11.mp4", "d12.mp4"])
def test_shared_25fps_clips_resample_to_30(shared, name):
    path = shared / "media" / "videos" / name
    info = media.probe(path)
    assert info.fps == pytest.approx(25) and info.audio_is_silent is False
    frames = list(media.iter_frames(path, size=(64, 64)))
    assert abs(len(frames) - round(30 * info.duration)) <= 1
    assert [f.source_index for f in frames[:12]] == [k * 25 // 30 for k in range(12)]
    audio = media.read_audio(path)
    assert abs(audio.size / SR - info.duration) < 0.05 and np.abs(audio).max() <= 1.0


def test_shared_audio_only_wav(shared):
    path = shared / "media" / "audio" / "chinese_news.wav"  # 48 kHz stereo
    info = media.probe(path)
    assert info.is_audio_only and info.audio_sample_rate == 48000 and info.audio_channels == 2
    assert media.read_audio(path).size == pytest.approx(8 * SR, abs=16)
