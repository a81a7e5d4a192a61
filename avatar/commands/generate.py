"""``avatar generate`` and ``avatar edit``: text → avatars (:func:`avatar.api.generate`, :func:`avatar.api.edit`),
written as bundles in the same format as ``avatar fit``.

``avatar generate "TEXT" [-n N] [--seed S] [--guidance G] [-o DIR] [--force]``: with ``N = 1``, ``-o``
names the bundle (default ``<first words of the text>.avatar``); with ``N > 1`` it names a folder that
receives ``00.avatar``, ``01.avatar``, ... ``avatar edit BUNDLE "TEXT" [-o DIR] [--force]`` writes a new
bundle (default ``<bundle stem>-edited.avatar``). Outputs are checked before any work and written atomically.
"""

from __future__ import annotations

import numbers
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from avatar.commands.progress import check_free, stage_progress
from avatar.core.errors import AvatarInputError

STAGES = {"load": (0.35, "loading the generator and the head model"), "sample": (0.1, "sampling identity codes"),
          "build": (0.25, "baking meshes, textures and previews"), "write": (0.3, "writing the bundles")}


@dataclass
class GenerateResult:
    """What ``avatar generate`` / ``avatar edit`` made: the bundle (N = 1, edits) or folder of bundles, the
    bundle folders, their ``report.json`` documents, notes for the user and the command's wall time."""

    out_dir: Path
    bundles: list[Path]
    reports: list[dict]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"note: {w}" for w in self.warnings]
        kind = "edited avatar" if self.reports and self.reports[0].get("edit") else "avatar"
        if len(self.bundles) == 1:
            lines.append(f"wrote {self.bundles[0]}/  (avatar.json, avatar.safetensors, texture.png, mesh.glb, mesh.obj, "
                         "preview.png, report.json)")
        else:
            lines.append(f"wrote {len(self.bundles)} {kind}s in {self.out_dir}/ ({', '.join(p.name for p in self.bundles[:4])}"
                         f"{', ...' if len(self.bundles) > 4 else ''})")
        for report in self.reports[:8]:
            checks = report.get("requested", [])
            if checks and report.get("edit"):
                moved = sum(1 for c in checks if c.get("moved_as_asked", c.get("satisfied")))
                words = ", ".join(f"{c['phrase']} {c['change_std']:+.2f} std" if "change_std" in c
                                  else f"{c['phrase']} {'✓' if c['satisfied'] else '✗'}" for c in checks)
                lines.append(f"  {report.get('name', '')}: {moved}/{len(checks)} requested changes made ({words}); "
                             f"unmentioned attributes moved at most {report.get('max_preserved_change_std', 0.0):.2f} std")
            elif checks:
                done = sum(1 for c in checks if c["satisfied"])
                words = ", ".join(f"{c['phrase']} {'✓' if c['satisfied'] else '✗'}" for c in checks)
                lines.append(f"  {report.get('name', '')}: {done}/{len(checks)} requested attributes measured as asked ({words})")
            if report.get("hair") is not None:
                lines.append(f"  {report.get('name', '')} hair: {_hair_words(report['hair'])}")
        lines.append(f"{self.seconds:.1f} s")
        return "\n".join(lines)


def _hair_words(hair: dict) -> str:
    """``"bun, grey"`` / ``"short, black, fringe (drawn: not asked for)"`` from a report's hair entry."""
    words = ", ".join(w for w in (hair["style"], hair.get("colour"), "fringe" if hair.get("fringe") else None) if w)
    asked = any(v is not None for v in hair.get("requested", {}).values())
    return words if asked else f"{words} (drawn: not asked for)"


def prompt_slug(text: str, words: int = 6) -> str:
    """A file-name stem from the first words of a prompt (``"generated"`` when it has none)."""
    parts = re.findall(r"[a-z0-9]+", text.lower())[:words]
    return "-".join(parts)[:48].strip("-") or "generated"


def run_generate_command(text: str, n: int = 1, seed: int = 0, guidance: float | None = None,
                         out_dir: str | os.PathLike | None = None, force: bool = False, progress=None,
                         steps: int | None = None, pipeline=None, head=None) -> GenerateResult:
    """``avatar generate``: ``out_dir`` is the bundle (N = 1) or the folder of bundles (default from the
    prompt's first words); ``progress`` a rich ``Progress``, a ``callback(stage, fraction)`` or ``None``; the
    rest as for :func:`avatar.api.generate`."""
    from avatar.api import generate
    from avatar.core.bundle import write_bundle
    from avatar.core.io import atomic_output_dir
    from avatar.generator.captions import check_prompt

    start = time.perf_counter()
    if not isinstance(n, numbers.Integral) or not 1 <= n <= 100:
        raise AvatarInputError(f"-n must be between 1 and 100, got {n}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise AvatarInputError(f"--seed must be a non-negative integer, got {seed}")
    if guidance is not None and not (isinstance(guidance, (int, float)) and 0.0 <= float(guidance) <= 20.0):
        raise AvatarInputError(f"--guidance must be between 0 and 20, got {guidance}")
    parsed = check_prompt(text)  # reject bad prompts before loading anything
    slug = prompt_slug(parsed.text) if parsed.text else "random"
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{slug}.avatar" if n == 1 else slug)
    check_free(out_dir, force)
    callback = stage_progress(progress, STAGES)
    avatars = generate(parsed.text, n, seed, guidance, steps, callback, pipeline=pipeline, head=head)
    callback("write", 0.0)
    names = [out_dir.name] if n == 1 else [f"{i:02d}.avatar" for i in range(n)]
    for a, name in zip(avatars, names):
        a.report["name"] = name
        a.report["seconds_total"] = round(time.perf_counter() - start, 3)
    if n == 1:
        write_bundle(out_dir, avatars[0].bundle, force=force)
    else:
        with atomic_output_dir(out_dir, force=force) as tmp:
            for i, (a, name) in enumerate(zip(avatars, names)):
                write_bundle(tmp / name, a.bundle)
                callback("write", (i + 1) / n)
    callback("write", 1.0)
    paths = [out_dir] if n == 1 else [out_dir / name for name in names]
    return GenerateResult(out_dir, paths, [a.report for a in avatars], list(avatars[0].report["warnings"]),
                          time.perf_counter() - start)


def run_edit_command(bundle_dir: str | os.PathLike, text: str, out_dir: str | os.PathLike | None = None,
                     force: bool = False, progress=None, strength: float | None = None,
                     seed: int = 0, pipeline=None, head=None) -> GenerateResult:
    """``avatar edit``: ``out_dir`` defaults to ``<bundle stem>-edited.avatar`` beside the input; the rest as
    for :func:`avatar.api.edit`."""
    from avatar.api import edit, load
    from avatar.generator.captions import check_prompt

    start = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    if not check_prompt(text).text:
        raise AvatarInputError("the edit text is empty; say what to change, e.g. 'a longer nose, fuller lips'")
    if strength is not None and not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
        raise AvatarInputError(f"--strength must be in (0, 1], got {strength}")
    if out_dir is None:
        stem = bundle_dir.name[: -len(".avatar")] if bundle_dir.name.endswith(".avatar") else bundle_dir.name
        out_dir = bundle_dir.parent / f"{stem}-edited.avatar"
    out_dir = Path(out_dir)
    if out_dir.resolve() == bundle_dir.resolve():
        raise AvatarInputError("the output would replace the bundle being edited; pass another -o")
    check_free(out_dir, force)
    callback = stage_progress(progress, STAGES)
    callback("load", 0.0)
    source = load(bundle_dir)
    callback("sample", 0.0)
    edited = edit(source, text, strength=strength, seed=seed, pipeline=pipeline, head=head)
    callback("build", 1.0)
    edited.report["name"] = out_dir.name
    edited.report["seconds_total"] = round(time.perf_counter() - start, 3)
    callback("write", 0.0)
    edited.save(out_dir, force=force)
    callback("write", 1.0)
    return GenerateResult(out_dir, [out_dir], [edited.report], list(edited.report["warnings"]),
                          time.perf_counter() - start)
