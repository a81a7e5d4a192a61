"""What one batch item is for each command: which inputs it takes, what it writes, and the work itself.

An item's outputs mirror its input's stem in the output folder (``photo.jpg`` → ``photo.avatar/``;
``clip.mp4`` → ``clip.listener.mp4`` and its siblings; ``clip.mp4`` → ``clip.motion.npz`` [+ ``clip.csv``];
``x.jpg`` / ``x.mp4`` → ``x.perception.json`` + ``.csv``, ``.png`` [+ ``.vtt`` for clips]).
:func:`run_job` runs in a worker process and writes into a staging folder the driver then moves from
(:mod:`avatar.batch.runner`); it calls the public surface (:mod:`avatar.api`) exactly as the commands do.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from avatar.core.errors import AvatarInputError

COMMANDS = ("fit", "listen", "track", "perceive")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac")
SUFFIXES = {"fit": PHOTO_SUFFIXES, "listen": VIDEO_SUFFIXES + AUDIO_SUFFIXES, "track": VIDEO_SUFFIXES,
            "perceive": PHOTO_SUFFIXES + VIDEO_SUFFIXES}
#: The options each command takes in a batch, with their defaults (as the single-file commands').
DEFAULTS = {
    "fit": {"quality": "default", "face_index": None, "prior": "gaussian"},
    "listen": {"avatar": None, "style": None, "seed": 0, "size": 256, "side_by_side": False},
    "track": {"csv": False},
    "perceive": {"face": "all", "labels": None},
}


@dataclass(frozen=True)
class Job:
    """One input of a batch.

    Attributes:
        command: ``fit``, ``listen`` or ``track``.
        input: the input file.
        options: the command's options (JSON values; see :data:`DEFAULTS`).
    """

    command: str
    input: Path
    options: dict = field(default_factory=dict, hash=False)

    @property
    def stem(self) -> str:
        return self.input.stem

    @property
    def outputs(self) -> list[str]:
        """Names of what the item writes, relative to the output folder."""
        return output_names(self.command, self.stem, self.options, self.input.suffix)


def output_names(command: str, stem: str, options: dict, suffix: str = "") -> list[str]:
    """The file and folder names an item with this ``stem`` (and input ``suffix``) writes."""
    if command == "perceive":
        kinds = ("json", "csv", "png") if suffix.lower() in PHOTO_SUFFIXES else ("json", "csv", "png", "vtt")
        return [f"{stem}.perception.{kind}" for kind in kinds]
    if command == "fit":
        return [f"{stem}.avatar"]
    if command == "listen":
        return [f"{stem}.listener.mp4", f"{stem}.listener.motion.npz", f"{stem}.listener.csv", f"{stem}.listener.json"]
    return [f"{stem}.motion.npz"] + ([f"{stem}.csv"] if options.get("csv") else [])


def check_options(command: str, options: dict) -> dict:
    """The command's options with defaults filled in, checked before any work.

    Raises:
        AvatarInputError: an unknown command or option, or a bad value (the message names the flag).
    """
    if command not in COMMANDS:
        raise AvatarInputError(f"unknown batch command {command!r}; use one of {', '.join(COMMANDS)}")
    unknown = sorted(set(options) - set(DEFAULTS[command]))
    if unknown:
        raise AvatarInputError(f"avatar batch {command} does not take {', '.join(unknown)}")
    merged = {**DEFAULTS[command], **{k: v for k, v in options.items() if v is not None}}
    if command == "fit":
        from avatar.api import check_fit_options

        check_fit_options(merged["quality"], merged["face_index"], merged["prior"])
    elif command == "perceive":
        from avatar.api import check_perceive_options

        check_perceive_options(merged["face"], merged["labels"])
    elif command == "listen":
        from avatar.api import style_caption

        style_caption(merged["style"])
        if not 32 <= int(merged["size"]) <= 2048:
            raise AvatarInputError(f"--size must be between 32 and 2048 pixels, got {merged['size']}")
        if merged["avatar"] is not None:
            path = Path(merged["avatar"]).resolve()
            if not (path / "avatar.json").is_file():
                raise AvatarInputError(f"--avatar {merged['avatar']}: not an avatar bundle folder (no avatar.json)")
            merged["avatar"] = str(path)
    return merged


def list_inputs(command: str, sources) -> list[Path]:
    """The inputs of a batch: the files of the given folders (not recursive) and files that the command reads,
    sorted; other files in the folders are left alone.

    Raises:
        AvatarInputError: a path that does not exist, no input at all, or two inputs with the same stem (their
            outputs would collide).
    """
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    found: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found += sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES[command])
        elif source.is_file():
            found.append(source)
        else:
            raise AvatarInputError(f"{source} not found; give a folder of inputs or input files")
    if not found:
        kinds = ", ".join(s.lstrip(".") for s in SUFFIXES[command])
        raise AvatarInputError(f"no inputs for avatar batch {command} in {', '.join(map(str, sources))} (it reads {kinds})")
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise AvatarInputError(f"{stems[path.stem].name} and {path.name} would write the same outputs; rename one")
        stems[path.stem] = path
    return [p.resolve() for p in found]


def run_job(job: Job, staging: Path) -> dict:
    """Do one item, writing its outputs into ``staging`` (runs in a worker).

    Returns:
        ``{"seconds", "peak_rss_mb"}`` of this worker.

    Raises:
        AvatarInputError: the input is bad (the command's own one-line error).
    """
    import avatar.api as api

    tic = time.perf_counter()
    options = job.options
    if job.command == "fit":
        made = api.fit(job.input, quality=options["quality"], face_index=options["face_index"], prior=options["prior"])
        made.save(staging / job.outputs[0])
    elif job.command == "listen":
        api.listen(job.input, out=staging / job.outputs[0], avatar=options["avatar"], style=options["style"],
                   seed=int(options["seed"]), size=int(options["size"]), side_by_side=bool(options["side_by_side"]))
    elif job.command == "perceive":
        kinds = [name.rsplit(".", 1)[1] for name in job.outputs]
        api.perceive_to_files(job.input, {kind: staging / name for kind, name in zip(kinds, job.outputs)},
                              labels=options["labels"], face=options["face"])
    else:
        from avatar.core.export.livelink import write_livelink_csv

        motion = api.track(job.input).to_motion()
        motion.save(staging / job.outputs[0])
        if options.get("csv"):
            write_livelink_csv(staging / job.outputs[1], motion)
    return {"seconds": round(time.perf_counter() - tic, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
