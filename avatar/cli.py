"""The ``avatar`` command line: thin — parse, call the API, report.

Bad input raises :class:`avatar.core.errors.AvatarInputError` (or ``renderers.RenderInputError``);
:func:`main` turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from avatar import __version__
from avatar.core.errors import AvatarInputError

app = typer.Typer(
    name="avatar",
    help="One photo to an animatable 3D head that listens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"avatar {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """One photo to an animatable 3D head that listens."""


@contextmanager
def _progress():
    """A one-bar rich progress display on stderr (quiet when stderr is not a terminal)."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        yield progress


@contextmanager
def _counting_progress(first_stage: str):
    """:func:`_progress` as a ``callback(stage, done, total)`` (the commands that count frames)."""
    with _progress() as progress:
        task = progress.add_task(first_stage, total=None)

        def update(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        yield update


@app.command()
def fit(
    photo: Path = typer.Argument(..., help="The photo: JPEG, PNG, WebP or TIFF."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Bundle folder [default: <photo stem>.avatar]."),
    quality: str = typer.Option("default", "--quality", help="fast | default | high."),
    face_index: Optional[int] = typer.Option(None, "--face-index", help="Which face, 0 = largest [default: largest]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle folder."),
    device: str = typer.Option("cpu", "--device", help="cpu (or auto)."),
    prior: str = typer.Option("gaussian", "--prior", help="Identity prior: gaussian | generator (the text generator's)."),
) -> None:
    """Fit an animatable, textured avatar to one photo: writes GLB (ARKit's 52 morph targets), OBJ, texture, preview."""
    from avatar.commands.fit import run_fit_command

    with _progress() as progress:
        result = run_fit_command(photo, out, quality=quality, face_index=face_index, force=force, device=device,
                                 progress=progress, prior=prior)
    typer.echo(result.summary())


@app.command()
def demo(
    force: bool = typer.Option(False, "--force", help="Redo the demo, replacing ./avatar-demo's outputs."),
) -> None:
    """Fit the astronaut photo that ships inside scikit-image into ./avatar-demo/, then let it listen to a
    built-in speaker clip (./avatar-demo/astronaut_listens.mp4). No arguments needed."""
    from avatar.commands.fit import run_demo_fit
    from avatar.commands.listen import run_demo_listen

    with _progress() as progress:
        result = run_demo_fit(force=force, progress=progress)
    typer.echo(result.summary())
    with _progress() as progress:
        listened = run_demo_listen(result.out_dir, result.out_dir.parent / "astronaut_listens.mp4", force=force,
                                   progress=progress)
    typer.echo(listened.summary())


@app.command()
def track(
    clip: Path = typer.Argument(..., help="A video (mp4, mov, mkv, webm, avi) that shows a face."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Motion file [default: <clip stem>.motion.npz]."),
    csv: bool = typer.Option(False, "--csv", help="Also write a Live Link Face-style CSV beside it."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Also write a side-by-side preview .mp4."),
    avatar_dir: Optional[Path] = typer.Option(None, "--avatar", help="Avatar bundle for the preview [default: built-in]."),
    estimator: str = typer.Option("ours", "--estimator", help="ours | mediapipe (Google's Face Landmarker) | fused."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Track a face in a video into 53 expression weights (ICT; ARKit names in the CSV) + head pose at 30 fps (performance capture)."""
    from avatar.commands.track import run_track_command

    with _counting_progress("tracking") as update:
        result = run_track_command(clip, out, csv=csv, preview=preview, avatar_dir=avatar_dir, force=force,
                                   progress=update, estimator=estimator)
    typer.echo(result.summary())


@app.command()
def perceive(
    source: Path = typer.Argument(..., help="A photo (jpg, png, ...) or a video that shows faces."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="OUT.json [default: <input stem>.perception.json]; .csv/.png/.vtt beside it."),
    face: str = typer.Option("all", "--face", help="Faces to report: all | main | a face id."),
    labels: Optional[str] = typer.Option(None, "--labels", help='Free-text labels scored zero-shot, e.g. "bored, amused".'),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Clips: also write the video with boxes and labels (.mp4)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Read faces: action units, emotion (and the AUs behind it), compound, unknown, valence/arousal, main face, captions."""
    from avatar.commands.perceive import run_perceive_command

    with _counting_progress("perceiving") as update:
        result = run_perceive_command(source, out, face=face, labels=labels, preview=preview, force=force,
                                      progress=update)
    typer.echo(result.text())


@app.command()
def listen(
    speaker: Path = typer.Option(..., "--speaker", help="The speaker: a video (mp4, mov, ...) or audio (wav, mp3)."),
    avatar_dir: Optional[Path] = typer.Option(None, "--avatar", help="Avatar bundle folder (default: the built-in avatar)."),
    photo: Optional[Path] = typer.Option(None, "--photo", help="Fit the listener to this photo first."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output video (default: <speaker stem>.listener.mp4)."),
    style: Optional[str] = typer.Option(None, "--style", help="Listener style: a preset, name=value pairs or a description."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed reproduces the output)."),
    size: int = typer.Option(256, "--size", help="Side of the rendered avatar in pixels."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Put the speaker's video on the left."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """The avatar listens to a speaker clip: writes OUT.mp4 (with the speaker's audio), OUT.motion.npz, OUT.csv, OUT.json."""
    from avatar.commands.listen import run_listen_command

    with _progress() as progress:
        result = run_listen_command(speaker, avatar_dir=avatar_dir, photo=photo, out=out, style=style, seed=seed,
                                    size=size, side_by_side=side_by_side, force=force, progress=progress)
    typer.echo(result.summary())


@app.command()
def generate(
    text: str = typer.Argument(..., help='English description, e.g. "a woman with a round face and a small nose" ("" = random).'),
    n: int = typer.Option(1, "-n", help="How many avatars (1-100)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same text and seed, same avatars)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale [default: 3]."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Bundle (N=1) or folder of bundles [default: from the text]."),
    force: bool = typer.Option(False, "--force", help="Replace existing output."),
) -> None:
    """Generate new avatars from text: bundles like `avatar fit` (GLB with ARKit's 52 morph targets, texture, preview)."""
    from avatar.commands.generate import run_generate_command

    with _progress() as progress:
        result = run_generate_command(text, n=n, seed=seed, guidance=guidance, out_dir=out, force=force, progress=progress)
    typer.echo(result.summary())


@app.command()
def edit(
    bundle: Path = typer.Argument(..., help="The .avatar bundle folder to edit."),
    text: str = typer.Argument(..., help='What to change, e.g. "a longer nose, fuller lips".'),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="New bundle [default: <bundle>-edited.avatar]."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far to re-generate, 0-1 [default: 0.6]."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output bundle."),
) -> None:
    """Edit an avatar with text; what the text does not mention is kept."""
    from avatar.commands.generate import run_edit_command

    with _progress() as progress:
        result = run_edit_command(bundle, text, out_dir=out, force=force, progress=progress, strength=strength, seed=seed)
    typer.echo(result.summary())


@app.command()
def view(
    bundle: Path = typer.Argument(..., help="The .avatar bundle folder to show."),
    motion: Optional[Path] = typer.Option(None, "--motion", help="A motion file (avatar track / avatar listen) to play."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Audio to play with the motion [default: the clip beside it]."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 [default: a free one]."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open a browser."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write the page as a static folder instead of serving it."),
    force: bool = typer.Option(False, "--force", help="Replace an existing -o folder."),
) -> None:
    """Look at an avatar in the browser (three.js): orbit, ARKit expression and head sliders, motion playback."""
    from avatar.commands.view import run_view_command

    run_view_command(bundle, motion, audio, port, not no_open, out, force, echo=typer.echo)


@app.command()
def serve(
    avatar_dir: Optional[Path] = typer.Option(None, "--avatar", help="Avatar bundle the page shows [default: built-in]."),
    port: int = typer.Option(8765, "--port", help="Port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (default: this machine only)."),
    style: Optional[str] = typer.Option(None, "--style", help="Listener style for every session."),
    vmc: Optional[str] = typer.Option(None, "--vmc", help="Also send VMC-protocol OSC to HOST:PORT."),
    max_sessions: Optional[int] = typer.Option(None, "--max-sessions", help="Concurrent sessions [default: 8]."),
) -> None:
    """Listen live: a WebSocket endpoint /listen (16 kHz float32 audio in, ARKit codes out) and a page at /."""
    from avatar.commands.serve import run_serve_command

    run_serve_command(avatar_dir, port, host, style, vmc, max_sessions, echo=typer.echo)


@app.command()
def batch(
    command: str = typer.Argument(..., help="fit | listen | track | perceive"),
    inputs: list[Path] = typer.Argument(..., help="A folder of inputs (or input files)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (outputs mirror the inputs' names)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes [default: the cores, capped by memory]."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on Ray: a cluster address, or nothing for a local Ray."),
    retries: int = typer.Option(2, "--retries", help="Tries again for an item whose worker died."),
    force: bool = typer.Option(False, "--force", help="Replace outputs an earlier batch did not write."),
    quality: Optional[str] = typer.Option(None, "--quality", help="fit: fast | default | high."),
    face_index: Optional[int] = typer.Option(None, "--face-index", help="fit: which face, 0 = largest."),
    prior: Optional[str] = typer.Option(None, "--prior", help="fit: gaussian | generator."),
    avatar_dir: Optional[Path] = typer.Option(None, "--avatar", help="listen: avatar bundle [default: built-in]."),
    style: Optional[str] = typer.Option(None, "--style", help="listen: listener style."),
    seed: Optional[int] = typer.Option(None, "--seed", help="listen: random seed."),
    size: Optional[int] = typer.Option(None, "--size", help="listen: side of the avatar in pixels."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="listen: the speaker's video on the left."),
    csv: bool = typer.Option(False, "--csv", help="track: also write Live Link Face CSVs."),
    face: Optional[str] = typer.Option(None, "--face", help="perceive: all | main | a face id."),
    labels: Optional[str] = typer.Option(None, "--labels", help="perceive: free-text labels scored zero-shot."),
) -> None:
    """Run fit, listen, track or perceive over a folder: resumable, on local worker processes or Ray; writes
    OUT/batch_report.json. Exit code 1 when some items failed."""
    from avatar.commands.batch import run_batch_command

    code = run_batch_command(command, inputs, out, workers=workers, ray=ray, retries=retries, force=force,
                             console=err_console, quality=quality, face_index=face_index, prior=prior,
                             avatar=None if avatar_dir is None else str(avatar_dir), style=style, seed=seed, size=size,
                             side_by_side=side_by_side, csv=csv, face=face, labels=labels)
    raise typer.Exit(code)


def _silence_native_stderr() -> None:
    """Send what native libraries write to file descriptor 2 (MediaPipe's TFLite/absl start-up logs) to
    /dev/null, while Python's own ``sys.stderr`` (errors, warnings, progress) keeps the terminal.
    ``AVATAR_NATIVE_LOGS=1`` keeps the native logs."""
    if os.environ.get("AVATAR_NATIVE_LOGS") == "1":
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        return
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    err_console.file = sys.stderr


_TERMINATED: list[int] = []


def _terminate(signum, frame) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit code 2."""
    _silence_native_stderr()
    # SIGTERM unwinds like Ctrl-C, so every command's atomic writers remove what they had begun
    previous = signal.signal(signal.SIGTERM, _terminate)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:
        from avatar.commands.batch import ray_flag_value

        argv = ray_flag_value(argv)
    try:
        app(args=argv, standalone_mode=True)
    except AvatarInputError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit:
        if _TERMINATED:  # click turned the interrupt into "Aborted!" and exit code 1
            sys.exit(128 + _TERMINATED[0])
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        # The outputs are written; without this the interpreter's final garbage collections walk every
        # object torch, MediaPipe and numba created (2-3 s of `avatar listen` on two cores).
        gc.freeze()


if __name__ == "__main__":
    main()
