"""Where shipped assets and the optional shared data live.

``assets/`` sits at the repository root next to the packages (install with ``pip install -e``).
``shared/`` — the ICT FaceKit data and real test media — is looked up in ``$AVATAR_SHARED`` and
then beside the checkout (``../shared``); it is needed only to rebuild assets, train and evaluate.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = REPO_ROOT / "assets"
CONFIGS_DIR = REPO_ROOT / "configs"


def shared_dir() -> Path | None:
    """The shared data folder, or ``None`` when it is not present."""
    candidates = [os.environ.get("AVATAR_SHARED"), REPO_ROOT.parent / "shared"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None
