"""The public Python API: one surface over every stage, what ``import avatar`` gives and the CLI calls.

Example:
    >>> import avatar                                              # doctest: +SKIP
    >>> a = avatar.fit("photo.jpg")                                # doctest: +SKIP
    >>> frame = a.render(expression={"jawOpen": 0.4, "mouthSmileLeft": 0.6}, yaw=0.3, size=512)
    >>> a.save("photo.avatar")                                     # doctest: +SKIP
    >>> b = avatar.load("photo.avatar")                            # doctest: +SKIP
    >>> motion = avatar.track("clip.mp4").to_motion()              # doctest: +SKIP
    >>> avatar.listen("speaker.mp4", out="listener.mp4", avatar=b)  # doctest: +SKIP

The avatars these functions return are :class:`avatar.core.avatar.Avatar` objects (``avatar.Avatar``). The
functions check their arguments and call one stage each: fitting (:mod:`avatar.fitting`), the text generator
(:mod:`avatar.generator`), tracking (:mod:`drivers.tracking`) and the listener (:mod:`drivers.listener`). This
module imports no torch at load time: ``avatar listen`` starts its MediaPipe process before torch loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatar.core.errors import AvatarInputError

if TYPE_CHECKING:  # imported by the functions (see the module docstring)
    from avatar.core.avatar import Avatar

__all__ = ["default_avatar", "edit", "fit", "generate", "listen", "load", "perceive", "perceive_to_files", "style_caption",
           "track"]


def _as_avatar(source) -> Avatar:
    """An :class:`Avatar` from an Avatar, a bundle or a bundle folder."""
    from avatar.core.avatar import Avatar
    from avatar.core.bundle import AvatarBundle

    if isinstance(source, Avatar):
        return source
    if isinstance(source, AvatarBundle):
        return Avatar(source)
    return load(source)


def fit(source, quality: str = "default", face_index: int | None = None, device: str = "cpu", progress=None,
        prior: str = "gaussian") -> Avatar:
    """Fit an avatar to one photo.

    Args:
        source: a photo path (JPEG, PNG, WebP, TIFF), an image array :math:`(H, W[, C])` or a PIL image.
        quality: ``"fast"``, ``"default"`` or ``"high"``.
        face_index: which face when there are several (0 = largest; default the largest).
        device: ``"cpu"`` (or ``"auto"``, which is the CPU): the fit is written for the CPU.
        progress: ``callback(stage, fraction)``; stages ``load``, ``detect``, ``model``, ``landmarks``,
            ``photometric``, ``texture``, ``preview``.
        prior: identity-code prior: ``"gaussian"``, or ``"generator"`` (the text generator's density over
            identity codes, :mod:`avatar.generator.prior`).

    Returns:
        the :class:`Avatar` (with ``.report`` and ``.preview``).

    Raises:
        AvatarInputError: unreadable photo, no face, bad face index, face too small, bad options.
    """
    from dataclasses import replace

    from avatar.core.avatar import Avatar
    from avatar.fitting.optimize import config_for_quality
    from avatar.fitting.pipeline import fit_photo, to_bundle

    check_device(device)
    check_fit_options(quality, face_index, prior)  # before any work
    config = config_for_quality(quality)
    if prior == "generator":
        from avatar.generator.prior import load_prior

        config = replace(config, code_prior=load_prior())
    bundle = to_bundle(fit_photo(source, quality=quality, face_index=face_index, progress=progress, config=config))
    bundle.report["identity_prior"] = prior
    if isinstance(bundle.meta.get("fit", {}).get("config"), dict):  # the prior object itself is not JSON
        bundle.meta["fit"]["config"]["code_prior"] = None if prior == "gaussian" else "avatar.generator.prior"
    return Avatar(bundle)


def check_fit_options(quality: str, face_index: int | None, prior: str) -> None:
    """Refuse a bad fit option with a one-line error naming its flag (``avatar.fit`` and ``avatar batch fit``)."""
    from avatar.fitting.optimize import QUALITY_PRESETS

    if quality not in QUALITY_PRESETS:
        raise AvatarInputError(f"unknown quality (--quality) {quality!r}; choose one of {', '.join(QUALITY_PRESETS)}")
    if prior not in ("gaussian", "generator"):
        raise AvatarInputError(f"unknown identity prior (--prior) {prior!r}; use 'gaussian' or 'generator'")
    if face_index is not None and int(face_index) < 0:
        raise AvatarInputError(f"the face index (--face-index) must be 0 or more, got {face_index}")


def check_device(device: str) -> None:
    """Accept ``"cpu"`` and ``"auto"``; anything else is a user error with the reason."""
    if str(device) not in ("cpu", "auto"):
        raise AvatarInputError(
            f"device {device!r} is not supported for fitting: it runs on the CPU in seconds; use --device cpu"
        )


def load(directory: str | os.PathLike) -> Avatar:
    """Load an avatar bundle folder (``photo.avatar``) written by :meth:`Avatar.save` or the CLI."""
    from avatar.core.avatar import Avatar
    from avatar.core.bundle import read_bundle

    return Avatar(read_bundle(directory))


def default_avatar() -> Avatar:
    """The built-in avatar (``assets/listener/default_avatar.npz``): who listens when no avatar is given."""
    from avatar.core.avatar import Avatar
    from avatar.morphable.default_avatar import read_default_avatar

    return Avatar(read_default_avatar())


def generate(text: str = "", n: int | None = None, seed: int = 0, guidance: float | None = None,
             steps: int | None = None, progress=None, *, pipeline=None, head=None):
    """Generate avatars from text.

    Args:
        text: English description, e.g. "a woman with a round face, a small nose and a grey bun" ("" = random
            faces); hair words make the avatar's hair layer (:mod:`avatar.generator.hair`), the rest its face.
        n: ``None`` for one :class:`Avatar`; an int for a list of that many.
        seed: random seed (same text and seed → same avatars).
        guidance: classifier-free guidance scale (default 3; higher follows the text more, with less variety).
        steps: DDIM steps (default 25).
        progress: ``callback(stage, fraction)``; stages ``load``, ``sample``, ``build``.
        pipeline: the :class:`~avatar.generator.pipeline.GeneratorPipeline` (default: the shipped weights).
        head: the :class:`~avatar.morphable.head.HeadModel` (default ``load_head("auto")``).

    Returns:
        an :class:`Avatar` (``n=None``) or a list of them; each has ``.report`` with the measured attributes,
        whether each requested one was met (hair style and colour measured from the built layer), the hair
        (``report["hair"]``), and ``warnings``.

    Raises:
        AvatarInputError: bad prompt (too long, not English, contradictory) or options.

    Example:
        >>> import avatar                                                      # doctest: +SKIP
        >>> a = avatar.generate("a man with a long face and a wide nose", seed=1)
        >>> a.save("long-face.avatar")
    """
    from avatar.core.avatar import Avatar
    from avatar.generator.bundles import generate_bundles
    from avatar.generator.captions import check_prompt

    count = 1 if n is None else n
    if not isinstance(count, (int, np.integer)) or not 1 <= int(count) <= 1000:
        raise AvatarInputError(f"n must be between 1 and 1000, got {n}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AvatarInputError(f"seed must be a non-negative integer, got {seed}")
    if guidance is not None and not (isinstance(guidance, (int, float)) and 0.0 <= float(guidance) <= 20.0):
        raise AvatarInputError(f"guidance must be between 0 and 20, got {guidance}")
    parsed = check_prompt(text)
    made = generate_bundles(parsed.text, int(count), seed, guidance, steps, pipeline=pipeline, head=head,
                            progress=progress)
    avatars = [Avatar(b) for b in made.bundles]
    return avatars[0] if n is None else avatars


def edit(source, text: str, strength: float | None = None, seed: int = 0, *, pipeline=None, head=None) -> Avatar:
    """Edit an avatar with text; what the text does not mention is kept.

    Args:
        source: an :class:`Avatar`, its bundle, or a bundle folder.
        text: the edit, e.g. "a longer nose, fuller lips".
        strength: how far to re-generate, in (0, 1] (default the generator's, 0.6).
        seed: random seed.
        pipeline, head: as for :func:`generate`.

    Returns:
        the edited :class:`Avatar` (its ``.report`` says what changed and what was kept).

    Raises:
        AvatarInputError: unreadable bundle, empty or bad edit text, bad strength.
    """
    from avatar.core.avatar import Avatar
    from avatar.generator.bundles import edit_bundle
    from avatar.generator.captions import check_prompt

    parsed = check_prompt(text)
    if not parsed.text:
        raise AvatarInputError("the edit text is empty; say what to change, e.g. 'a longer nose, fuller lips'")
    if strength is not None and not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
        raise AvatarInputError(f"strength must be in (0, 1], got {strength}")
    bundle = _as_avatar(source).bundle
    return Avatar(edit_bundle(bundle, parsed.text, strength=strength, seed=seed, pipeline=pipeline, head=head))


def track(video: str | os.PathLike, progress=None, estimator: str = "ours"):
    """Track the main face of a video into 53 expression weights + head pose at 30 fps.

    Args:
        video: a video (mp4, mov, mkv, webm, avi) that shows a face.
        progress: ``callback(frames_done, frames_total)`` or ``None``.
        estimator: where the expression weights come from: ``"ours"`` (the landmark fit of
            :mod:`drivers.tracking`), ``"mediapipe"`` (Google's Face Landmarker blendshapes,
            :mod:`drivers.tracking.face_landmarker`) or ``"fused"`` (a per-shape blend of the two fitted on
            synthetic ground truth). The head pose is always ours.

    Returns:
        a :class:`drivers.tracking.TrackResult`: ``.to_motion()`` is the
        :class:`~avatar.core.motion.Motion`; ``.face_found`` says where the face was seen.

    Raises:
        AvatarInputError: missing or unreadable file, no video stream, no face in any frame, unknown estimator.
    """
    from dataclasses import replace

    from avatar.core.motion import MOTION_FPS
    from drivers.media import probe
    from drivers.tracking import iter_video_frames, track_frames
    from drivers.tracking.face_landmarker import ESTIMATORS, GoogleBlendshapes, blend_estimates

    if estimator not in ESTIMATORS:
        raise AvatarInputError(f"unknown estimator (--estimator) {estimator!r}; use {', '.join(ESTIMATORS)}")
    video = Path(video)
    info = probe(video, check_silence=False)
    if not info.has_video:
        raise AvatarInputError(f"{video} has no video stream (audio only); tracking needs a video that shows a face")
    total = info.num_motion_frames()
    google = GoogleBlendshapes(MOTION_FPS) if estimator != "ours" else None
    estimates: list = []

    def frames():
        for index, image in enumerate(iter_video_frames(video, MOTION_FPS)):
            if google is not None:
                estimates.append(google.push(image))
            if progress is not None:
                progress(index + 1, total)
            yield image

    try:
        result = track_frames(frames(), MOTION_FPS)
    except AvatarInputError as error:
        if str(error).startswith("no face found"):
            raise AvatarInputError(f"no face found in any frame of {video}; pass a clip that shows a face") from error
        raise
    finally:
        if google is not None:
            google.close()
    if google is None:
        return result
    import torch

    count = result.num_frames
    estimates = (estimates + [None] * count)[:count]
    found = np.array([e is not None for e in estimates])
    theirs = np.stack([e if e is not None else np.zeros(result.weights.shape[1], np.float32) for e in estimates])
    weights = blend_estimates(result.weights.numpy(), theirs, found, estimator)
    return replace(result, weights=torch.from_numpy(weights))


def perceive(source, progress=None, labels: str | list[str] | None = None, face: str | int = "all"):
    """Read the faces of a photo or a clip: action units, emotion (with the AUs behind it), compound, unknown,
    valence/arousal per face and frame, the main face and captions of facial change.

    Args:
        source: a photo path, an RGB uint8 image :math:`(H, W, 3)`, or a video ``avatar track`` reads.
        progress: ``callback(frames_done, frames_total)`` (clips) or ``None``.
        labels: free-text labels to score zero-shot (``"bored, amused"`` or a list), or ``None``.
        face: ``"all"`` (default), ``"main"`` or a face id.

    Returns:
        a :class:`drivers.perception.PerceptionResult` (``.to_json()`` is what ``avatar perceive`` writes).

    Raises:
        AvatarInputError: unreadable input, no face in a photo (or in any frame of a clip), a bad ``face``.
    """
    from drivers.perception import is_photo, perceive_image, perceive_video, read_photo

    check_perceive_options(face, labels)
    if isinstance(source, np.ndarray) or is_photo(source):
        image = source if isinstance(source, np.ndarray) else read_photo(source)
        name = "image" if isinstance(source, np.ndarray) else Path(source).name
        result = perceive_image(image, name, faces=_photo_faces(image))
    else:
        result = perceive_video(source, progress)
    result = result.select(face)
    if labels is not None:
        from avatar.generator.text import load_text_encoder
        from drivers.perception.labels import LabelScorer, parse_labels

        encoder = load_text_encoder()
        scorer = LabelScorer(parse_labels(labels), lambda texts: encoder.encode(texts).numpy())
        result.open_labels = {(fr.index, f.id): scorer.scores(f) for fr in result.frames for f in fr.faces}
    return result


def check_perceive_options(face: str | int, labels: str | list[str] | None) -> None:
    """Refuse a bad ``--face`` or ``--labels`` with a one-line error (``avatar perceive`` and its batch)."""
    if face not in ("all", "main"):
        try:
            int(face)
        except (TypeError, ValueError):
            raise AvatarInputError(f"--face must be main, all or a face id, got {face!r}") from None
    if labels is not None:
        from drivers.perception.labels import parse_labels

        parse_labels(labels)


def perceive_to_files(source, paths: dict, labels: str | list[str] | None = None, face: str | int = "all",
                      force: bool = False, progress=None, preview=None):
    """:func:`perceive` a photo or clip and write its files together (nothing is left half-written).

    Args:
        source: a photo or video path.
        paths: output paths by kind: ``json``, ``csv``, ``png`` and, for clips, ``vtt``.
        labels, face, progress: as for :func:`perceive`.
        force: replace existing outputs.
        preview: ``(path, write(result, tmp_path))`` for an extra output in the same transaction, or ``None``.

    Returns:
        the :class:`drivers.perception.PerceptionResult`.
    """
    from drivers.perception import is_photo, read_photo
    from drivers.perception.report import write_files

    photo = is_photo(source)
    image = read_photo(source) if photo else None
    result = perceive(image if photo else source, progress, labels=labels, face=face)
    result.input = Path(source).name
    extra = None if preview is None else (preview[0], lambda tmp: preview[1](result, tmp))
    write_files(result, paths, image=image, force=force, preview=extra)
    return result


def _photo_faces(image: np.ndarray) -> list[np.ndarray] | None:
    """Every face of a photo with its 478 landmarks (normalised as MediaPipe's), found by the photo fit's
    detector (full- and short-range BlazeFace, a landmark crop per face): group photos included."""
    from avatar.fitting.detect import detect_faces, face_landmarks

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return None  # perceive_image says what is wrong
    height, width = image.shape[:2]
    faces = []
    for box in detect_faces(image):
        points = face_landmarks(image, box)
        if points is not None:
            faces.append(points / np.array([width, height, width], np.float32))
    return faces


def style_caption(style) -> str | None:
    """What a listener style says to the listener: presets and ``name=value`` pairs become a sentence, free text
    is taken as it is, ``None`` is no style.

    Raises:
        AvatarInputError: an unknown preset or parameter, or a value out of range.
    """
    from drivers.listener.style import caption_for_style

    return caption_for_style(style)


def listen(speaker: str | os.PathLike, out: str | os.PathLike | None = None, avatar=None,
           photo: str | os.PathLike | None = None, style: str | None = None, seed: int = 0, size: int = 256,
           side_by_side: bool = False, force: bool = False, progress=None):
    """The avatar listens to a recorded speaker clip: writes ``OUT.mp4`` (with the speaker's audio),
    ``OUT.motion.npz``, ``OUT.csv`` and ``OUT.json`` (:mod:`drivers.listener.clip_listener`).

    For live input use :class:`~drivers.listener.stream.ListenerStream` (``avatar.ListenerStream``).

    Args:
        speaker: the speaker's video (mp4, mov, mkv, webm, avi) or audio (wav, mp3, ...).
        out: the output video (default ``<speaker stem>.listener.mp4`` in the current folder).
        avatar: an :class:`Avatar`, a bundle or a bundle folder; ``None`` for the built-in avatar.
        photo: fit the listener to this photo first (instead of ``avatar``).
        style: listener style: a preset (``calm``, ``lively``, ``warm``, ...), ``name=value`` pairs, or a
            free description; ``None`` for the unconditional listener.
        seed: random seed (the same seed reproduces the output exactly).
        size: side of the rendered avatar in pixels (32–2048).
        side_by_side: put the speaker's video on the left.
        force: overwrite existing outputs.
        progress: ``callback(stage, fraction)``; stages ``load``, ``listen``, ``write``.

    Returns:
        a :class:`drivers.listener.clip_listener.ListenResult` (paths, frames, the report; the report's
        ``speaker_perception`` says what the speaker's face showed: :func:`drivers.perception.pipeline.read_tracked_face`).

    Raises:
        AvatarInputError: missing or unreadable speaker, both ``avatar`` and ``photo``, bad options, or
            outputs that exist without ``force``.
    """
    from drivers.listener.clip_listener import listen_to_clip

    if avatar is not None and photo is not None:
        raise AvatarInputError("pass either --avatar or --photo, not both")
    label = None
    if photo is not None:
        photo_path = Path(photo)
        if not photo_path.exists():
            raise AvatarInputError(f"{photo_path} not found; give a JPEG, PNG, WebP or TIFF photo")
        avatar, label = (lambda: fit(photo_path).bundle), f"fitted to {photo}"
    elif hasattr(avatar, "bundle"):  # an Avatar
        avatar = avatar.bundle
    return listen_to_clip(speaker, out, avatar=avatar, avatar_label=label, style=style, seed=seed, size=size,
                          side_by_side=side_by_side, force=force, progress=progress, speaker_report=_speaker_perception)


def _speaker_perception(weights: np.ndarray, rotation: np.ndarray, visible: np.ndarray) -> dict:
    """What the speaker's face showed (perception stage), imported only when the report is written: ``avatar
    listen`` starts MediaPipe before torch loads."""
    from drivers.perception.pipeline import read_tracked_face

    return read_tracked_face(weights, rotation, visible)
