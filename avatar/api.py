"""The public Python API: one surface over every stage, what ``import avatar`` gives and the CLI calls.

Example:
    >>> import avatar                                              # doctest: +SKIP
    >>> a = avatar.fit("photo.jpg")                                # doctest: +SKIP
    >>> frame = a.render(expression={"jawOpen": 0.4, "mouthSmileLeft": 0.6}, yaw=0.3, size=512)
    >>> a.save("photo.avatar")                                     # doctest: +SKIP
    >>> b = avatar.load("photo.avatar")                            # doctest: +SKIP
    >>> motion = avatar.track("clip.mp4").to_motion()              # doctest: +SKIP
    >>> avatar.listen("speaker.mp4", out="listener.mp4", avatar=b)  # doctest: +SKIP

An :class:`Avatar` is the baked head of one identity — its neutral mesh and one morph target per
expression (the 53 of :mod:`avatar.core.expressions`; ARKit's and ICT's names both work) — with its
texture, so rendering any expression is a linear blend plus one rasterization; no model is needed after
fitting. The functions here check their arguments and call one stage each: fitting
(:mod:`avatar.fitting`), the text generator (:mod:`avatar.generator`), tracking (:mod:`drivers.tracking`)
and the listener (:mod:`drivers.listener`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import renderers as dr
from avatar.core.bundle import AvatarBundle, read_bundle, write_bundle
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, weights_from_mapping
from avatar.core.geometry import axis_angle_to_matrix, euler_to_matrix

__all__ = ["Avatar", "default_avatar", "edit", "fit", "generate", "listen", "load", "track"]


class Avatar:
    """One animatable, textured head (see the module docstring).

    Attributes:
        bundle: the data (:class:`avatar.core.bundle.AvatarBundle`).
        report: the fit report (``None`` for avatars not made by fitting).
        preview: the fit's preview image, shape :math:`(H, W, 3)` uint8, or ``None``.
    """

    def __init__(self, bundle: AvatarBundle):
        self.bundle = bundle
        self._cameras: dict = {}

    # ---------------------------------------------------------------- properties
    @property
    def expression_names(self) -> tuple[str, ...]:
        """The 53 expression names (ICT order and spelling; ARKit's names are accepted everywhere too)."""
        return self.bundle.expression_names

    @property
    def z_geo(self) -> torch.Tensor:
        """Identity geometry code, shape :math:`(K,)`."""
        return self.bundle.z_geo

    @property
    def z_tex(self) -> torch.Tensor:
        """Texture code, shape :math:`(T,)`."""
        return self.bundle.z_tex

    @property
    def texture(self) -> np.ndarray:
        """The albedo texture, shape :math:`(S, S, 3)` uint8 (row 0 at the top)."""
        return (self.bundle.texture.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

    @property
    def report(self) -> dict | None:
        return self.bundle.report

    @property
    def preview(self) -> np.ndarray | None:
        return self.bundle.preview

    def __repr__(self) -> str:
        made = self.bundle.meta.get("created_by", "?")
        return f"Avatar({made}, z_geo={self.z_geo.numel()}, vertices={self.bundle.vertices.shape[0]})"

    # ---------------------------------------------------------------- geometry
    def expression_weights(self, expression) -> torch.Tensor:
        """An expression as 53 weights in [0, 1].

        Args:
            expression: ``None`` (neutral), ``"fitted"`` (the photo's), a mapping with ARKit's or ICT's names
                (``{"jawOpen": 0.4, "mouthSmileLeft": 0.6}``; ARKit's ``browInnerUp`` and ``cheekPuff`` set
                both of ICT's sides, ``tongueOut`` has no shape), or 53 numbers in
                :data:`~avatar.core.expressions.EXPRESSION_NAMES` order (array or tensor).

        Returns:
            weights, shape :math:`(53,)`.
        """
        names = self.expression_names
        if expression is None:
            return torch.zeros(len(names))
        if isinstance(expression, str):
            if expression != "fitted":
                raise AvatarInputError(f"expression {expression!r}: pass a dict of ARKit names, 53 weights, or 'fitted'")
            return self.bundle.expression.clone()
        if isinstance(expression, Mapping):
            weights = torch.from_numpy(weights_from_mapping(expression))
            if tuple(names) != EXPRESSION_NAMES:  # a bundle that lists the same 53 in another order
                weights = weights[[EXPRESSION_NAMES.index(n) for n in names]]
        else:
            weights = torch.as_tensor(np.asarray(expression, dtype=np.float32)).reshape(-1)
            if weights.numel() != len(names):
                raise AvatarInputError(f"expression must have {len(names)} weights, got {weights.numel()}")
        if not bool(torch.isfinite(weights).all()):
            raise AvatarInputError("expression weights must be finite numbers")
        return weights.clamp(0.0, 1.0)

    def vertices(self, expression=None, pose=None) -> torch.Tensor:
        """Mesh vertices for an expression and head pose.

        Args:
            expression: see :meth:`expression_weights`.
            pose: head rotation (axis-angle, rad) shape :math:`(3,)`, or rotation + translation (cm)
                shape :math:`(6,)`; ``None`` for the rest pose.

        Returns:
            vertices in centimetres (head frame), shape :math:`(V, 3)`.
        """
        weights = self.expression_weights(expression)
        deltas = self.bundle.expression_deltas
        verts = self.bundle.vertices + (weights @ deltas.reshape(len(weights), -1)).reshape(-1, 3)
        return verts if pose is None else self._posed(verts, pose)

    # ---------------------------------------------------------------- rendering
    def _default_camera(self, size: tuple[int, int]) -> dr.Camera:
        if size not in self._cameras:
            keep = self.bundle.export_face_mask()
            used = torch.unique(self.bundle.faces[keep].long())
            self._cameras[size] = dr.frame_points(self.bundle.vertices[used], size, fill=0.8)
        return self._cameras[size]

    def render(self, expression=None, pose=None, camera: dr.Camera | None = None, size: int | tuple[int, int] = 512,
               yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, light: torch.Tensor | str | None = None,
               background: tuple[float, float, float] | None = (1.0, 1.0, 1.0)) -> np.ndarray:
        """Render the avatar.

        Args:
            expression: see :meth:`expression_weights` (e.g. ``{"jawOpen": 0.4}``).
            pose: head pose, see :meth:`vertices`; composed after ``yaw``/``pitch``/``roll``.
            camera: a :class:`renderers.Camera`; default a fixed frontal portrait framing of the head.
            size: image size, ``int`` or ``(H, W)`` (ignored with ``camera``).
            yaw, pitch, roll: head rotation in radians (yaw turns the face to its left, pitch raises the
                chin, roll tilts it), about the neck pivot.
            light: SH coefficients :math:`(1, 9, C)`, ``"photo"`` (the fitted lighting, when present) or
                ``None`` (the default studio light).
            background: RGB in [0, 1] to composite over, or ``None`` for RGBA with transparency.

        Returns:
            the image, shape :math:`(H, W, 3)` uint8 (``(H, W, 4)`` with ``background=None``), row 0 at the top.
        """
        if isinstance(size, int):
            size = (size, size)
        size = (int(size[0]), int(size[1]))
        if min(size) < 1 or max(size) > 8192:
            raise AvatarInputError(f"size must be between 1 and 8192 pixels, got {size}")
        for name, value in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
            if not math.isfinite(float(value)):
                raise AvatarInputError(f"{name} must be a finite number of radians")
        verts = self.vertices(expression)
        # yaw turns the face to its left, pitch raises the chin (hence -pitch about x), roll tilts it
        rotation = euler_to_matrix(*(torch.tensor(float(a)) for a in (yaw, -pitch, roll)))
        pivot = self.bundle.neck_pivot
        verts = (verts - pivot) @ rotation.T + pivot
        if pose is not None:
            verts = self._posed(verts, pose)
        if light is None:
            sh = dr.default_sh()
        elif isinstance(light, str):
            if light != "photo" or self.bundle.sh_light is None:
                raise AvatarInputError("light='photo' needs a fitted avatar; pass SH coefficients or None")
            sh = self.bundle.sh_light.reshape(1, 9, -1)
        else:
            sh = torch.as_tensor(light, dtype=torch.float32)
        camera = camera if camera is not None else self._default_camera(size)
        keep = self.bundle.export_face_mask()
        with torch.no_grad():
            out = dr.render_mesh(verts, self.bundle.faces[keep], self.bundle.uv, self.bundle.uv_faces[keep],
                                 self.bundle.texture, camera, sh)
        return dr.to_uint8_image(out.rgba[0], background)

    def _posed(self, verts: torch.Tensor, pose) -> torch.Tensor:
        pose = torch.as_tensor(np.asarray(pose, dtype=np.float32)).reshape(-1)
        if pose.numel() not in (3, 6) or not bool(torch.isfinite(pose).all()):
            raise AvatarInputError("pose must be 3 (axis-angle, rad) or 6 (plus translation, cm) finite numbers")
        matrix = axis_angle_to_matrix(pose[:3])
        pivot = self.bundle.neck_pivot
        verts = (verts - pivot) @ matrix.T + pivot
        return verts + pose[3:] if pose.numel() == 6 else verts

    # ---------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike, force: bool = False):
        """Write the bundle folder (see :mod:`avatar.core.bundle`); returns its path.

        Raises:
            AvatarInputError: the folder exists and ``force`` is false.
        """
        return write_bundle(directory, self.bundle, force=force)


def _as_avatar(source) -> Avatar:
    """An :class:`Avatar` from an Avatar, a bundle or a bundle folder."""
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

    from avatar.fitting.optimize import config_for_quality
    from avatar.fitting.pipeline import fit_photo, to_bundle

    check_device(device)
    config = config_for_quality(quality)  # reject an unknown preset before any work
    if prior not in ("gaussian", "generator"):
        raise AvatarInputError(f"unknown identity prior (--prior) {prior!r}; use 'gaussian' or 'generator'")
    if face_index is not None and int(face_index) < 0:
        raise AvatarInputError(f"the face index (--face-index) must be 0 or more, got {face_index}")
    if prior == "generator":
        from avatar.generator.prior import load_prior

        config = replace(config, code_prior=load_prior())
    bundle = to_bundle(fit_photo(source, quality=quality, face_index=face_index, progress=progress, config=config))
    bundle.report["identity_prior"] = prior
    if isinstance(bundle.meta.get("fit", {}).get("config"), dict):  # the prior object itself is not JSON
        bundle.meta["fit"]["config"]["code_prior"] = None if prior == "gaussian" else "avatar.generator.prior"
    return Avatar(bundle)


def check_device(device: str) -> None:
    """Accept ``"cpu"`` and ``"auto"``; anything else is a user error with the reason."""
    if str(device) not in ("cpu", "auto"):
        raise AvatarInputError(
            f"device {device!r} is not supported for fitting: it runs on the CPU in seconds; use --device cpu"
        )


def load(directory: str | os.PathLike) -> Avatar:
    """Load an avatar bundle folder (``photo.avatar``) written by :meth:`Avatar.save` or the CLI."""
    return Avatar(read_bundle(directory))


def default_avatar() -> Avatar:
    """The built-in avatar (``assets/listener/default_avatar.npz``): who listens when no avatar is given."""
    from avatar.morphable.default_avatar import read_default_avatar

    return Avatar(read_default_avatar())


def generate(text: str = "", n: int | None = None, seed: int = 0, guidance: float | None = None,
             steps: int | None = None, progress=None, *, pipeline=None, head=None):
    """Generate avatars from text.

    Args:
        text: English description, e.g. "a woman with a round face and a small nose" ("" = random faces).
        n: ``None`` for one :class:`Avatar`; an int for a list of that many.
        seed: random seed (same text and seed → same avatars).
        guidance: classifier-free guidance scale (default 3; higher follows the text more, with less variety).
        steps: DDIM steps (default 25).
        progress: ``callback(stage, fraction)``; stages ``load``, ``sample``, ``build``.
        pipeline: the :class:`~avatar.generator.pipeline.GeneratorPipeline` (default: the shipped weights).
        head: the :class:`~avatar.morphable.head.HeadModel` (default ``load_head("auto")``).

    Returns:
        an :class:`Avatar` (``n=None``) or a list of them; each has ``.report`` with the measured attributes,
        whether each requested one was met, and ``warnings``.

    Raises:
        AvatarInputError: bad prompt (too long, not English, contradictory) or options.

    Example:
        >>> import avatar                                                      # doctest: +SKIP
        >>> a = avatar.generate("a man with a long face and a wide nose", seed=1)
        >>> a.save("long-face.avatar")
    """
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
    from avatar.generator.bundles import edit_bundle
    from avatar.generator.captions import check_prompt

    parsed = check_prompt(text)
    if not parsed.text:
        raise AvatarInputError("the edit text is empty; say what to change, e.g. 'a longer nose, fuller lips'")
    if strength is not None and not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
        raise AvatarInputError(f"strength must be in (0, 1], got {strength}")
    bundle = _as_avatar(source).bundle
    return Avatar(edit_bundle(bundle, parsed.text, strength=strength, seed=seed, pipeline=pipeline, head=head))


def track(video: str | os.PathLike, progress=None):
    """Track the main face of a video into 53 expression weights + head pose at 30 fps.

    Args:
        video: a video (mp4, mov, mkv, webm, avi) that shows a face.
        progress: ``callback(frames_done, frames_total)`` or ``None``.

    Returns:
        a :class:`drivers.tracking.TrackResult`: ``.to_motion()`` is the
        :class:`~avatar.core.motion.Motion`; ``.face_found`` says where the face was seen.

    Raises:
        AvatarInputError: missing or unreadable file, no video stream, no face in any frame.
    """
    from avatar.core.motion import MOTION_FPS
    from drivers.media import probe
    from drivers.tracking import iter_video_frames, track_frames

    video = Path(video)
    info = probe(video, check_silence=False)
    if not info.has_video:
        raise AvatarInputError(f"{video} has no video stream (audio only); tracking needs a video that shows a face")
    total = info.num_motion_frames()

    def frames():
        for index, image in enumerate(iter_video_frames(video, MOTION_FPS)):
            if progress is not None:
                progress(index + 1, total)
            yield image

    try:
        return track_frames(frames(), MOTION_FPS)
    except AvatarInputError as error:
        if str(error).startswith("no face found"):
            raise AvatarInputError(f"no face found in any frame of {video}; pass a clip that shows a face") from error
        raise


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
        a :class:`drivers.listener.clip_listener.ListenResult` (paths, frames, the report).

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
    elif isinstance(avatar, Avatar):
        avatar = avatar.bundle
    return listen_to_clip(speaker, out, avatar=avatar, avatar_label=label, style=style, seed=seed, size=size,
                          side_by_side=side_by_side, force=force, progress=progress)
