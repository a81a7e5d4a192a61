"""Figure: generated avatars with hair from text, four views each, one prompt per row.

    python scripts/render_generated_hair.py -o docs/images/generate_hair.png [--seed 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PROMPTS = ("a woman with long red hair and light brown skin", "a man with a grey bun and dark skin",
           "short black hair with a fringe", "a blonde ponytail and a long nose", "curly dark brown hair and a round face",
           "a bald man with stubble")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    from PIL import Image, ImageDraw

    from avatar.core.io import atomic_output_file
    from avatar.core.preview import preview_views
    from avatar.generator.bundles import generate_bundles

    rows = []
    for prompt in PROMPTS:
        bundle = generate_bundles(prompt, n=1, seed=args.seed, with_preview=False).bundles[0]
        views = Image.fromarray(preview_views([bundle]))
        label = Image.new("RGB", (views.width, 22), "white")
        ImageDraw.Draw(label).text((6, 5), f'"{prompt}"', fill="black")
        rows += [np.asarray(label), np.asarray(views)]
    with atomic_output_file(args.out, force=args.force) as tmp:
        Image.fromarray(np.concatenate(rows, 0)).save(tmp, format="PNG")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
