"""``avatar serve [--avatar BUNDLE] [--port 8765] [--host 127.0.0.1] [--style TEXT] [--vmc HOST:PORT]
[--max-sessions N]``: real-time listening over WebSocket (:mod:`drivers.listener.live_server`; protocol in
docs/SERVE.md) and a page at ``/`` that listens to the microphone. Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from avatar.core.errors import AvatarInputError


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``."""
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AvatarInputError(f"--vmc {text!r}: give HOST:PORT, e.g. 127.0.0.1:39539")
    return host, int(port)


def run_serve_command(avatar_dir: str | os.PathLike | None = None, port: int = 8765, host: str = "127.0.0.1",
                      style: str | None = None, vmc: str | None = None, max_sessions: int | None = None,
                      seed: int = 0, echo=print) -> None:
    """Serve until Ctrl-C (see the module docstring)."""
    import torch

    from avatar.api import default_avatar, load
    from avatar.core.export.web import write_viewer
    from drivers.listener.live_server import DEFAULT_MAX_SESSIONS, ListenServer, ServeConfig

    if not 0 <= int(port) <= 65535:
        raise AvatarInputError(f"--port must be between 0 and 65535, got {port}")
    sessions = DEFAULT_MAX_SESSIONS if max_sessions is None else int(max_sessions)
    if sessions < 1:
        raise AvatarInputError(f"--max-sessions must be 1 or more, got {max_sessions}")
    endpoint = parse_endpoint(vmc) if vmc else None
    avatar = load(avatar_dir) if avatar_dir is not None else default_avatar()
    torch.set_num_threads(1)  # many small sessions: one thread each (see drivers.listener.live_server)
    with tempfile.TemporaryDirectory(prefix="avatar-serve-") as scratch:
        avatar.save(Path(scratch) / "avatar.avatar")
        site = write_viewer(Path(scratch) / "site", Path(scratch) / "avatar.avatar" / "mesh.glb",
                            title=f"avatar serve — {Path(avatar_dir).name if avatar_dir else 'built-in avatar'}",
                            live="listen")
        server = ListenServer(ServeConfig(site=site, host=host, port=int(port), style=style, seed=int(seed), vmc=endpoint,
                                          max_sessions=sessions))
        try:
            server.run(on_ready=lambda url: echo(f"serving at {url} (WebSocket {url.replace('http', 'ws')}listen; "
                                                 f"{sessions} sessions at most"
                                                 + (f"; VMC to {endpoint[0]}:{endpoint[1]}" if endpoint else "")
                                                 + "). Ctrl-C stops."))
        except OSError as error:
            raise AvatarInputError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --port") from error
    echo("stopped")
