"""Build the built-in avatar of ``avatar listen`` and ``avatar track --preview``: ``assets/listener/default_avatar.npz``.

    python scripts/build_default_avatar.py [--out assets/listener/default_avatar.npz] [--quality default]
                                           [--texture-size 256] [--force] [--json]

Fits scikit-image's astronaut photo (Eileen Collins, NASA, public domain; the photo ``avatar demo`` fits) with
the shipped face model and fitting pipeline, then stores what rendering needs compactly
(:func:`avatar.morphable.default_avatar.write_default_avatar`: float16 vertex offsets from the template, int8 morph
targets, a ``texture-size``² texture). Rerun it after the face model or the fitting changes. The fit runs on one
thread: its parallel sums add up in a varying order on more (0.1 mm, 0.7 texture levels apart run to run), and
one thread makes the file reproducible exactly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path, quality: str, texture_size: int, force: bool) -> dict:
    """Fit the astronaut and write the compact avatar atomically.

    Returns:
        a summary (``path``, ``bytes``, ``fit``: the fit's landmark error, photometric PSNR and head model).
    """
    from avatar.api import load
    from avatar.commands.fit import run_demo_fit
    from avatar.core.errors import AvatarInputError
    from avatar.morphable.default_avatar import write_default_avatar

    if out.exists() and not force:
        raise AvatarInputError(f"{out} exists; pass --force to overwrite")
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        fitted = run_demo_fit(folder, quality=quality)
        write_default_avatar(load(fitted.out_dir).bundle, out, texture_size=texture_size)
        report = fitted.report
    fit = {key: report.get(key) for key in ("landmark_error_px", "landmark_error_iod", "photometric_psnr_face", "quality")}
    fit["head_model"] = (report.get("head_model") or {}).get("source")
    return {"path": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out), "bytes": out.stat().st_size,
            "texture_size": texture_size, "fit": fit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "listener" / "default_avatar.npz")
    parser.add_argument("--quality", default="default", help="fit quality preset (as `avatar fit --quality`)")
    parser.add_argument("--texture-size", type=int, default=256)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from avatar.core.errors import print_summary

    return print_summary(lambda: build(args.out.resolve(), args.quality, args.texture_size, args.force), args.json)


if __name__ == "__main__":
    sys.exit(main())
