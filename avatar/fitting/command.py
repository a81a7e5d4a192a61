"""Bodies of ``avatar fit`` and the first half of ``avatar demo``, for the typer app in :mod:`avatar.cli`.

Both take a progress sink: a ``rich.progress.Progress`` (one bar, described by the current stage), a
``callback(stage, fraction)``, or ``None``. Bad input raises :class:`~avatar.errors.AvatarInputError`
(the CLI prints it as one line and exits with code 2); the output folder is checked before any work
and written atomically, so nothing is half-written on failure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from avatar.errors import AvatarInputError

#: Share of the progress bar per stage (roughly their share of the time).
STAGE_WEIGHTS = {"load": 0.02, "detect": 0.08, "model": 0.1, "landmarks": 0.1, "photometric": 0.45, "texture": 0.1,
                 "preview": 0.08, "write": 0.07}
STAGE_TEXT = {
    "load": "reading the photo",
    "model": "loading the head model",
    "detect": "finding the face and its landmarks",
    "landmarks": "fitting shape, expression and pose to the landmarks",
    "photometric": "refining with the photo's shading",
    "texture": "unwrapping the texture",
    "preview": "rendering the preview",
    "write": "writing the bundle",
}
DEMO_DIR = "avatar-demo"
DEMO_BUNDLE = "astronaut.avatar"


@dataclass(frozen=True)
class FitCommandResult:
    """What ``avatar fit`` made.

    Attributes:
        out_dir: the bundle folder written.
        report: its ``report.json`` document.
        seconds: wall time of the whole command.
    """

    out_dir: Path
    report: dict
    seconds: float

    def summary(self) -> str:
        """A few lines for the terminal."""
        r = self.report
        faces = r["num_faces_detected"]
        lines = [
            f"wrote {self.out_dir}/  (avatar.json, avatar.safetensors, texture.png, mesh.glb, mesh.obj, preview.png, report.json)",
            f"faces found: {faces}" + (f" (fitted #{r['face_index']}, the largest is #0)" if faces > 1 else ""),
            f"landmark error: {r['landmark_error_px']:.2f} px ({100 * (r['landmark_error_iod'] or 0):.2f} % of the "
            f"inter-ocular distance); photometric PSNR in the face: {r['photometric_psnr_face']:.1f} dB",
            f"head model: {r['head_model']['source']}; quality: {r['quality']}; {self.seconds:.1f} s",
        ]
        return "\n".join(lines)


def _progress_callback(progress):
    """A ``callback(stage, fraction)`` from a rich Progress, a callable, or None."""
    if progress is None:
        return lambda stage, fraction: None
    if hasattr(progress, "add_task") and hasattr(progress, "update"):
        task = progress.add_task(STAGE_TEXT["load"], total=1.0)
        order = list(STAGE_WEIGHTS)

        def update(stage: str, fraction: float) -> None:
            done = sum(STAGE_WEIGHTS[s] for s in order[: order.index(stage)]) if stage in order else 0.0
            progress.update(task, completed=min(done + STAGE_WEIGHTS.get(stage, 0.0) * fraction, 1.0),
                            description=STAGE_TEXT.get(stage, stage))

        return update
    if callable(progress):
        return progress
    raise AvatarInputError("progress must be a rich Progress, a callable(stage, fraction) or None")


def default_out_dir(photo) -> Path:
    """``<photo stem>.avatar`` in the current folder."""
    return Path(f"{Path(photo).stem}.avatar")


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if (out_dir.exists() or out_dir.is_symlink()) and not force:
        raise AvatarInputError(f"{out_dir} exists; pass --force to overwrite")
    if out_dir.exists() and not out_dir.is_dir():
        raise AvatarInputError(f"{out_dir} is a file; give a folder name for the bundle (-o NAME.avatar)")


def fit_to_bundle(source, out_dir: Path, quality: str, face_index: int | None, force: bool, device: str,
                  progress, prior: str = "gaussian") -> FitCommandResult:
    """Fit ``source`` (path or image array) and write the bundle to ``out_dir`` (``prior``: ``"gaussian"`` or
    ``"generator"``, the text generator's density over identity codes, :mod:`avatar.generator.prior`)."""
    from avatar.api import check_device
    from avatar.bundle import write_bundle
    from avatar.fitting.optimize import config_for_quality
    from avatar.fitting.pipeline import fit_photo, to_bundle

    start = time.perf_counter()
    out_dir = Path(out_dir)
    check_device(device)
    config = config_for_quality(quality)  # reject an unknown preset before any work
    if prior not in ("gaussian", "generator"):
        raise AvatarInputError(f"unknown --prior {prior!r}; use 'gaussian' or 'generator'")
    if face_index is not None and int(face_index) < 0:
        raise AvatarInputError(f"--face-index must be 0 or more, got {face_index}")
    _check_out_dir(out_dir, force)
    callback = _progress_callback(progress)
    if prior == "generator":
        from dataclasses import replace

        from avatar.generator.prior import load_prior

        config = replace(config, code_prior=load_prior())
    output = fit_photo(source, quality=quality, face_index=face_index, progress=callback, config=config)
    callback("write", 0.0)
    bundle = to_bundle(output)
    bundle.report["identity_prior"] = prior
    if isinstance(bundle.meta.get("fit", {}).get("config"), dict):  # the prior object itself is not JSON
        bundle.meta["fit"]["config"]["code_prior"] = None if prior == "gaussian" else "avatar.generator.prior"
    bundle.report["seconds_total"] = round(time.perf_counter() - start, 3)  # write_bundle adds its own time
    write_bundle(out_dir, bundle, force=force)
    callback("write", 1.0)
    return FitCommandResult(out_dir, bundle.report, time.perf_counter() - start)


def run_fit_command(photo: str | os.PathLike, out_dir: str | os.PathLike | None = None, quality: str = "default",
                    face_index: int | None = None, force: bool = False, device: str = "cpu",
                    progress=None, prior: str = "gaussian") -> FitCommandResult:
    """``avatar fit PHOTO [-o DIR] [--quality fast|default|high] [--face-index N] [--force] [--device D] [--prior P]``.

    Args:
        photo: the photo (JPEG, PNG, WebP, TIFF).
        out_dir: the bundle folder (default ``<photo stem>.avatar`` in the current folder).
        quality: ``fast``, ``default`` or ``high``.
        face_index: which face (0 = largest; default the largest).
        force: replace an existing bundle folder.
        device: ``cpu`` (or ``auto``).
        progress: a rich ``Progress``, a ``callback(stage, fraction)`` or ``None``.
        prior: identity-code prior: ``"gaussian"`` or ``"generator"`` (the text generator's density).

    Returns:
        the :class:`FitCommandResult` (print ``.summary()``).

    Raises:
        AvatarInputError: bad photo, no face, bad options, existing output without ``force``.
    """
    photo = Path(photo)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(photo)
    if not photo.exists():
        raise AvatarInputError(f"{photo} not found; give a JPEG, PNG, WebP or TIFF photo")
    return fit_to_bundle(photo, out_dir, quality, face_index, force, device, progress, prior)


def run_demo_fit(demo_dir: str | os.PathLike = DEMO_DIR, quality: str = "default", force: bool = False,
                 progress=None) -> FitCommandResult:
    """First half of ``avatar demo``: fit scikit-image's astronaut photo into ``<demo_dir>/astronaut.avatar``.

    The photo (Eileen Collins, NASA, public domain) ships inside scikit-image, so the demo needs no
    arguments and no downloads.

    Args:
        demo_dir: the demo's folder (default ``./avatar-demo``).
        quality: fit quality preset.
        force: replace an existing ``astronaut.avatar`` bundle.
        progress: as for :func:`run_fit_command`.

    Returns:
        the :class:`FitCommandResult`.
    """
    import skimage.data

    return fit_to_bundle(skimage.data.astronaut(), Path(demo_dir) / DEMO_BUNDLE, quality, None, force, "cpu", progress)
