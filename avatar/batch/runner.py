"""The batch driver: lists the inputs, skips finished ones, hands items to workers, survives their deaths,
moves finished outputs into place, and keeps the manifest and the report current.

Workers are local processes (:class:`LocalPool`, ``multiprocessing`` with the spawn start method) or Ray actors
(:class:`RayPool`, on a cluster or a local Ray). Either way one item is in flight per worker, and a worker writes
into its own staging folder, ``OUT_DIR/.batch-staging/<stem>-<attempt>/``; only the driver moves finished outputs
into ``OUT_DIR`` (one atomic rename each). So a worker killed mid-item leaves nothing but its staging folder,
which the driver deletes before it gives the item to another worker; SIGINT or SIGTERM to the driver stops the
workers (their atomic writers clean up), deletes the staging folders and writes a report that says what finished.
On a cluster, ``OUT_DIR`` must be on a file system the workers share with the driver.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from avatar.batch.jobs import Job, check_options, list_inputs
from avatar.batch.manifest import Manifest, Report, file_sha256
from avatar.core.errors import AvatarInputError
from avatar.core.io import commit

STAGING = ".batch-staging"
#: Peak resident memory of one worker per command (MB): ``scripts/bench_batch.py`` measured 1057–1097 (fit),
#: 641–769 (listen), 476–536 (track) on the shipped models (docs/BENCHMARKS.md), rounded up; the worker count is
#: capped so that workers × this fits 80 % of the free memory.
PEAK_RSS_MB = {"fit": 1200.0, "listen": 850.0, "track": 600.0, "perceive": 650.0}


def available_memory_mb() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` (MB); the physical memory where that file is missing."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def plan_workers(command: str, requested: int | None, items: int, cores: int | None = None,
                 memory_mb: float | None = None) -> tuple[int, int, str | None]:
    """``(workers, threads per worker, note)``: the requested count (default: the cores), capped by the items and
    by memory (:data:`PEAK_RSS_MB`); the cores are shared out as threads."""
    cores = cores or os.cpu_count() or 1
    if requested is not None and int(requested) < 1:
        raise AvatarInputError(f"--workers must be 1 or more, got {requested}")
    wanted = int(requested) if requested is not None else cores
    memory_mb = available_memory_mb() if memory_mb is None else memory_mb
    by_memory = max(1, int(0.8 * memory_mb // PEAK_RSS_MB[command]))
    workers = max(1, min(wanted, by_memory, max(items, 1)))
    note = None
    if by_memory < wanted and by_memory < max(items, 1):
        note = (f"{workers} workers instead of {wanted}: each needs about {PEAK_RSS_MB[command]:.0f} MB and "
                f"{memory_mb:.0f} MB are free")
    return workers, max(1, cores // workers), note


@dataclass
class Event:
    """What a pool reports: ``kind`` is ``done``, ``failed`` or ``died``; ``slot`` the worker."""

    kind: str
    slot: int
    payload: object = None
    retry: bool = False


class LocalPool:
    """Worker processes on this machine (see the module docstring)."""

    backend = "local"

    def __init__(self, workers: int, threads: int) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self.threads = threads
        self._slots = [self._start() for _ in range(workers)]
        self._busy: set[int] = set()

    def _start(self):
        from avatar.batch.worker import worker_main

        parent, child = self._context.Pipe()
        process = self._context.Process(target=worker_main, args=(child, self.threads), daemon=True,
                                        name="avatar-batch-worker")
        process.start()
        child.close()
        return process, parent

    def pid(self, slot: int) -> int:
        return self._slots[slot][0].pid

    def submit(self, slot: int, job: Job, staging: Path) -> None:
        self._slots[slot][1].send((job, str(staging)))
        self._busy.add(slot)

    def wait(self, timeout: float) -> list[Event]:
        from multiprocessing.connection import wait

        handles = {}
        for slot, (process, connection) in enumerate(self._slots):
            handles[process.sentinel] = slot
            if slot in self._busy:
                handles[connection] = slot
        events = []
        for slot in sorted({handles[h] for h in wait(list(handles), timeout)}):
            process, connection = self._slots[slot]
            message = None
            try:
                if connection.poll():
                    message = connection.recv()
            except (EOFError, OSError):
                message = None
            if message is not None:
                self._busy.discard(slot)
                events.append(Event(message[0], slot, message[1], bool(message[2]) if len(message) > 2 else False))
            elif not process.is_alive():
                process.join()
                died = slot in self._busy
                self._busy.discard(slot)
                self._slots[slot] = self._start()  # a fresh worker takes the slot
                if died:
                    events.append(Event("died", slot, f"worker process died (exit code {process.exitcode})", True))
        return events

    def stop(self, interrupt: bool = False) -> None:
        for process, connection in self._slots:
            try:
                if interrupt:
                    process.terminate()  # SIGTERM: the worker's writers clean up
                else:
                    connection.send(None)
            except (OSError, ValueError):
                pass
        for process, _ in self._slots:
            process.join(15.0)
            if process.is_alive():
                process.kill()
                process.join()


class RayPool:
    """Ray actors, on the cluster at ``address`` or on a local Ray (``address`` ``None`` or ``"local"``)."""

    backend = "ray"

    def __init__(self, workers: int, threads: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as error:
            raise AvatarInputError("--ray needs Ray: pip install -e \".[scale]\"") from error
        from avatar.batch.worker import RayWorker

        self.ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            local = address in (None, "", "local")
            ray.init(address=None if local else address, num_cpus=workers * threads if local else None,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        self._actor = ray.remote(num_cpus=threads, max_restarts=0)(RayWorker)
        self.threads = threads
        self._actors = [self._actor.remote(threads) for _ in range(workers)]
        self._pids = self.ray.get([actor.pid.remote() for actor in self._actors])
        self._futures: dict = {}

    def pid(self, slot: int) -> int:
        return self._pids[slot]

    def submit(self, slot: int, job: Job, staging: Path) -> None:
        self._futures[self._actors[slot].run.remote(job, str(staging))] = slot

    def wait(self, timeout: float) -> list[Event]:
        if not self._futures:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self._futures), num_returns=1, timeout=timeout)
        events = []
        for future in ready:
            slot = self._futures.pop(future)
            try:
                message = self.ray.get(future)
                events.append(Event(message[0], slot, message[1], bool(message[2]) if len(message) > 2 else False))
            except self.ray.exceptions.RayActorError as error:
                self._actors[slot] = self._actor.remote(self.threads)
                self._pids[slot] = self.ray.get(self._actors[slot].pid.remote())
                events.append(Event("died", slot, f"worker died ({type(error).__name__})", True))
        return events

    def stop(self, interrupt: bool = False) -> None:
        for actor in self._actors:
            self.ray.kill(actor)
        if self._owns:
            self.ray.shutdown()


class _Stop:
    """SIGINT / SIGTERM to the driver set a flag the loop checks (handlers only in the main thread)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_batch(command: str, sources, out_dir, options: dict | None = None, workers: int | None = None,
              ray: str | None = None, retries: int = 2, force: bool = False, progress=None) -> dict:
    """Run one command over many inputs (see the module docstring).

    Args:
        command: ``fit``, ``listen`` or ``track``.
        sources: a folder, a file, or a list of them.
        out_dir: the output folder (created when missing).
        options: the command's options (:data:`avatar.batch.jobs.DEFAULTS`).
        workers: how many workers (default: the cores, capped by memory).
        ray: ``None`` for local processes; ``"local"`` (or ``"auto"``) for a local Ray; a Ray address.
        retries: how many times an item whose worker died (or that failed unexpectedly) is tried again.
        force: replace outputs in ``out_dir`` that an earlier batch did not write.
        progress: ``callback(event: dict)`` with ``event`` in ``planned``, ``started``, ``done``, ``skipped``,
            ``failed``, ``retry``; or ``None``.

    Returns:
        the report document (``batch_report.json``).

    Raises:
        AvatarInputError: bad arguments (nothing is written then).
    """
    options = check_options(command, dict(options or {}))
    if int(retries) < 0:
        raise AvatarInputError(f"--retries must be 0 or more, got {retries}")
    inputs = list_inputs(command, sources)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AvatarInputError(f"{out_dir} is a file; give a folder for the outputs (-o DIR)")
    emit = progress or (lambda event: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging_root = out_dir / STAGING
    shutil.rmtree(staging_root, ignore_errors=True)  # left by a driver that was killed
    manifest = Manifest(out_dir, command)
    todo, skipped, blocked = deque(), [], []
    for path in inputs:
        job, sha = Job(command, path, options), file_sha256(path)
        if manifest.is_finished(job.stem, sha, options, out_dir):
            skipped.append(path)
        elif not force and not manifest.owns(job.stem) and any((out_dir / n).exists() for n in job.outputs):
            taken = next(n for n in job.outputs if (out_dir / n).exists())
            blocked.append({"input": str(path), "error": f"{out_dir / taken} exists; pass --force to overwrite"})
        else:
            todo.append((job, sha))
    count, threads, note = plan_workers(command, workers, len(todo))
    use_ray = ray is not None
    report = Report(out_dir, command, "ray" if use_ray else "local", count if todo else 0, threads)
    emit({"event": "planned", "total": len(inputs), "todo": len(todo), "workers": count, "threads": threads,
          "note": note})
    for path in skipped:
        report.add("skipped", str(path))
        emit({"event": "skipped", "input": str(path)})
    for failure in blocked:
        report.add("failed", failure)
        emit({"event": "failed", **failure})
    if not todo:
        return report.save()

    attempts: Counter = Counter()
    running: dict[int, tuple[Job, str, Path]] = {}
    staging_root.mkdir(exist_ok=True)
    pool = None
    with _Stop() as stop:
        try:
            pool = RayPool(count, threads, None if ray in ("local", "auto") else ray) if use_ray else LocalPool(count, threads)
            while (todo or running) and stop.signal is None:
                for slot in range(count):
                    if slot not in running and todo:
                        job, sha = todo.popleft()
                        attempts[job.stem] += 1
                        staging = staging_root / f"{job.stem}-{attempts[job.stem]}"
                        shutil.rmtree(staging, ignore_errors=True)
                        staging.mkdir()
                        pool.submit(slot, job, staging)
                        running[slot] = (job, sha, staging)
                        emit({"event": "started", "input": str(job.input), "slot": slot, "attempt": attempts[job.stem],
                              "pid": pool.pid(slot)})
                events = pool.wait(0.25)
                if stop.signal is not None:  # what finishes now is redone by the next run
                    break
                for event in events:
                    job, sha, staging = running.pop(event.slot)
                    if event.kind == "done":
                        for name in job.outputs:
                            commit(staging / name, out_dir / name, force=True)
                        manifest.record(job.stem, job.input, sha, options, job.outputs)
                        report.add("done", str(job.input), event.payload.get("peak_rss_mb"))
                        emit({"event": "done", "input": str(job.input), **event.payload})
                    elif event.retry and attempts[job.stem] <= retries:
                        report.add("retried", {"input": str(job.input), "error": event.payload})
                        emit({"event": "retry", "input": str(job.input), "error": event.payload})
                        todo.append((job, sha))
                    else:
                        failure = {"input": str(job.input), "error": event.payload}
                        report.add("failed", failure)
                        emit({"event": "failed", **failure})
                    shutil.rmtree(staging, ignore_errors=True)
        finally:
            interrupted = stop.signal is not None
            if pool is not None:
                pool.stop(interrupt=interrupted or bool(running))
            shutil.rmtree(staging_root, ignore_errors=True)
            report.document["interrupted_by"] = stop.signal
            document = report.save(interrupted=interrupted)
    return document
