"""One progress bar for a command: a rich ``Progress`` turned into the surface's ``callback(stage, fraction)``."""

from __future__ import annotations

from avatar.core.errors import AvatarInputError


def stage_progress(progress, stages: dict[str, tuple[float, str]]):
    """A ``callback(stage, fraction)`` that moves one bar through weighted stages.

    Args:
        progress: a rich ``Progress`` (one task is added), a callable (returned as it is) or ``None``.
        stages: ``{stage: (share of the bar, text shown)}`` in the order the stages run.
    """
    if progress is None:
        return lambda stage, fraction: None
    if hasattr(progress, "add_task") and hasattr(progress, "update"):
        order = list(stages)
        task = progress.add_task(stages[order[0]][1], total=1.0)

        def update(stage: str, fraction: float) -> None:
            done = sum(stages[s][0] for s in order[: order.index(stage)]) if stage in stages else 0.0
            share, text = stages.get(stage, (0.0, stage))
            progress.update(task, completed=min(done + share * fraction, 1.0), description=text)

        return update
    if callable(progress):
        return progress
    raise AvatarInputError("progress must be a rich Progress, a callable(stage, fraction) or None")


def check_free(path, force: bool, kind: str = "folder") -> None:
    """Refuse an existing output without ``force`` (before any work); a bundle must be a folder."""
    from pathlib import Path

    path = Path(path)
    if (path.exists() or path.is_symlink()) and not force:
        raise AvatarInputError(f"{path} exists; pass --force to overwrite")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise AvatarInputError(f"{path} is a file; give a folder name for the bundle (-o NAME.avatar)")
