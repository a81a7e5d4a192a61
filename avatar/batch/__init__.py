"""Many inputs, one command: ``avatar batch fit|listen|track|perceive`` and its Python API.

    from avatar.batch import fit_many
    report = fit_many("photos/", "avatars/", workers=2)             # local processes
    report = fit_many("photos/", "avatars/", ray="auto")            # a local Ray; or ray="ray://head:10001"

Outputs mirror the inputs (``photo.jpg`` → ``avatars/photo.avatar/``), each written atomically;
``batch_report.json`` and ``batch_manifest.json`` in the output folder say what finished, and a rerun does only
what is missing, failed or changed (:mod:`avatar.batch.manifest`). Workers load their models once; a worker that
dies mid-item has its item retried on another; SIGINT/SIGTERM stop the batch with nothing half-written
(:mod:`avatar.batch.runner`). Ray is optional (``pip install -e ".[scale]"``).
"""

from __future__ import annotations

from avatar.batch.runner import run_batch

__all__ = ["fit_many", "listen_many", "perceive_many", "run_batch", "track_many"]


def fit_many(paths, out_dir, ray: str | None = None, workers: int | None = None, retries: int = 2,
             force: bool = False, progress=None, **options) -> dict:
    """``avatar fit`` over photos (a folder, files, or a list): ``out_dir/<stem>.avatar/`` each.

    ``options``: ``quality``, ``face_index``, ``prior`` (as :func:`avatar.fit`); the rest as
    :func:`avatar.batch.runner.run_batch`. Returns the report (``batch_report.json``).
    """
    return run_batch("fit", paths, out_dir, options, workers, ray, retries, force, progress)


def listen_many(paths, out_dir, ray: str | None = None, workers: int | None = None, retries: int = 2,
                force: bool = False, progress=None, **options) -> dict:
    """``avatar listen`` over speaker clips: ``out_dir/<stem>.listener.mp4`` (+ ``.motion.npz``, ``.csv``, ``.json``).

    ``options``: ``avatar`` (a bundle folder; default the built-in avatar), ``style``, ``seed``, ``size``,
    ``side_by_side`` (as :func:`avatar.listen`). Returns the report.
    """
    return run_batch("listen", paths, out_dir, options, workers, ray, retries, force, progress)


def track_many(paths, out_dir, ray: str | None = None, workers: int | None = None, retries: int = 2,
               force: bool = False, progress=None, **options) -> dict:
    """``avatar track`` over videos: ``out_dir/<stem>.motion.npz`` (+ ``<stem>.csv`` with ``csv=True``).
    Returns the report."""
    return run_batch("track", paths, out_dir, options, workers, ray, retries, force, progress)


def perceive_many(paths, out_dir, ray: str | None = None, workers: int | None = None, retries: int = 2,
                  force: bool = False, progress=None, **options) -> dict:
    """``avatar perceive`` over photos and clips: ``out_dir/<stem>.perception.json`` (+ ``.csv``, ``.png``, and
    ``.vtt`` for clips). ``options``: ``face``, ``labels`` (as :func:`avatar.perceive`). Returns the report."""
    return run_batch("perceive", paths, out_dir, options, workers, ray, retries, force, progress)
