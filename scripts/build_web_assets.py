"""Ship three.js for `avatar view`: copy the pinned npm build's files the viewer uses into ``assets/web/three/``.

    python scripts/build_web_assets.py [--version 0.187.0]

Takes ``three@VERSION`` from the npm registry with ``npm pack`` (no CDN at run time: the viewer page works
offline), keeps the directory layout the examples expect (``addons/loaders/GLTFLoader.js`` imports
``../utils/BufferGeometryUtils.js``), and writes the MIT licence to ``assets/LICENSES/three.js.LICENSE``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "build/three.module.js": "three.module.js",
    "build/three.core.js": "three.core.js",
    "examples/jsm/controls/OrbitControls.js": "addons/controls/OrbitControls.js",
    "examples/jsm/loaders/GLTFLoader.js": "addons/loaders/GLTFLoader.js",
    "examples/jsm/utils/BufferGeometryUtils.js": "addons/utils/BufferGeometryUtils.js",
    "examples/jsm/utils/SkeletonUtils.js": "addons/utils/SkeletonUtils.js",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="0.187.0")
    args = parser.parse_args(argv)
    out = ROOT / "assets" / "web" / "three"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"three@{args.version}", "--silent"], cwd=tmp, check=True, capture_output=True)
        with tarfile.open(next(Path(tmp).glob("three-*.tgz"))) as archive:
            archive.extractall(tmp, filter="data")
        package = Path(tmp) / "package"
        shutil.rmtree(out, ignore_errors=True)
        for source, target in FILES.items():
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(package / source, out / target)
        (out / "VERSION").write_text(args.version + "\n")
        shutil.copy(package / "LICENSE", ROOT / "assets" / "LICENSES" / "three.js.LICENSE")
    print(json.dumps({"version": args.version, "files": sorted(FILES.values()),
                      "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
