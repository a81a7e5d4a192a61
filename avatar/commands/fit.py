"""``avatar fit`` and the first half of ``avatar demo``: fit a photo (:func:`avatar.api.fit`), write the bundle.

The output folder is checked before any work and written atomically, so nothing is half-written on
failure; bad input raises :class:`~avatar.core.errors.AvatarInputError` (one line, exit code 2).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from avatar.commands.progress import check_free, stage_progress
from avatar.core.errors import AvatarInputError

#: Share of the progress bar per stage (roughly their share of the time) and its text.
STAGES = {
    "load": (0.02, "reading the photo"),
    "detect": (0.08, "finding the face and its landmarks"),
    "model": (0.1, "loading the head model"),
    "landmarks": (0.1, "fitting shape, expression and pose to the landmarks"),
    "photometric": (0.45, "refining with the photo's shading"),
    "texture": (0.1, "unwrapping the texture"),
    "preview": (0.08, "rendering the preview"),
    "write": (0.07, "writing the bundle"),
}
DEMO_DIR = "avatar-demo"
DEMO_BUNDLE = "astronaut.avatar"


@dataclass(frozen=True)
class FitCommandResult:
    """What ``avatar fit`` made: the bundle folder, its ``report.json`` document, the command's wall time."""

    out_dir: Path
    report: dict
    seconds: float

    def summary(self) -> str:
        """A few lines for the terminal."""
        r = self.report
        faces = r["num_faces_detected"]
        iou = "n/a" if r.get("head_silhouette_iou") is None else f"{r['head_silhouette_iou']:.2f}"
        return "\n".join([
            f"wrote {self.out_dir}/  (avatar.json, avatar.safetensors, texture.png, mesh.glb, mesh.obj, preview.png, "
            "overlay.png, report.json)",
            f"faces found: {faces}" + (f" (fitted #{r['face_index']}, the largest is #0)" if faces > 1 else ""),
            f"landmark error: {r['landmark_error_px']:.2f} px ({100 * (r['landmark_error_iod'] or 0):.2f} % of the "
            f"inter-ocular distance); photometric PSNR in the face: {r['photometric_psnr_face']:.1f} dB",
            f"skin ΔE2000 vs the photo under a neutral light: {r['skin_delta_e2000']}; head-silhouette IoU above the "
            f"chin: {iou}; hair: " + ("none found (bald, or hair the colour of skin)" if not r.get("hair")
                                      else f"a {r['hair']['triangles']}-triangle layer (hair.png, GLB node 'hair')"),
            f"head model: {r['head_model']['source']}; quality: {r['quality']}; {self.seconds:.1f} s",
        ])


def fit_to_bundle(source, out_dir: Path, quality: str = "default", face_index: int | None = None,
                  force: bool = False, device: str = "cpu", progress=None, prior: str = "gaussian") -> FitCommandResult:
    """Fit ``source`` (path or image array) and write the bundle to ``out_dir``."""
    from avatar.api import fit

    start = time.perf_counter()
    out_dir = Path(out_dir)
    check_free(out_dir, force)
    callback = stage_progress(progress, STAGES)
    avatar = fit(source, quality=quality, face_index=face_index, device=device, progress=callback, prior=prior)
    callback("write", 0.0)
    avatar.report["seconds_total"] = round(time.perf_counter() - start, 3)  # writing adds its own time
    avatar.save(out_dir, force=force)
    callback("write", 1.0)
    return FitCommandResult(out_dir, avatar.report, time.perf_counter() - start)


def run_fit_command(photo: str | os.PathLike, out_dir: str | os.PathLike | None = None, quality: str = "default",
                    face_index: int | None = None, force: bool = False, device: str = "cpu",
                    progress=None, prior: str = "gaussian") -> FitCommandResult:
    """``avatar fit PHOTO [-o DIR] [--quality fast|default|high] [--face-index N] [--force] [--device D] [--prior P]``.

    ``out_dir`` defaults to ``<photo stem>.avatar`` in the current folder; ``progress`` is a rich
    ``Progress``, a ``callback(stage, fraction)`` or ``None``; the rest as for :func:`avatar.api.fit`.
    """
    photo = Path(photo)
    if not photo.exists():
        raise AvatarInputError(f"{photo} not found; give a JPEG, PNG, WebP or TIFF photo")
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{photo.stem}.avatar")
    return fit_to_bundle(photo, out_dir, quality, face_index, force, device, progress, prior)


def run_demo_fit(demo_dir: str | os.PathLike = DEMO_DIR, quality: str = "default", force: bool = False,
                 progress=None) -> FitCommandResult:
    """First half of ``avatar demo``: fit scikit-image's astronaut photo into ``<demo_dir>/astronaut.avatar``.

    The photo (Eileen Collins, NASA, public domain) ships inside scikit-image, so the demo needs no
    arguments and no downloads.
    """
    import skimage.data

    return fit_to_bundle(skimage.data.astronaut(), Path(demo_dir) / DEMO_BUNDLE, quality, None, force, "cpu", progress)
