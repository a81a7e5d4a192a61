"""The two kinds of batch worker: a local process (:func:`worker_main`) and a Ray actor (:class:`RayWorker`).

Both run :func:`avatar.batch.jobs.run_job` for one item at a time and answer ``("done", result)`` or
``("failed", message, retry)``: input errors (the command's own one-line message) are not retried, anything
else is. A worker keeps its imports and models between items, so they load once per worker. It runs torch,
BLAS and numba on ``threads`` threads, so that workers × threads fit the machine's cores. SIGTERM becomes a
``KeyboardInterrupt`` in a worker, so the atomic writers remove what they had begun; Ctrl-C reaches the driver
only (which stops the workers itself).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def limit_threads(threads: int) -> None:
    """Run this process's numeric libraries on ``threads`` threads (before they are imported, where possible)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def attempt(job, staging: str):
    """One item: ``("done", result)`` or ``("failed", message, retry)``."""
    from avatar.batch.jobs import run_job
    from avatar.core.errors import AvatarInputError

    try:
        return ("done", run_job(job, Path(staging)))
    except AvatarInputError as error:
        return ("failed", str(error), False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # anything else may be transient (memory, a flaky file system): retried
        return ("failed", f"{type(error).__name__}: {error}", True)


def worker_main(connection, threads: int) -> None:
    """A local worker process: items arrive on ``connection`` as ``(job, staging)``, ``None`` ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        limit_threads(threads)
        while True:
            message = connection.recv()
            if message is None:
                return
            connection.send(attempt(*message))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return


class RayWorker:
    """A Ray actor with the same work as a local worker (:func:`attempt`)."""

    def __init__(self, threads: int) -> None:
        limit_threads(threads)

    def run(self, job, staging: str):
        return attempt(job, staging)

    def pid(self) -> int:
        return os.getpid()
