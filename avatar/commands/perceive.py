"""``avatar perceive INPUT [-o OUT.json] [--face main|all|ID] [--labels TEXT] [--preview OUT.mp4] [--force]``.

Reads the faces of a photo or a clip (:func:`avatar.api.perceive`) and writes ``OUT.json`` with
``OUT.csv`` beside it (a row per frame and face), ``OUT.png`` (a photo: faces with labels and the AUs behind
them; a clip: the main face's timeline) and, for a clip, ``OUT.vtt`` (captions of facial change). Every
output is checked before any work; all are written to hidden temporary files and renamed into place only
when every one is complete, so an error or an interrupt leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from avatar.commands.progress import check_free
from avatar.core.errors import AvatarInputError


@dataclass(frozen=True)
class PerceiveCommandResult:
    written: list[Path]
    frames: int
    faces: int
    main_face: int | None
    summary: dict
    seconds: float

    def text(self) -> str:
        main = self.summary["faces"].get(str(self.main_face), {}) if self.main_face is not None else {}
        said = f"; main face #{self.main_face}: mostly {main.get('dominant_emotion')}" if main else ""
        return (f"wrote {', '.join(str(p) for p in self.written)}\n{self.frames} frame(s), {self.faces} face(s)"
                f"{said}, {self.summary['captions']} caption(s); {self.seconds:.1f} s")


def output_paths(source: Path, out: str | os.PathLike | None) -> dict[str, Path]:
    """OUT.json (default ``<input stem>.perception.json`` here) and its .csv/.png/.vtt siblings."""
    json_path = Path(out) if out is not None else Path(f"{source.stem}.perception.json")
    if json_path.suffix.lower() != ".json":
        raise AvatarInputError(f"{json_path}: the output must be a .json file (-o OUT.json)")
    return {kind: json_path.with_suffix("." + kind) for kind in ("json", "csv", "png", "vtt")}


def run_perceive_command(source: str | os.PathLike, out: str | os.PathLike | None = None, face: str = "all",
                         labels: str | None = None, preview: str | os.PathLike | None = None, force: bool = False,
                         progress=None) -> PerceiveCommandResult:
    """``avatar perceive``; ``progress`` is ``callback(stage, done, total)`` or ``None``."""
    from avatar.api import check_perceive_options, perceive_to_files
    from drivers.perception import is_photo

    tic = time.perf_counter()
    source = Path(source)
    if not source.exists():
        raise AvatarInputError(f"{source} does not exist; pass a photo or a video that shows a face")
    photo = is_photo(source)
    paths = output_paths(source, out)
    if photo:
        paths.pop("vtt")
    preview_path = Path(preview) if preview is not None else None
    if preview_path is not None:
        if photo:
            raise AvatarInputError("--preview is for clips; a photo's picture is OUT.png")
        if preview_path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise AvatarInputError(f"{preview_path}: the preview must be an .mp4 file")
    for path in [*paths.values(), preview_path]:
        if path is not None:
            check_free(path, force, kind="file")
    check_perceive_options(face, labels)
    write = None if preview_path is None else (preview_path, lambda result, tmp: _write_preview(source, result, tmp, progress))
    result = perceive_to_files(source, paths, labels=labels, face=face, force=force, preview=write,
                               progress=None if progress is None else (lambda d, n: progress("perceiving", d, n)))
    written = [*paths.values()] + ([preview_path] if preview_path is not None else [])
    faces = len(result.face_ids())
    return PerceiveCommandResult(written, len(result.frames), faces, result.main_face, result.summary(),
                                 time.perf_counter() - tic)


def _write_preview(source: Path, result, path: Path, progress) -> None:
    """The clip with every face's box, label and the AUs behind it, with the clip's audio."""
    from avatar.core.motion import MOTION_FPS
    from drivers.media import VideoWriter, probe, read_audio
    from drivers.perception.report import annotate_frame
    from drivers.tracking import iter_video_frames

    info = probe(source, check_silence=False)
    audio = read_audio(source) if info.has_audio else None
    records = result.frames
    with VideoWriter(path, fps=MOTION_FPS, with_audio=audio is not None, force=True) as writer:
        if audio is not None:
            writer.write_audio(audio)
        for index, image in enumerate(iter_video_frames(source, MOTION_FPS)):
            if index >= len(records):
                break
            writer.write_frame(annotate_frame(image, records[index]))
            if progress is not None:
                progress("preview", index + 1, len(records))
