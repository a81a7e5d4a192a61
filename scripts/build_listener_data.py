"""Build the listener training set: real + augmented + synthetic speakers, teacher listeners, fixed split.

    python scripts/build_listener_data.py OUT_DIR [--config configs/listener.yaml] [--media DIR] [--quick] [--force] [--json]

``--media`` defaults to ``../shared/media`` (``avatar.core.paths.shared_dir()``); without it only synthetic
speakers are made. ``--quick`` makes a tiny set (4 synthetic speakers of 20 s, no real clips) for smoke
tests. See :mod:`research.listener.data_build` for what is made and the folder layout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "listener.yaml")
    parser.add_argument("--media", type=Path, default=None, help="real media folder (default ../shared/media)")
    parser.add_argument("--no-media", action="store_true", help="synthetic speakers only")
    parser.add_argument("--quick", action="store_true", help="a tiny set for smoke tests")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    args = parser.parse_args(argv)

    from avatar.core.errors import AvatarInputError
    from avatar.core.paths import shared_dir
    from research.listener.data_build import DataBuildConfig, build_listener_data

    values = OmegaConf.to_container(OmegaConf.load(args.config).data)
    config = DataBuildConfig(**values)
    media = args.media
    if media is None and not args.no_media and not args.quick:
        shared = shared_dir()
        media = shared / "media" if shared is not None else None
    if args.quick:
        config = DataBuildConfig(**{**values, "synthetic_speakers": 4, "seconds_per_speaker": 20.0,
                                    "listeners_per_stream": 2})
        media = None
    start = time.time()

    def progress(stage: str, fraction: float) -> None:
        if not args.json:
            print(f"[{time.time() - start:7.1f} s] {100 * fraction:5.1f} %  {stage}", flush=True)

    try:
        manifest = build_listener_data(args.out_dir, config, media_dir=media, force=args.force, progress=progress)
    except AvatarInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    streams = manifest["streams"]
    summary = {
        "out_dir": str(args.out_dir),
        "streams": len(streams),
        "train_streams": sum(s["split"] == "train" for s in streams),
        "held_out_streams": sum(s["split"] == "held_out" for s in streams),
        "train_seconds": round(sum(s["frames"] for s in streams if s["split"] == "train") / 30.0, 1),
        "held_out_seconds": round(sum(s["frames"] for s in streams if s["split"] == "held_out") / 30.0, 1),
        "held_out_speakers": manifest["held_out_speakers"],
        "seconds": round(time.time() - start, 1),
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
