"""A self-contained web viewer of an avatar (``avatar view``): three.js page, the bundle's GLB, optional motion
and audio, in one static folder that any static web server can serve, offline (no CDN).

Folder layout::

    index.html  viewer.js        the page (assets/web/viewer)
    three/                       three.js, pinned (assets/web/three, scripts/build_web_assets.py; MIT)
    avatar.glb                   the bundle's mesh.glb (ARKit's 52 morph targets, a ``neck`` pivot node)
    motion.json                  optional: {"fps", "names": ARKit's 52, "weights": T × 52, "head": T × 3
                                 (yaw, pitch, roll, rad), "time": T seconds}
    audio.<ext>                  optional: played in sync with the motion (time 0 = its start)
    view.json                    {"title", "glb", "motion", "audio"[, "live"]}: what the page loads

Browsers do not run ES modules from ``file://`` pages, so open it through a server (``avatar view`` serves it;
``python -m http.server -d DIR`` does too).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, arkit_from_expression
from avatar.core.io import atomic_output_dir
from avatar.core.motion import Motion
from avatar.core.paths import ASSETS_DIR

WEB_ASSETS = ASSETS_DIR / "web"
#: Audio files browsers play as they are.
BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".oga", ".m4a", ".aac", ".flac")


def motion_document(motion: Motion) -> dict:
    """The page's ``motion.json``: ARKit weights and head angles per frame (4 decimals)."""
    from avatar.core.export.livelink import head_angles

    weights = np.round(arkit_from_expression(motion.weights), 4)
    head = np.round(head_angles(motion.head_rotation), 5)
    return {"fps": motion.fps, "names": list(ARKIT_NAMES), "weights": weights.tolist(), "head": head.tolist(),
            "time": np.round(motion.time, 5).tolist()}


def write_viewer(folder: str | os.PathLike, glb: str | os.PathLike, motion: Motion | None = None,
                 audio: str | os.PathLike | None = None, title: str = "avatar", force: bool = False,
                 live: str | None = None) -> Path:
    """Write the viewer folder atomically (see the module docstring).

    Args:
        folder: the folder to create.
        glb: the avatar's GLB (a bundle's ``mesh.glb``).
        motion: a motion to play, or ``None``.
        audio: a file browsers play (:data:`BROWSER_AUDIO`) to play with the motion, or ``None``.
        title: shown on the page.
        force: replace an existing folder.
        live: the WebSocket endpoint of a live server (``avatar serve``: ``"listen"``), or ``None``.

    Raises:
        AvatarInputError: a missing GLB or audio file, audio a browser cannot play, audio without motion, or an
            existing folder without ``force``.
    """
    glb, audio = Path(glb), None if audio is None else Path(audio)
    if not glb.is_file():
        raise AvatarInputError(f"{glb} not found; the avatar bundle has no mesh.glb (write it again with this version)")
    if audio is not None and motion is None:
        raise AvatarInputError("--audio plays along with a motion; pass --motion too")
    if audio is not None and audio.suffix.lower() not in BROWSER_AUDIO:
        raise AvatarInputError(f"{audio}: browsers do not play {audio.suffix} audio; give {', '.join(BROWSER_AUDIO)}")
    if audio is not None and not audio.is_file():
        raise AvatarInputError(f"{audio} not found")
    with atomic_output_dir(folder, force=force) as tmp:
        for page in (WEB_ASSETS / "viewer").iterdir():
            shutil.copy(page, tmp / page.name)
        shutil.copytree(WEB_ASSETS / "three", tmp / "three")
        shutil.copy(glb, tmp / "avatar.glb")
        config = {"title": title, "glb": "avatar.glb", "motion": None, "audio": None, **({"live": live} if live else {})}
        if motion is not None:
            (tmp / "motion.json").write_text(json.dumps(motion_document(motion), separators=(",", ":")))
            config["motion"] = "motion.json"
        if audio is not None:
            shutil.copy(audio, tmp / f"audio{audio.suffix.lower()}")
            config["audio"] = f"audio{audio.suffix.lower()}"
        (tmp / "view.json").write_text(json.dumps(config, indent=1) + "\n")
    return Path(folder)
