"""Side-by-side figure of two fits of the same photos (before / after a change), from their bundles.

    python scripts/compare_fits.py BEFORE_DIR AFTER_DIR -o docs/images/fit_before_after.png [--labels before after]

Each directory holds ``<photo>.avatar`` bundles written by ``avatar fit`` (e.g. one run on an older checkout, one on
this one). For every photo found in both, a row: the bundle's ``preview.png`` before | after (each preview is the
photo, its landmarks and the fitted head over it on top, then novel views neutral and smiling), with a label strip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--labels", nargs=2, default=("before", "after"))
    parser.add_argument("--width", type=int, default=560, help="pixels per preview")
    args = parser.parse_args(argv)
    names = sorted(p.name for p in args.before.glob("*.avatar") if (args.after / p.name / "preview.png").is_file())
    if not names:
        print(f"error: no bundle with a preview.png in both {args.before} and {args.after}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        tiles = []
        for folder, label in zip((args.before, args.after), args.labels):
            with Image.open(folder / name / "preview.png") as image:
                image = image.convert("RGB")
                image = image.resize((args.width, round(image.height * args.width / image.width)), Image.LANCZOS)
            strip = Image.new("RGB", (args.width, 22), "white")
            ImageDraw.Draw(strip).text((6, 5), f"{name.removesuffix('.avatar')}: {label}", fill="black")
            tiles.append(np.concatenate([np.asarray(strip), np.asarray(image)], 0))
        rows.append(np.concatenate(tiles, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    print(f"wrote {args.out} ({len(names)} photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
