"""One photo → a fitted avatar: load, detect, fit, texture, preview and report, timed stage by stage.

:func:`fit_photo` runs the stages; :func:`to_bundle` turns the result into an
:class:`~avatar.core.bundle.AvatarBundle` (codes, baked morph targets, texture, preview, report).
All coordinates in the report are pixels of the original (upright) photo, x right, y down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avatar import __version__
from avatar.core.bundle import AvatarBundle, HairLayer
from avatar.core.errors import AvatarInputError
from avatar.fitting.detect import FaceObservation, observe_face, person_mask
from avatar.fitting.hair import fit_hair
from avatar.fitting.image_io import Photo, load_photo
from avatar.fitting.optimize import FitConfig, FitResult, config_for_quality, fit_observation
from avatar.fitting.preview import (
    fitted_landmarks_68,
    head_silhouette_iou,
    overlay_image,
    photometric_psnr,
    preview_image,
    skin_colour_difference,
)
from avatar.fitting.texture import UnwrapOutput, unwrap_texture
from avatar.morphable.head import HeadModel, load_head, with_skin_model_albedo
from avatar.morphable.landmarks import IRIS_LEFT, IRIS_RIGHT

Progress = Callable[[str, float], None]
#: MediaPipe's chin landmark (the bottom of the face oval).
CHIN = 152
#: Stages reported to the progress callback, in order.
STAGES = ("load", "detect", "model", "landmarks", "photometric", "texture", "hair", "preview")


@dataclass
class FitOutput:
    """Everything one fit produced.

    Attributes:
        photo: the loaded photo.
        observation: the chosen face and its landmarks.
        head: the head model that was fitted.
        fit: codes, pose, camera, lighting.
        unwrap: the texture.
        quality: the preset name.
        config: the settings used.
        report: the ``report.json`` document.
        preview: the preview image, shape :math:`(H, W, 3)` uint8, or ``None``.
        timings: seconds per stage.
        overlay: the fitted head in the photo's camera, RGBA at the photo's size (``overlay.png``), or ``None``.
        hair: the hair layer (:mod:`avatar.fitting.hair`), or ``None`` for a bald person.
    """

    photo: Photo
    observation: FaceObservation
    head: HeadModel
    fit: FitResult
    unwrap: UnwrapOutput
    quality: str
    config: FitConfig
    report: dict = field(default_factory=dict)
    preview: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    overlay: np.ndarray | None = None
    hair: HairLayer | None = None


def _report_points(points: np.ndarray, photo: Photo) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in photo.to_original(points)]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def silhouette_iou(overlay: np.ndarray, photo: Photo, observation: FaceObservation, person: np.ndarray) -> float:
    """:func:`~avatar.fitting.preview.head_silhouette_iou` of a fit's overlay, in the working image."""
    from PIL import Image

    height, width = photo.image.shape[:2]
    alpha = overlay[..., 3]
    if alpha.shape != (height, width):
        alpha = np.asarray(Image.fromarray(alpha).resize((width, height), Image.BILINEAR))
    chin = float(observation.landmarks[CHIN, 1])
    return head_silhouette_iou(alpha, person, tuple(observation.face.box), chin)


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between MediaPipe's two iris centres (pixels)."""
    return float(np.linalg.norm(landmarks[IRIS_LEFT[0], :2] - landmarks[IRIS_RIGHT[0], :2]))


def make_report(output: FitOutput, seconds_total: float) -> dict:
    """The ``report.json`` document (see the module docstring for coordinates)."""
    photo, obs, fit, head = output.photo, output.observation, output.fit, output.head
    height, width = photo.original_size
    box = np.array(obs.face.box).reshape(2, 2)
    error = float(fit.losses.get("landmark_error_px", float("nan")))
    iod = inter_ocular(obs.landmarks)
    losses = {k: (round(v, 8) if isinstance(v, float) else v) for k, v in fit.losses.items()}
    return {
        "photo": photo.name,
        "image_size": {"width": width, "height": height},
        "working_scale": round(photo.scale, 6),
        "num_faces_detected": obs.num_faces,
        "face_index": obs.face_index,
        "face_box": [round(float(v), 2) for v in photo.to_original(box).reshape(-1)],
        "face_score": round(obs.face.score, 4),
        "landmarks_68": _report_points(fitted_landmarks_68(head, fit), photo),
        "landmark_error_px": round(error * photo.scale, 3),
        "landmark_error_iod": round(error / iod, 5) if iod > 0 else None,
        "fit_losses": losses,
        "photometric_psnr_face": round(output.report.get("photometric_psnr_face", float("nan")), 3),
        # CIEDE2000 between the photo's mean face skin and the avatar's under a neutral light (sRGB): < 2.3 unnoticeable
        "skin_delta_e2000": round(output.report.get("skin_delta_e2000", float("nan")), 2),
        # the head's silhouette (hair included) vs the person mask above the chin
        "head_silhouette_iou": _rounded(output.report.get("head_silhouette_iou"), 4),
        "hair": None if output.hair is None else {"vertices": int(output.hair.vertices.shape[0]),
                                                  "triangles": int(output.hair.faces.shape[0])},
        "texture_coverage": round(output.unwrap.coverage, 4),
        "camera": {
            "focal_px": round(float(fit.focal[0]) * photo.scale, 3),
            "principal_px": [round(c * photo.scale, 3) for c in fit.principal],
            "translation_cm": [round(float(v), 4) for v in fit.state.translation[0]],
            "axes": "OpenCV: x right, y down, z forward; world = the posed head frame seen through R = diag(1, -1, -1)",
        },
        "head_model": {"source": head.source, **head.info},
        "quality": output.quality,
        "timings": {k: round(v, 3) for k, v in output.timings.items()},
        "seconds_total": round(seconds_total, 3),
        "avatar_engine_version": __version__,
    }


def fit_photo(source, quality: str = "default", face_index: int | None = None, progress: Progress | None = None,
              head: HeadModel | None = None, config: FitConfig | None = None, with_preview: bool = True) -> FitOutput:
    """Fit one photo.

    Args:
        source: a photo path, an image array :math:`(H, W[, C])` or a PIL image.
        quality: ``"fast"``, ``"default"`` or ``"high"`` (see :data:`avatar.fitting.optimize.QUALITY_PRESETS`).
        face_index: which face (0 = largest; default the largest).
        progress: ``callback(stage, fraction)`` with the stages of :data:`STAGES`.
        head: the head model (default :func:`avatar.morphable.head.load_head`).
        config: settings overriding the quality preset.
        with_preview: render ``preview.png`` (costs ~1 s).

    Returns:
        the :class:`FitOutput` (its ``report`` is complete).

    Raises:
        AvatarInputError: unreadable photo, no face, bad face index, face too small, unknown quality or albedo prior.
    """
    start = time.perf_counter()
    config = config or config_for_quality(quality)
    if config.albedo_prior not in ("skin_model", "head"):
        raise AvatarInputError(f"unknown albedo_prior {config.albedo_prior!r}; use 'skin_model' or 'head'")
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}

    tic = time.perf_counter()
    report("load", 0.0)
    photo = load_photo(source)
    timings["load_photo"] = time.perf_counter() - tic
    report("load", 1.0)

    tic = time.perf_counter()
    report("detect", 0.0)
    observation = observe_face(photo.image, photo.name, face_index, photo.scale)
    timings["detect"] = time.perf_counter() - tic
    report("detect", 1.0)

    tic = time.perf_counter()
    report("model", 0.0)
    head = head or load_head()  # after the input checks: bad photos fail before the model loads
    if config.albedo_prior == "skin_model":
        head = with_skin_model_albedo(head)
    timings["load_model"] = time.perf_counter() - tic
    report("model", 1.0)

    def stage_progress(stage: str, fraction: float) -> None:
        report(stage, fraction)

    fit = fit_observation(head, photo.image, observation, config, stage_progress)
    timings.update(fit.timings)
    report("photometric", 1.0)

    tic = time.perf_counter()
    report("texture", 0.0)
    unwrap = unwrap_texture(head, fit, photo.image, observation, config.texture_size)
    fit.state.sh = fit.state.sh / unwrap.light_scale  # the light that goes with the texture's brightness
    psnr = photometric_psnr(head, fit, unwrap.texture, photo.image, observation)
    delta_e = skin_colour_difference(head, fit, unwrap.texture, photo.image, observation)
    timings["texture"] = time.perf_counter() - tic
    report("texture", 1.0)

    tic = time.perf_counter()
    report("hair", 0.0)
    person = person_mask(photo.image)
    hair = fit_hair(head, fit, photo.image, observation, person)
    timings["hair"] = time.perf_counter() - tic
    report("hair", 1.0)

    output = FitOutput(photo, observation, head, fit, unwrap, quality, config,
                       {"photometric_psnr_face": psnr, "skin_delta_e2000": delta_e}, None, timings, hair=hair)
    if with_preview:
        tic = time.perf_counter()
        report("preview", 0.0)
        output.preview = preview_image(head, fit, unwrap.texture, photo.image, observation, hair=hair)
        output.overlay = overlay_image(head, fit, unwrap.texture, photo.image.shape[:2], photo.original_size, hair)
        output.report["head_silhouette_iou"] = silhouette_iou(output.overlay, photo, observation, person)
        timings["preview"] = time.perf_counter() - tic
        report("preview", 1.0)
    output.report = make_report(output, time.perf_counter() - start)
    return output


def to_bundle(output: FitOutput) -> AvatarBundle:
    """The :class:`AvatarBundle` of a fit (baked morph targets of the fitted identity)."""
    state = output.fit.state
    meta = {
        "created_by": "avatar fit",
        "fit": {"photo": output.photo.name, "quality": output.quality,
                "config": {k: v for k, v in vars(output.config).items()}},
        "camera": output.report.get("camera"),
    }
    return output.head.bundle(state.z_geo[0], state.z_tex[0], output.unwrap.texture, meta,
                              expression=state.expression[0], head_rotation=state.rotation[0], sh_light=state.sh[0],
                              preview=output.preview, overlay=output.overlay, report=output.report,
                              hair=output.hair)
