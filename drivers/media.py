"""Decode and encode video + audio with PyAV, streaming, in bounded memory.

Reading
    :func:`probe` says what a file holds (duration, frame rate, size, codecs, whether there is an
    audio track and whether it is silent), decoding one picture and (streaming) the audio.
    :func:`iter_frames` yields RGB frames resampled to the 30 fps motion rate.
    :func:`iter_audio` / :func:`read_audio` give the audio as mono 16 kHz float32.

Writing
    :class:`VideoWriter` encodes frames pushed one at a time (H.264 yuv420p via libx264) and an
    optional mono 16 kHz audio track (AAC) into an mp4, atomically; :func:`write_video` wraps it.

Time origin: every time in this module is in seconds from the start of the file (the smallest
start time of its video and audio streams), so audio sample ``n`` and motion frame ``k`` line up
at ``n / 16000 == k / 30``.

Frame-rate resampling rule (constant or variable frame rate input alike): motion frame ``k`` is
shown at ``t_k = k / fps`` and is the *latest source frame whose presentation time is <= t_k*
(sample-and-hold; a frame is never taken from the future, so the video is as causal as the
audio features). Before the first source frame the first frame is held. Motion frames are
emitted while ``t_k`` is before the end of the video (the stream's declared duration, else the
last frame's time plus its duration), so a video of duration ``D`` gives ``ceil(fps * D)``
frames (:meth:`MediaInfo.num_motion_frames`) — ``round(fps * D)`` for the usual durations.
Only the current and the previous decoded frame are held: memory does not grow with the clip.

Audio is mixed to mono by averaging the channels after PyAV's ``AudioResampler`` has resampled
each one (ffmpeg's own stereo-to-mono matrix sums the channels at -3 dB and can exceed 1).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import av
import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.io import umask

if TYPE_CHECKING:
    import torch

MOTION_FPS = 30.0
AUDIO_SAMPLE_RATE = 16000
SILENCE_THRESHOLD_DB = -60.0
"""An audio track whose RMS over its whole length is below this (dBFS) is reported silent."""

# Demuxers we read. Anything else (ffmpeg can also "open" text, images, playlists …) is refused.
_SUPPORTED_FORMATS = {
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # mov,mp4,m4a,3gp,3g2,mj2
    "matroska", "webm", "avi", "wav", "mp3", "ogg", "flac", "aac", "mpegts", "flv", "asf",
}
_SUPPORTED_HINT = "pass an mp4, mov, mkv, webm or avi video, or a wav or mp3 audio file"
_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_MAX_BAD_PACKETS = 32
_VIDEO_END_TOLERANCE_FRAMES = 3  # a video may end this many frames (at least 0.1 s) early
_AUDIO_END_TOLERANCE_S = 0.2  # an audio track may end this much early (codec frames, priming)


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds. Times in seconds; sizes in pixels as displayed (rotation applied).

    ``audio_is_silent`` / ``audio_rms_db`` are ``None`` when there is no audio track or the
    silence check was skipped.
    """

    path: Path
    container: str
    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    num_source_frames: int | None = None
    rotation: int = 0
    video_codec: str | None = None
    video_duration: float | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None
    audio_rms_db: float | None = None
    audio_is_silent: bool | None = None

    @property
    def is_audio_only(self) -> bool:
        return self.has_audio and not self.has_video

    def num_motion_frames(self, fps: float = MOTION_FPS) -> int:
        """How many frames :func:`iter_frames` yields at ``fps`` (0 for audio-only files)."""
        if not self.has_video or self.video_duration is None:
            return 0
        return max(1, math.ceil(self.video_duration * fps - 1e-6))

    def describe(self) -> str:
        """One line for a person: ``3.12 s, 512x512 h264 at 25 fps, no audio``."""
        parts = [f"{self.duration:.2f} s"]
        if self.has_video:
            parts.append(f"{self.width}x{self.height} {self.video_codec} at {self.fps:g} fps")
        else:
            parts.append("no video")
        if not self.has_audio:
            parts.append("no audio")
        else:
            silent = " (silent)" if self.audio_is_silent else ""
            parts.append(f"{self.audio_codec} audio {self.audio_sample_rate} Hz{silent}")
        return ", ".join(parts)


@dataclass(frozen=True)
class MotionFrame:
    """One frame at the motion rate.

    Attributes:
        index: motion frame number ``k``.
        time: ``k / fps`` in seconds from the start of the file.
        source_time: presentation time of the source frame shown (<= ``time`` except for the
            held first frame).
        source_index: which decoded source frame it is (0-based, presentation order).
        image: ``(H, W, 3)`` uint8 RGB, row 0 at the top. Motion frames that repeat a source
            frame share one array: copy it before writing into it. ``None`` for frames that
            :func:`iter_frames` was asked not to convert (``images=``).
    """

    index: int
    time: float
    source_time: float
    source_index: int
    image: np.ndarray | None


# --------------------------------------------------------------------------------------------
# Opening and probing


def _open(path: str | os.PathLike) -> tuple[Path, "av.container.InputContainer"]:
    path = Path(path)
    if not path.exists():
        raise AvatarInputError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise AvatarInputError(f"{path}: is a folder, not a media file; {_SUPPORTED_HINT}")
    if path.stat().st_size == 0:
        raise AvatarInputError(f"{path}: the file is empty (0 bytes); {_SUPPORTED_HINT}")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = _short_reason(exc)
        raise AvatarInputError(
            f"{path}: not a readable video or audio file ({reason}); {_SUPPORTED_HINT}"
        ) from None
    formats = set(container.format.name.split(","))
    if not formats & _SUPPORTED_FORMATS:
        container.close()
        raise AvatarInputError(
            f"{path}: unsupported container '{container.format.name}'; {_SUPPORTED_HINT}"
        )
    if not _video_streams(container) and not container.streams.audio:
        container.close()
        raise AvatarInputError(f"{path}: holds neither a video nor an audio stream; {_SUPPORTED_HINT}")
    return path, container


def _short_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:120]


def _time_origin(container) -> float:
    """Smallest start time over the video and audio streams, seconds (0 when unknown)."""
    starts = [
        float(s.start_time * s.time_base)
        for s in (*_video_streams(container)[:1], *container.streams.audio[:1])
        if s.start_time is not None and s.time_base is not None
    ]
    return min(starts) if starts else 0.0


def _stream_end(stream, origin: float) -> float | None:
    """Declared end of a stream in seconds from the origin, or ``None`` when it is not declared.

    mp4/mov/avi declare a per-stream duration; Matroska/WebM (as ffmpeg writes them) carry the
    stream's end time in a ``DURATION`` tag.
    """
    if stream.duration is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
        return start + float(stream.duration * stream.time_base) - origin
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.strip().split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds) - origin
        except ValueError:
            return None
    return None


def _video_streams(container) -> list:
    """Video streams that are pictures in motion (not an mp3's or m4a's cover art)."""
    cover = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not s.disposition & cover]


def _video_stream(container):
    stream = _video_streams(container)[0]
    stream.thread_type = "AUTO"
    return stream


def _frame_rotation(frame) -> int:
    """Display rotation of a decoded frame: degrees counter-clockwise, a multiple of 90."""
    rotation = getattr(frame, "rotation", 0) or 0
    return int(round(rotation / 90.0)) * 90 % 360


def probe(path: str | os.PathLike, *, check_silence: bool = True) -> MediaInfo:
    """Say what a media file holds: decodes one video frame and (streaming) the audio track.

    Args:
        path: a video (mp4, mov, mkv, webm, avi) or audio (wav, mp3, …) file.
        check_silence: decode the whole audio track and measure its RMS (bounded memory);
            sets ``audio_rms_db`` and ``audio_is_silent``.

    Returns:
        :class:`MediaInfo`.

    Raises:
        AvatarInputError: missing, empty, truncated or unreadable file, or unsupported container.
    """
    path, container = _open(path)
    fields: dict = {"path": path, "container": container.format.name,
                    "has_video": bool(_video_streams(container)),
                    "has_audio": bool(container.streams.audio)}
    ends: list[float] = []
    with container:
        origin = _time_origin(container)
        if fields["has_video"]:
            stream = _video_stream(container)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            video_end = _stream_end(stream, origin)
            if video_end is None and container.duration is not None:
                video_end = container.duration / av.time_base - origin
            frames = _decode_packets(path, container, stream)
            first = next(frames, None)
            frames.close()
            if first is None:
                raise AvatarInputError(f"{path}: no video frame could be decoded; the file is corrupt")
            rotation = _frame_rotation(first)
            width, height = first.width, first.height
            if rotation % 180 == 90:
                width, height = height, width
            if video_end is not None:
                _check_video_reaches(path, container, stream, origin, video_end)
                ends.append(video_end)
            fields.update(
                fps=float(rate) if rate else None, width=width, height=height,
                num_source_frames=stream.frames or None, rotation=rotation,
                video_codec=stream.codec_context.name, video_duration=video_end,
            )
        if fields["has_audio"]:
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            fields.update(audio_codec=ctx.name, audio_sample_rate=ctx.sample_rate,
                          audio_channels=ctx.layout.nb_channels)
            audio_end = _stream_end(stream, origin)
            if audio_end is None and container.duration is not None:
                audio_end = container.duration / av.time_base - origin
    if fields["has_audio"] and check_silence:
        count, sum_sq = 0, 0.0
        for chunk in iter_audio(path, chunk_size=AUDIO_SAMPLE_RATE * 4):
            count += chunk.size
            sum_sq += float(np.dot(chunk.astype(np.float64), chunk.astype(np.float64)))
        # An empty track (no packets at all) is reported as silent, like a track of zeros.
        rms_db = 20.0 * math.log10(max(math.sqrt(sum_sq / max(count, 1)), 1e-10))
        fields.update(audio_rms_db=rms_db, audio_is_silent=rms_db < SILENCE_THRESHOLD_DB)
        decoded_end = count / AUDIO_SAMPLE_RATE
        if audio_end is None:
            audio_end = decoded_end
    if fields["has_audio"]:
        fields["audio_duration"] = audio_end
        if audio_end is not None:
            ends.append(audio_end)
    fields["duration"] = max(ends) if ends else 0.0
    return MediaInfo(**fields)


def _video_tolerance(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frame = 1.0 / float(rate) if rate else 1.0 / MOTION_FPS
    return max(0.1, _VIDEO_END_TOLERANCE_FRAMES * frame)


def _truncated(path: Path, kind: str, reached: float, declared: float) -> AvatarInputError:
    return AvatarInputError(
        f"{path}: the {kind} stops at {reached:.2f} s but the file declares {declared:.2f} s; "
        "it looks truncated or corrupt — re-export or re-download it"
    )


def _check_video_reaches(path: Path, container, stream, origin: float, declared_end: float) -> None:
    """Demux (no decoding) the last second of the video; raise if the packets stop early."""
    tolerance = _video_tolerance(stream)
    tb = stream.time_base
    target = int((declared_end + origin - 1.0) / tb)
    last_end = None
    try:
        container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return  # not seekable: iter_frames still checks the end while decoding
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            end = float(packet.pts * tb) + float((packet.duration or 0) * tb) - origin
            last_end = end if last_end is None else max(last_end, end)
    except av.error.FFmpegError:
        pass
    if last_end is None or last_end < declared_end - tolerance:
        raise _truncated(path, "video", 0.0 if last_end is None else last_end, declared_end)


# --------------------------------------------------------------------------------------------
# Video


def _decode_packets(path: Path, container, stream) -> Iterator:
    """Decoded frames of one stream; skips a few undecodable packets, raises on many."""
    bad = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    raise AvatarInputError(
                        f"{path}: too many undecodable {stream.type} packets; the file is corrupt"
                    ) from None
                continue
            yield from frames
    except av.error.FFmpegError as exc:
        raise AvatarInputError(
            f"{path}: decoding the {stream.type} failed ({_short_reason(exc)}); the file is corrupt"
        ) from None


def _frame_duration(frame, previous_time: float | None, time: float, nominal: float) -> float:
    if frame.duration and frame.time_base is not None:
        return float(frame.duration * frame.time_base)
    if previous_time is not None and time > previous_time:
        return time - previous_time
    return nominal


def _to_rgb(frame, size: tuple[int, int] | None, rotation: int) -> np.ndarray:
    if size is not None:
        width, height = size
        if rotation % 180 == 90:
            width, height = height, width
        frame = frame.reformat(width=width, height=height, format="rgb24")
        image = frame.to_ndarray()
    else:
        image = frame.to_ndarray(format="rgb24")
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


class _Held:
    """A decoded source frame whose RGB conversion is done once, only if it is shown."""

    __slots__ = ("source_index", "time", "frame", "image")

    def __init__(self, source_index: int, time: float, frame) -> None:
        self.source_index, self.time, self.frame, self.image = source_index, time, frame, None

    def shown_at(self, k: int, fps: float, size, rotation: int, wanted: bool = True) -> MotionFrame:
        if not wanted:
            return MotionFrame(k, k / fps, self.time, self.source_index, None)
        if self.image is None:
            self.image = _to_rgb(self.frame, size, rotation)
            self.frame = None
        return MotionFrame(k, k / fps, self.time, self.source_index, self.image)


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = MOTION_FPS,
    *,
    size: tuple[int, int] | None = None,
    strict: bool = True,
    images: Callable[[int], bool] | None = None,
) -> Iterator[MotionFrame]:
    """Stream RGB frames resampled to ``fps`` (rule in the module docstring), bounded memory.

    Args:
        path: video file.
        fps: output rate; ``None`` yields every decoded source frame as it is.
        size: optional ``(width, height)`` to scale to (as displayed, after rotation).
        strict: raise when the video stops well before the length the file declares.
        images: ``images(k)`` says whether motion frame ``k`` needs its image; the others come with
            ``image=None`` (still decoded — video frames depend on each other — but not converted to
            RGB, the larger cost). ``None``: every frame's.

    Yields:
        :class:`MotionFrame` with ``image`` ``(H, W, 3)`` uint8 RGB.

    Raises:
        AvatarInputError: missing/corrupt/truncated file, or a file without a video stream.
    """
    if fps is not None and not fps > 0:
        raise AvatarInputError(f"fps must be positive, got {fps}")
    path, container = _open(path)
    try:
        if not _video_streams(container):
            raise AvatarInputError(
                f"{path}: is audio only (no video stream); pass a video with a face in it"
            )
        stream = _video_stream(container)
        origin = _time_origin(container)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        nominal = 1.0 / float(rate) if rate else 1.0 / MOTION_FPS
        declared_end = _stream_end(stream, origin)
        eps = 1e-6  # timestamps are compared to the microsecond

        rotation = 0
        k = 0
        held: _Held | None = None
        source_index = -1
        last_time: float | None = None
        last_duration = nominal
        for frame in _decode_packets(path, container, stream):
            if frame.pts is not None and frame.time_base is not None:
                time = float(frame.pts * frame.time_base) - origin
            else:
                time = (last_time + last_duration) if last_time is not None else 0.0
            if last_time is not None and time <= last_time + eps:
                continue  # duplicate or out-of-order timestamp: keep presentation order
            last_duration = _frame_duration(frame, last_time, time, nominal)
            source_index += 1
            if source_index == 0:
                rotation = _frame_rotation(frame)
            last_time = time
            if fps is None:
                wanted = images is None or images(source_index)
                yield MotionFrame(source_index, time, time, source_index,
                                  _to_rgb(frame, size, rotation) if wanted else None)
                continue
            current = _Held(source_index, time, frame)
            if held is None:
                held = current  # the first frame is also held before its own time
            # Motion times before this frame are shown by the frame held so far.
            while k / fps < time - eps:
                yield held.shown_at(k, fps, size, rotation, images is None or images(k))
                k += 1
            held = current
        if source_index < 0:
            raise AvatarInputError(f"{path}: no video frame could be decoded; the file is corrupt")
        end = last_time + last_duration
        if declared_end is not None and last_time < declared_end <= end + _video_tolerance(stream):
            end = declared_end  # the container's length beats a guessed last-frame duration
        if fps is not None:
            while k / fps < end - eps:
                yield held.shown_at(k, fps, size, rotation, images is None or images(k))
                k += 1
        if strict and declared_end is not None and end < declared_end - _video_tolerance(stream):
            raise _truncated(path, "video", end, declared_end)
    finally:
        container.close()


def read_frames(path: str | os.PathLike, fps: float | None = MOTION_FPS, **kwargs) -> torch.Tensor:
    """All frames of a (short) clip at once; prefer :func:`iter_frames` for long clips.

    Returns:
        ``(T, H, W, 3)`` uint8 tensor.
    """
    import torch

    images = [torch.from_numpy(f.image) for f in iter_frames(path, fps, **kwargs)]
    return torch.stack(images)


# --------------------------------------------------------------------------------------------
# Audio


def _decode_audio(path: Path, container, stream, origin: float, sample_rate: int) -> Iterator[np.ndarray]:
    """Decoded audio of one stream as mono float32 at ``sample_rate``, in decoder-sized pieces.

    Sample 0 is at the file's time origin: a track that starts later is preceded by zeros,
    samples before the origin are dropped.
    """
    # Resample each channel (keeping the input layout), then average the channels: mono stays in
    # [-1, 1] (ffmpeg's own stereo->mono matrix sums at -3 dB each and can exceed 1).
    resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
    first = True
    skip = 0
    # Encoders pad the last frame (AAC: to 1024 samples); the declared duration says where the
    # track really ends, so samples past it are dropped.
    declared_end = _stream_end(stream, origin)
    remaining = None if declared_end is None else int(round(declared_end * sample_rate))

    def mono(frames) -> Iterator[np.ndarray]:
        nonlocal skip, remaining
        for out in frames:
            samples = out.to_ndarray().astype(np.float32, copy=False)
            samples = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
            samples = np.clip(samples, -1.0, 1.0)  # resampling filters can ring past full scale
            if skip:
                cut = min(skip, samples.size)
                samples, skip = samples[cut:], skip - cut
            if remaining is not None:
                samples = samples[:max(remaining, 0)]
                remaining -= samples.size
            if samples.size:
                yield np.ascontiguousarray(samples, dtype=np.float32)

    for frame in _decode_packets(path, container, stream):
        if first:
            first = False
            if frame.pts is not None and frame.time_base is not None:
                offset = float(frame.pts * frame.time_base) - origin
                lead = int(round(offset * sample_rate))
                if lead > 0:
                    yield np.zeros(lead, np.float32)
                    if remaining is not None:
                        remaining -= lead
                else:
                    skip = -lead
        frame.pts = None  # the resampler counts samples; the time origin is handled above
        yield from mono(resampler.resample(frame))
    yield from mono(resampler.resample(None))
    if remaining is not None and remaining > _AUDIO_END_TOLERANCE_S * sample_rate:
        raise _truncated(path, "audio", declared_end - remaining / sample_rate, declared_end)


def iter_audio(
    path: str | os.PathLike,
    *,
    chunk_size: int = AUDIO_SAMPLE_RATE,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> Iterator[np.ndarray]:
    """Stream the first audio track as mono float32 at ``sample_rate`` (PyAV's AudioResampler).

    Args:
        path: video or audio file.
        chunk_size: samples per yielded chunk (the last one may be shorter).
        sample_rate: output rate in Hz.

    Yields:
        ``(chunk_size,)`` float32 arrays in [-1, 1], sample 0 at the file's time origin.

    Raises:
        AvatarInputError: unreadable file, or a file without an audio stream.
    """
    if chunk_size <= 0:
        raise AvatarInputError(f"chunk_size must be positive, got {chunk_size}")
    path, container = _open(path)
    try:
        if not container.streams.audio:
            raise AvatarInputError(f"{path}: has no audio track")
        stream = container.streams.audio[0]
        origin = _time_origin(container)
        pending: list[np.ndarray] = []
        count = 0
        for piece in _decode_audio(path, container, stream, origin, sample_rate):
            pending.append(piece)
            count += piece.size
            if count >= chunk_size:
                joined = np.concatenate(pending)
                whole = (joined.size // chunk_size) * chunk_size
                for start in range(0, whole, chunk_size):
                    yield joined[start:start + chunk_size]
                rest = joined[whole:]
                pending, count = ([rest] if rest.size else []), rest.size
        if count:
            yield np.concatenate(pending)
    finally:
        container.close()


def read_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    fill_missing: bool = False,
) -> np.ndarray:
    """The whole first audio track as mono float32 at ``sample_rate``.

    Args:
        path: video or audio file.
        sample_rate: output rate in Hz.
        fill_missing: for a video without an audio track return silence as long as the video
            instead of raising.

    Returns:
        ``(N,)`` float32 array in [-1, 1].
    """
    if fill_missing:
        info = probe(path, check_silence=False)
        if not info.has_audio:
            return np.zeros(int(round(info.duration * sample_rate)), np.float32)
    chunks = list(iter_audio(path, chunk_size=sample_rate * 10, sample_rate=sample_rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


# --------------------------------------------------------------------------------------------
# Writing


def _is_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch: this module serves torch-free processes)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _as_rgb_uint8(image) -> np.ndarray:
    if _is_tensor(image):
        image = image.detach().cpu()
        if image.is_floating_point():
            image = (image.clamp(0, 1) * 255.0).round().byte()
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise AvatarInputError(f"a video frame must be (H, W, 3) RGB, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        else:
            raise AvatarInputError(f"a video frame must be uint8 or float in [0, 1], got {image.dtype}")
    return image


class VideoWriter:
    """Encode an mp4 (H.264 yuv420p + optional AAC mono audio) from frames pushed one at a time.

    The file is written to a temporary name in the target folder and renamed on :meth:`close`;
    on an exception inside ``with`` (or :meth:`abort`) the partial file is deleted. Odd sizes are
    padded by one row/column (edge pixels repeated): H.264 in yuv420p needs even sizes.

    Args:
        path: output ``.mp4`` (or ``.m4v`` / ``.mov``).
        fps: frame rate of the pushed frames.
        with_audio: the file gets an audio track; push it with :meth:`write_audio`.
        audio_sample_rate: rate of the pushed audio (Hz).
        force: overwrite an existing file.
        crf: x264 constant rate factor (0 lossless … 51 worst; 18 is visually lossless).
        preset: x264 speed preset.

    Example:
        >>> with VideoWriter(tmp / "out.mp4", fps=30, with_audio=True) as writer:  # doctest: +SKIP
        ...     writer.write_audio(wave)
        ...     for image in images:
        ...         writer.write_frame(image)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = MOTION_FPS,
        *,
        with_audio: bool = False,
        audio_sample_rate: int = AUDIO_SAMPLE_RATE,
        force: bool = False,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        self._format = _WRITE_FORMATS.get(self.path.suffix.lower())
        if self._format is None:
            raise AvatarInputError(f"{self.path}: the output must end in .mp4, .m4v or .mov")
        if self.path.exists() and not force:
            raise AvatarInputError(f"{self.path}: already exists; pass force=True (--force) to overwrite")
        if self.path.exists() and not self.path.is_file():
            raise AvatarInputError(f"{self.path}: is a folder; choose a file name")
        if not fps or fps <= 0:
            raise AvatarInputError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.rate = Fraction(fps).limit_denominator(1001) if not float(fps).is_integer() else Fraction(int(fps))
        self.with_audio = with_audio
        self.audio_sample_rate = int(audio_sample_rate)
        self.force = force
        self._crf, self._preset = crf, preset
        self._tmp: Path | None = None
        self._container = None
        self._video = None
        self._audio = None
        self._size: tuple[int, int] | None = None  # (H, W) as pushed
        self.num_frames = 0
        self._audio_pending: list[np.ndarray] = []
        self._audio_pending_count = 0
        self._audio_written = 0
        self._closed = False

    # -- context manager
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    # -- pushing
    def write_frame(self, image) -> None:
        """Push one frame: ``(H, W, 3)`` uint8 RGB (numpy or torch), or float in [0, 1]."""
        self._check_open()
        image = _as_rgb_uint8(image)
        if self._container is None:
            self._start(image.shape[0], image.shape[1])
        if image.shape[:2] != self._size:
            raise AvatarInputError(
                f"every frame must have the first frame's size {self._size}, got {image.shape[:2]}"
            )
        pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = self.num_frames
        self._mux(self._video.encode(frame))
        self.num_frames += 1
        if self._audio is not None:
            # Keep audio roughly level with the video so the file interleaves well.
            due = int(math.ceil(self.num_frames / float(self.rate) * self.audio_sample_rate)) + 1024
            self._encode_audio(upto=due)

    def write_audio(self, samples) -> None:
        """Push mono audio at ``audio_sample_rate``: ``(N,)`` float in [-1, 1] (numpy or torch)."""
        self._check_open()
        if not self.with_audio:
            raise AvatarInputError("this writer has no audio track; create it with with_audio=True")
        if _is_tensor(samples):
            samples = samples.detach().cpu().numpy()
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AvatarInputError(f"audio must be mono (N,), got shape {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise AvatarInputError("audio holds NaN or infinite samples")
        if samples.size:
            self._audio_pending.append(np.clip(samples, -1.0, 1.0))
            self._audio_pending_count += samples.size
        if self._audio is not None and self.num_frames:
            due = int(math.ceil(self.num_frames / float(self.rate) * self.audio_sample_rate)) + 1024
            self._encode_audio(upto=due)

    # -- finishing
    def close(self) -> Path:
        """Flush the encoders, finish the file and move it into place. Returns the path."""
        if self._closed:
            return self.path
        try:
            if self._container is None:
                raise AvatarInputError(f"{self.path}: no frames were written; nothing to save")
            if self._audio is not None:
                if not self._audio_written and not self._audio_pending_count:
                    # An audio track was promised but none pushed: silence as long as the video.
                    seconds = self.num_frames / float(self.rate)
                    self.write_audio(np.zeros(int(round(seconds * self.audio_sample_rate)), np.float32))
                self._encode_audio(upto=None)
                self._mux(self._audio.encode(None))
            self._mux(self._video.encode(None))
            self._container.close()
            self._container = None
            if self.path.exists() and not self.force:
                raise AvatarInputError(
                    f"{self.path}: appeared while writing; pass force=True (--force) to overwrite"
                )
            os.chmod(self._tmp, 0o666 & ~umask())  # mkstemp made it private; give it a normal file's mode
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file; the target path is left untouched."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 — we are discarding the file anyway
                pass
            self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._closed = True

    # -- internals
    def _check_open(self) -> None:
        if self._closed:
            raise AvatarInputError(f"{self.path}: the writer is already closed")

    def _start(self, height: int, width: int) -> None:
        if height < 2 or width < 2:
            raise AvatarInputError(f"a video frame must be at least 2x2 pixels, got {width}x{height}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".partial" + self.path.suffix,
                                   dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._size = (height, width)
        try:
            self._container = av.open(str(self._tmp), mode="w", format=self._format,
                                      options={"movflags": "+faststart"})
            video = self._container.add_stream("libx264", rate=self.rate)
            video.width = width + width % 2
            video.height = height + height % 2
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = 1 / self.rate
            # swscale turns RGB into limited-range BT.601 YUV; say so, or players guess (BT.709 for HD).
            ctx = video.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 6  # SMPTE 170M (BT.601)
            ctx.color_range = 1  # limited ("tv")
            video.options = {"crf": str(self._crf), "preset": self._preset}
            self._video = video
            if self.with_audio:
                audio = self._container.add_stream("aac", rate=self.audio_sample_rate)
                audio.layout = "mono"
                audio.bit_rate = 64000 if self.audio_sample_rate <= 24000 else 128000
                self._audio = audio
        except av.error.FFmpegError as exc:
            self.abort()
            raise AvatarInputError(f"{self.path}: cannot start the encoder ({_short_reason(exc)})") from None

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _encode_audio(self, upto: int | None) -> None:
        """Encode pending audio in 1024-sample AAC frames up to sample ``upto`` (all if None)."""
        frame_size = 1024
        if not self._audio_pending_count:
            return
        joined = np.concatenate(self._audio_pending)
        available = joined.size
        limit = available if upto is None else min(available, max(0, upto - self._audio_written))
        whole = (limit // frame_size) * frame_size
        if upto is None:
            whole = available
        start = 0
        while start < whole:
            chunk = joined[start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.audio_sample_rate
            frame.pts = self._audio_written
            frame.time_base = Fraction(1, self.audio_sample_rate)
            self._mux(self._audio.encode(frame))
            self._audio_written += chunk.size
            start += chunk.size
        rest = joined[whole:]
        self._audio_pending = [rest] if rest.size else []
        self._audio_pending_count = rest.size


def write_video(
    path: str | os.PathLike,
    frames: Iterable,
    *,
    fps: float = MOTION_FPS,
    audio=None,
    audio_sample_rate: int = AUDIO_SAMPLE_RATE,
    force: bool = False,
    crf: int = 18,
) -> Path:
    """Write an mp4 from an iterable of ``(H, W, 3)`` frames and optional mono audio ``(N,)``.

    Frames are consumed one at a time (a generator keeps memory bounded). See :class:`VideoWriter`.

    Returns:
        the written path.
    """
    with VideoWriter(path, fps, with_audio=audio is not None, audio_sample_rate=audio_sample_rate,
                     force=force, crf=crf) as writer:
        if audio is not None:
            writer.write_audio(audio)
        for image in frames:
            writer.write_frame(image)
    return writer.path
