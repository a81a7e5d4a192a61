"""``avatar listen`` and the second half of ``avatar demo``: the avatar listens to a speaker clip
(:func:`avatar.api.listen`, which runs :mod:`drivers.listener.clip_listener`).

``avatar listen --speaker CLIP [--avatar DIR | --photo PHOTO] [-o OUT.mp4] [--style TEXT] [--seed N]
[--size 256] [--side-by-side] [--force]`` writes ``OUT.mp4`` (with the speaker's audio), ``OUT.motion.npz``,
``OUT.csv`` (Live Link Face) and ``OUT.json``; without ``--avatar``/``--photo`` the built-in avatar listens.
"""

from __future__ import annotations

import os

from avatar.commands.progress import stage_progress
from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR

STAGES = {"load": (0.1, "loading the avatar and the listener"), "listen": (0.85, "listening and rendering"),
          "write": (0.05, "writing the motion files")}
#: The speaker clip ``avatar demo`` plays to its avatar (``scripts/build_listen_demo.py``: espeak-ng speech).
DEMO_SPEAKER = ASSETS_DIR / "listener" / "demo_speaker.mp3"


def run_listen_command(speaker: str | os.PathLike, avatar_dir: str | os.PathLike | None = None,
                       photo: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                       style: str | None = None, seed: int = 0, size: int = 256, side_by_side: bool = False,
                       force: bool = False, progress=None):
    """``avatar listen`` (arguments as for :func:`avatar.api.listen`; ``progress`` a rich ``Progress``, a
    ``callback(stage, fraction)`` or ``None``). Returns the ``ListenResult``."""
    from avatar.api import listen

    return listen(speaker, out, avatar=avatar_dir, photo=photo, style=style, seed=seed, size=size,
                  side_by_side=side_by_side, force=force, progress=stage_progress(progress, STAGES))


def run_demo_listen(avatar_dir: str | os.PathLike, out: str | os.PathLike, force: bool = False, size: int = 256,
                    progress=None):
    """Second half of ``avatar demo``: the demo avatar listens to the shipped speaker clip, our own sentences
    spoken by Debian's espeak-ng (``scripts/build_listen_demo.py``; no third-party media ships)."""
    if not DEMO_SPEAKER.is_file():
        raise AvatarInputError(f"the demo speaker clip {DEMO_SPEAKER} is missing; run scripts/build_listen_demo.py")
    return run_listen_command(DEMO_SPEAKER, avatar_dir=avatar_dir, out=out, style="warm", seed=0, size=size,
                              force=force, progress=progress)
