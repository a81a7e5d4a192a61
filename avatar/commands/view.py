"""``avatar view BUNDLE [--motion FILE.motion.npz] [--audio FILE] [--port N] [--no-open] [-o DIR] [--force]``.

Without ``-o``: writes the viewer (:mod:`avatar.core.export.web`) into a temporary folder and serves it on
127.0.0.1 (a free port unless ``--port``), prints the URL, opens the default browser unless ``--no-open``, and
stops on Ctrl-C (or SIGTERM), removing the folder. With ``-o DIR``: writes the same page as a static folder.
Audio: ``--audio`` (any file ``avatar listen`` reads: its audio track is taken), else the video beside the motion
file (``X.listener.mp4`` for ``X.listener.motion.npz``, ``X.mp4`` for ``X.motion.npz``), else none.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from avatar.core.errors import AvatarInputError


def _audio_for(motion_path: Path | None, audio: Path | None, folder: Path) -> Path | None:
    """A browser-playable audio file for the motion: ``audio`` as it is, or an audio track as WAV in ``folder``."""
    from avatar.core.export.web import BROWSER_AUDIO

    explicit = audio is not None
    if audio is None and motion_path is not None:
        stem = motion_path.name[: -len(".motion.npz")] if motion_path.name.endswith(".motion.npz") else motion_path.stem
        audio = motion_path.with_name(f"{stem}.mp4")
        if not audio.is_file():
            return None
    if audio is None:
        return None
    if not audio.exists():
        raise AvatarInputError(f"{audio} not found; give the clip whose audio goes with the motion")
    if audio.suffix.lower() in BROWSER_AUDIO:
        return audio
    import soundfile

    from drivers import media

    if not media.probe(audio, check_silence=False).has_audio:
        if explicit:
            raise AvatarInputError(f"{audio} has no audio track; give a file with sound, or leave --audio out")
        return None
    wav = folder / "audio.wav"
    soundfile.write(wav, media.read_audio(audio), media.AUDIO_SAMPLE_RATE, subtype="PCM_16")
    return wav


def run_view_command(bundle: str | os.PathLike, motion: str | os.PathLike | None = None,
                     audio: str | os.PathLike | None = None, port: int | None = None, open_browser: bool = True,
                     out: str | os.PathLike | None = None, force: bool = False, echo=print) -> Path | None:
    """Write the viewer to ``out``, or serve it until Ctrl-C (see the module docstring)."""
    from avatar.core.export.web import write_viewer
    from avatar.core.motion import Motion

    bundle = Path(bundle)
    if not (bundle / "avatar.json").is_file():
        raise AvatarInputError(f"{bundle} is not an avatar bundle folder (no avatar.json); give a .avatar folder")
    if audio is not None and motion is None:
        raise AvatarInputError("--audio plays along with a motion; pass --motion too")
    if port is not None and not 0 <= int(port) <= 65535:
        raise AvatarInputError(f"--port must be between 0 and 65535, got {port}")
    if out is not None and (Path(out).exists() and not force):
        raise AvatarInputError(f"{out} exists; pass --force to overwrite")
    motion_path = None if motion is None else Path(motion)
    loaded = None if motion_path is None else Motion.load(motion_path)
    with tempfile.TemporaryDirectory(prefix="avatar-view-") as scratch:
        sound = _audio_for(motion_path, None if audio is None else Path(audio), Path(scratch))
        title = bundle.name + (f" — {motion_path.name}" if motion_path is not None else "")
        if out is not None:
            folder = write_viewer(out, bundle / "mesh.glb", loaded, sound, title, force=force)
            echo(f"wrote {folder}/ (index.html, viewer.js, three/, avatar.glb"
                 + (", motion.json" if loaded is not None else "") + (", audio" if sound is not None else "")
                 + f"); serve it with any static web server, e.g. python -m http.server -d {folder}")
            return folder
        site = write_viewer(Path(scratch) / "site", bundle / "mesh.glb", loaded, sound, title)
        serve(site, port or 0, open_browser, echo)
    return None


def serve(site: Path, port: int, open_browser: bool, echo) -> None:
    """Serve ``site`` on 127.0.0.1 until Ctrl-C."""
    import functools
    import http.server
    import webbrowser

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no access log on the terminal
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
    except OSError as error:
        raise AvatarInputError(f"cannot listen on 127.0.0.1:{port} ({error.strerror}); pass another --port") from error
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    echo(f"serving the avatar at {url}  (Ctrl-C stops)")
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        server.server_close()
