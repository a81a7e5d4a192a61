"""The batch's memory on disk: which items are finished (``batch_manifest.json``) and what happened
(``batch_report.json``), both rewritten atomically after every item.

``batch_manifest.json``: ``{"format": "avatar-batch-manifest/1", "command", "items": {stem: {"input", "sha256",
"options", "outputs", "finished"}}}``. A rerun skips an item only when the manifest lists it with the same
input hash and options and all its outputs are there — not because a file of that name exists.

``batch_report.json``: ``{"command", "backend", "workers", "done": [input, ...], "skipped": [...], "failed":
[{"input", "error"}], "seconds", "items_per_minute", "interrupted", "peak_rss_mb", "threads_per_worker"}``;
valid JSON at every moment, so a crash mid-batch leaves a report of what finished.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from avatar.core.io import atomic_write_text

MANIFEST_FILE = "batch_manifest.json"
REPORT_FILE = "batch_report.json"
MANIFEST_FORMAT = "avatar-batch-manifest/1"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """The finished items of an output folder (see the module docstring)."""

    def __init__(self, out_dir: Path, command: str) -> None:
        self.path = Path(out_dir) / MANIFEST_FILE
        self.command = command
        self.items: dict[str, dict] = {}
        if self.path.is_file():
            try:
                document = json.loads(self.path.read_text())
            except ValueError:
                document = {}
            if document.get("format") == MANIFEST_FORMAT and document.get("command") == command:
                self.items = dict(document.get("items", {}))

    def is_finished(self, stem: str, sha256: str, options: dict, out_dir: Path) -> bool:
        entry = self.items.get(stem)
        return (entry is not None and entry.get("sha256") == sha256 and entry.get("options") == options
                and all((out_dir / name).exists() for name in entry.get("outputs", [])))

    def owns(self, stem: str) -> bool:
        """Whether the outputs of ``stem`` were written by an earlier batch into this folder."""
        return stem in self.items

    def record(self, stem: str, input_path: Path, sha256: str, options: dict, outputs: list[str]) -> None:
        self.items[stem] = {"input": str(input_path), "sha256": sha256, "options": options, "outputs": outputs,
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.save()

    def save(self) -> None:
        document = {"format": MANIFEST_FORMAT, "command": self.command, "items": self.items}
        atomic_write_text(self.path, json.dumps(document, indent=1) + "\n", force=True)


class Report:
    """``batch_report.json``, rewritten after every change."""

    def __init__(self, out_dir: Path, command: str, backend: str, workers: int, threads: int) -> None:
        self.path = Path(out_dir) / REPORT_FILE
        self.start = time.perf_counter()
        self.document = {"command": command, "backend": backend, "workers": workers, "threads_per_worker": threads,
                         "done": [], "skipped": [], "failed": [], "retried": [], "seconds": 0.0,
                         "items_per_minute": 0.0, "peak_rss_mb": 0.0, "interrupted": False}

    def add(self, key: str, value, peak_rss_mb: float | None = None) -> None:
        self.document[key].append(value)
        if peak_rss_mb is not None:
            self.document["peak_rss_mb"] = max(self.document["peak_rss_mb"], float(peak_rss_mb))
        self.save()

    def save(self, interrupted: bool = False) -> dict:
        seconds = time.perf_counter() - self.start
        self.document["seconds"] = round(seconds, 3)
        self.document["items_per_minute"] = round(60.0 * len(self.document["done"]) / max(seconds, 1e-9), 3)
        self.document["interrupted"] = bool(interrupted or self.document["interrupted"])
        atomic_write_text(self.path, json.dumps(self.document, indent=1) + "\n", force=True)
        return self.document
