"""Bodies of ``avatar generate`` and ``avatar edit``, and the Python :func:`generate`.

``avatar generate "TEXT" [-n N] [--seed S] [--guidance G] [-o DIR] [--force]`` samples N identities
for the text and writes them as bundles in the same format as ``avatar fit`` (avatar.json, codes,
texture.png, mesh.glb with the 53 ARKit morph targets, mesh.obj, preview.png, report.json). With
``N = 1``, ``-o`` names the bundle (default ``<first words of the text>.avatar``); with ``N > 1`` it
names a folder that receives ``00.avatar``, ``01.avatar``, ...

``avatar edit BUNDLE "TEXT" [-o DIR] [--force]`` edits a bundle's codes with text and writes a new
bundle (default ``<bundle stem>-edited.avatar``): geometry edits move the bundle's own mesh by the
change of the model's neutral mesh (fitted detail is kept); texture edits multiply the bundle's own
texture by the change of the albedo model (so a fitted photo texture is edited, not replaced); what the
text does not mention is kept (:meth:`avatar.generator.pipeline.GeneratorPipeline.edit`).

Both check the output location before any work, write atomically, report progress to a rich
``Progress``, a ``callback(stage, fraction)`` or ``None``, and raise
:class:`~avatar.errors.AvatarInputError` for bad input (the CLI prints one line, exit code 2).
"""

from __future__ import annotations

import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avatar import __version__
from avatar.errors import AvatarInputError
from avatar.generator.attributes import ATTRIBUTES

STAGE_WEIGHTS = {"load": 0.35, "sample": 0.1, "build": 0.25, "write": 0.3}
STAGE_TEXT = {"load": "loading the generator and the head model", "sample": "sampling identity codes",
              "build": "baking meshes, textures and previews", "write": "writing the bundles"}
#: Texture atlas side of generated avatars (the albedo model is 128 px per tile; 512 keeps its detail).
TEXTURE_SIZE = 512
LEVEL_WORDS = {-2: "very low", -1: "low", 0: "average", 1: "high", 2: "very high"}


@dataclass
class GenerateResult:
    """What ``avatar generate`` / ``avatar edit`` made.

    Attributes:
        out_dir: the bundle (N = 1, edits) or the folder of bundles.
        bundles: the bundle folders written.
        reports: their ``report.json`` documents.
        warnings: notes for the user.
        seconds: wall time of the whole command.
    """

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
                moved = sum(1 for c in checks if c.get("moved_as_asked"))
                words = ", ".join(f"{c['phrase']} {c.get('change_std', 0.0):+.2f} std" for c in checks)
                lines.append(f"  {report.get('name', '')}: {moved}/{len(checks)} requested changes made ({words}); "
                             f"unmentioned attributes moved at most {report.get('max_preserved_change_std', 0.0):.2f} std")
            elif checks:
                done = sum(1 for c in checks if c["satisfied"])
                words = ", ".join(f"{c['phrase']} {'✓' if c['satisfied'] else '✗'}" for c in checks)
                lines.append(f"  {report.get('name', '')}: {done}/{len(checks)} requested attributes measured as asked ({words})")
        lines.append(f"{self.seconds:.1f} s")
        return "\n".join(lines)


def _progress_callback(progress):
    from avatar.fitting.command import _progress_callback as fit_progress  # same sink handling as `avatar fit`

    if progress is not None and hasattr(progress, "add_task") and hasattr(progress, "update"):
        task = progress.add_task(STAGE_TEXT["load"], total=1.0)
        order = list(STAGE_WEIGHTS)

        def update(stage: str, fraction: float) -> None:
            done = sum(STAGE_WEIGHTS[s] for s in order[: order.index(stage)]) if stage in order else 0.0
            progress.update(task, completed=min(done + STAGE_WEIGHTS.get(stage, 0.0) * fraction, 1.0),
                            description=STAGE_TEXT.get(stage, stage))

        return update
    return fit_progress(progress)


@contextmanager
def single_thread():
    """Run torch on one thread inside the block (restored after). Everything here is small tensors (a
    112-d MLP, a 4-view preview): on a 2-core machine a second OpenMP thread costs more in
    synchronisation than it gains, and on a busy one 50 sampling steps took 15 s instead of 0.2 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prompt_slug(text: str, words: int = 6) -> str:
    """A file-name stem from the first words of a prompt (``"generated"`` when it has none)."""
    parts = re.findall(r"[a-z0-9]+", text.lower())[:words]
    return "-".join(parts)[:48].strip("-") or "generated"


def _check_out(path: Path, force: bool) -> None:
    if (path.exists() or path.is_symlink()) and not force:
        raise AvatarInputError(f"{path} exists; pass --force to overwrite")
    if path.exists() and not path.is_dir():
        raise AvatarInputError(f"{path} is a file; give a folder name (-o NAME.avatar)")


def load_generator(directory=None):
    """The shipped :class:`~avatar.generator.pipeline.GeneratorPipeline` (``assets/generator``)."""
    from avatar.generator.pipeline import GeneratorPipeline

    return GeneratorPipeline.from_pretrained(directory)


def attribute_report(values: np.ndarray, bins, mentions=()) -> tuple[dict, list[dict]]:
    """Measured attributes with their level among the training identities, and the requests' checks.

    Args:
        values: one avatar's attributes, shape :math:`(16,)`.
        bins: the generator's :class:`~avatar.generator.captions.AttributeBins`.
        mentions: the prompt's requests.

    Returns:
        ``{name: {value, z, percentile, level}}`` and ``[{attribute, direction, phrase, satisfied}]``.
    """
    z = bins.standardise(values[None])[0]
    levels = bins.levels(values[None])[0]
    table = {}
    for i, name in enumerate(ATTRIBUTES):
        table[name] = {"value": round(float(values[i]), 4), "z": round(float(z[i]), 3),
                       "percentile": round(50 * (1 + math.erf(float(z[i]) / math.sqrt(2))), 1),
                       "level": LEVEL_WORDS[int(levels[i])]}
    ok = bins.satisfied(values[None], list(mentions))[0] if mentions else []
    checks = [{"attribute": m.attribute, "direction": "high" if m.direction > 0 else "low", "phrase": m.phrase,
               "satisfied": bool(s)} for m, s in zip(mentions, ok)]
    return table, checks


#: Probe identities of the head fingerprint (:func:`head_fingerprint`).
FINGERPRINT_CODES = 4
#: A head whose fingerprint differs by more than this (training std) from the generator's is another model.
#: Measured: weights trained on one face-model version kept their 97.5 % held-out accuracy on the next one,
#: whose probe attributes moved up to 0.18 std; a version 0.83 std away is another model.
FINGERPRINT_TOLERANCE = 0.25


def head_fingerprint(meter, geo_dim: int, tex_dim: int) -> list[list[float]]:
    """Attributes of a few fixed probe identities (the mean face and 3 seeded ones), shape ``(4, 16)``:
    what the generator's captions meant on the head it was trained on.

    Args:
        meter: the head's :class:`~avatar.generator.attributes.AttributeMeter`.
        geo_dim: size of ``z_geo``.
        tex_dim: size of ``z_tex``.
    """
    g = torch.Generator().manual_seed(12345)
    z_geo = torch.cat([torch.zeros(1, geo_dim), torch.randn(FINGERPRINT_CODES - 1, geo_dim, generator=g)])
    z_tex = torch.cat([torch.zeros(1, tex_dim), torch.randn(FINGERPRINT_CODES - 1, tex_dim, generator=g)])
    with torch.no_grad():
        return [[round(float(v), 5) for v in row] for row in meter(z_geo, z_tex)]


def head_mismatch(pipeline, head, meter) -> list[str]:
    """Warnings when ``head`` is not the head model the generator was trained on (another source, or
    the same source retrained: its fingerprint moved more than :data:`FINGERPRINT_TOLERANCE` std)."""
    record = pipeline.settings.record
    source = record.get("head_source")
    if source and source != head.source:
        return [f"the generator was trained on the {source} head; this avatar uses the {head.source} head — "
                "retrain it with scripts/train_generator.py for captions that match"]
    stored = record.get("head_fingerprint")
    if not stored:
        return []
    now = np.asarray(head_fingerprint(meter, pipeline.settings.geo_dim, pipeline.settings.tex_dim))
    shift = np.abs(now - np.asarray(stored)) / pipeline.settings.bins.std
    if float(shift.max()) > FINGERPRINT_TOLERANCE:
        return [f"the installed {head.source} head differs from the one the generator was trained on (attributes moved "
                f"up to {float(shift.max()):.2f} std); retrain it with scripts/train_generator.py"]
    return []


@dataclass
class GeneratedAvatars:
    """In-memory result of :func:`generate_bundles`."""

    bundles: list
    reports: list[dict]
    warnings: list[str]


@single_thread()
def generate_bundles(text: str, n: int = 1, seed: int = 0, guidance: float | None = None, steps: int | None = None,
                     pipeline=None, head=None, progress=None, with_preview: bool = True) -> GeneratedAvatars:
    """Sample identities for a prompt and assemble their bundles (nothing written), on one torch thread
    (:func:`single_thread`).

    Args:
        text: the prompt ("" = unconditional).
        n: how many avatars.
        seed: random seed.
        guidance: classifier-free guidance scale (default: the generator's).
        steps: DDIM steps (default: the generator's).
        pipeline: a :class:`~avatar.generator.pipeline.GeneratorPipeline` (default: shipped weights).
        head: a :class:`~avatar.fitting.head.HeadModel` (default ``load_head("auto")``).
        progress: ``callback(stage, fraction)``.
        with_preview: render ``preview.png``.

    Returns:
        the :class:`GeneratedAvatars`.
    """
    from avatar.fitting.head import load_head
    from avatar.generator.attributes import AttributeMeter
    from avatar.generator.bundles import bundle_from_head, preview_views

    report = progress or (lambda stage, fraction: None)
    timings = {}
    tic = time.perf_counter()
    report("load", 0.0)
    pipeline = pipeline or load_generator()
    pipeline._check_sampling(n, guidance, steps)
    head = head or load_head("auto")
    if head.geo_dim < pipeline.settings.geo_dim or head.tex_dim != pipeline.settings.tex_dim:
        raise AvatarInputError(
            f"the head model ({head.source}: {head.geo_dim} identity, {head.tex_dim} texture codes) does not fit the "
            f"generator ({pipeline.settings.geo_dim}, {pipeline.settings.tex_dim}); retrain it with scripts/train_generator.py"
        )
    timings["load"] = time.perf_counter() - tic
    report("load", 1.0)

    tic = time.perf_counter()
    report("sample", 0.0)
    out = pipeline(text, num_samples=n, seed=seed, guidance=guidance, steps=steps)
    timings["sample"] = time.perf_counter() - tic
    report("sample", 1.0)

    tic = time.perf_counter()
    meter = AttributeMeter.from_head(head)
    with torch.no_grad():
        values = meter(out.z_geo, out.z_tex).numpy()
        textures = [head.albedo(out.z_tex[i:i + 1], TEXTURE_SIZE)[0] for i in range(n)]
    warnings = list(out.warnings) + head_mismatch(pipeline, head, meter)
    sample_cfg = pipeline.settings.sample
    used_guidance = float(sample_cfg.get("guidance", 3.0) if guidance is None else guidance)
    used_steps = int(sample_cfg.get("steps", 25) if steps is None else steps)
    bundles, reports = [], []
    for i in range(n):
        table, checks = attribute_report(values[i], pipeline.settings.bins, out.prompt.mentions)
        document = {"prompt": out.prompt.text, "seed": int(seed), "index": i, "guidance": used_guidance,
                    "steps": used_steps, "requested": checks, "attributes": table, "warnings": warnings,
                    "clauses": out.prompt.clauses, "avatar_engine_version": __version__}
        bundle = bundle_from_head(head, out.z_geo[i], out.z_tex[i], textures[i],
                                  {"created_by": "avatar generate", "generate": {"prompt": out.prompt.text,
                                                                                  "seed": int(seed), "index": i,
                                                                                  "guidance": used_guidance}},
                                  report=document)
        if with_preview:
            bundle.preview = preview_views([bundle])
        bundles.append(bundle)
        reports.append(document)
        report("build", (i + 1) / n)
    timings["build"] = time.perf_counter() - tic
    for document in reports:
        document["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return GeneratedAvatars(bundles, reports, warnings)


def run_generate_command(text: str, n: int = 1, seed: int = 0, guidance: float | None = None,
                         out_dir: str | os.PathLike | None = None, force: bool = False, progress=None,
                         steps: int | None = None, pipeline=None, head=None) -> GenerateResult:
    """``avatar generate "TEXT" [-n N] [--seed S] [--guidance G] [-o DIR] [--force]``.

    Args:
        text: the prompt (English; "" samples unconditionally).
        n: how many avatars (1–100).
        seed: random seed.
        guidance: classifier-free guidance scale (default the generator's, 3).
        out_dir: bundle (N = 1) or folder of bundles (N > 1); default from the prompt's first words.
        force: replace existing output.
        progress: a rich ``Progress``, a ``callback(stage, fraction)`` or ``None``.
        steps: DDIM steps (default the generator's).
        pipeline: the generator (default: the shipped weights).
        head: the head model (default ``load_head("auto")``).

    Returns:
        the :class:`GenerateResult` (print ``.summary()``).

    Raises:
        AvatarInputError: bad prompt or options, existing output without ``force``.
    """
    from avatar.bundle import write_bundle
    from avatar.generator.captions import check_prompt
    from avatar.io import atomic_output_dir

    start = time.perf_counter()
    if not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= 100:
        raise AvatarInputError(f"-n must be between 1 and 100, got {n}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AvatarInputError(f"--seed must be a non-negative integer, got {seed}")
    parsed = check_prompt(text)  # reject bad prompts before loading anything
    if guidance is not None and not (isinstance(guidance, (int, float)) and 0.0 <= float(guidance) <= 20.0):
        raise AvatarInputError(f"--guidance must be between 0 and 20, got {guidance}")
    slug = prompt_slug(parsed.text) if parsed.text else "random"
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{slug}.avatar" if n == 1 else slug)
    _check_out(out_dir, force)
    callback = _progress_callback(progress)
    made = generate_bundles(parsed.text, n, seed, guidance, steps, pipeline=pipeline, head=head, progress=callback)
    callback("write", 0.0)
    paths = []
    if n == 1:
        made.reports[0]["name"] = out_dir.name
        made.reports[0]["seconds_total"] = round(time.perf_counter() - start, 3)
        write_bundle(out_dir, made.bundles[0], force=force)
        paths.append(out_dir)
    else:
        with atomic_output_dir(out_dir, force=force) as tmp:
            for i, bundle in enumerate(made.bundles):
                name = f"{i:02d}.avatar"
                made.reports[i]["name"] = name
                made.reports[i]["seconds_total"] = round(time.perf_counter() - start, 3)
                write_bundle(tmp / name, bundle)
                paths.append(out_dir / name)
                callback("write", (i + 1) / n)
    callback("write", 1.0)
    return GenerateResult(out_dir, paths, made.reports, made.warnings, time.perf_counter() - start)


@single_thread()
def edit_bundle(bundle, text: str, strength: float | None = None, seed: int = 0, pipeline=None, head=None,
                with_preview: bool = True):
    """Edit an :class:`~avatar.bundle.AvatarBundle` with text (see the module docstring).

    Args:
        bundle: the avatar to edit.
        text: the edit ("a longer nose, fuller lips").
        strength: SDEdit strength in (0, 1] (default the generator's).
        seed: random seed.
        pipeline: the generator (default: shipped weights).
        head: the head model (default ``load_head("auto")``).
        with_preview: render a before | after ``preview.png``.

    Returns:
        the edited bundle (its ``report`` says what changed).
    """
    from avatar.bundle import AvatarBundle
    from avatar.fitting.head import load_head
    from avatar.generator.attributes import AttributeMeter
    from avatar.generator.bundles import preview_views

    pipeline = pipeline or load_generator()
    head = head or load_head("auto")
    meter = AttributeMeter.from_head(head)
    if bundle.vertices.shape != head.mean.shape:
        raise AvatarInputError(f"the bundle's mesh has {bundle.vertices.shape[0]} vertices; this head has "
                               f"{head.mean.shape[0]} — it was made with another head model")
    z_geo, z_tex = bundle.z_geo.reshape(1, -1), bundle.z_tex.reshape(1, -1)
    if z_geo.shape[1] > head.geo_dim or z_tex.shape[1] != head.tex_dim:
        raise AvatarInputError(f"the bundle's codes (z_geo {z_geo.shape[1]}, z_tex {z_tex.shape[1]}) do not fit the "
                               f"{head.source} head ({head.geo_dim}, {head.tex_dim})")
    if z_geo.shape[1] < pipeline.settings.geo_dim:  # fits may use fewer identity modes
        z_geo = torch.cat([z_geo, torch.zeros(1, pipeline.settings.geo_dim - z_geo.shape[1])], 1)
    out = pipeline.edit(z_geo, z_tex, text, meter, strength=strength, seed=seed)
    with torch.no_grad():
        old_neutral = head.rest_vertices(z_geo)[0]
        new_neutral = head.rest_vertices(out.z_geo)[0]
        vertices = bundle.vertices + (new_neutral - old_neutral)
        texture = bundle.texture
        if "z_tex" not in out.frozen_blocks:
            size = bundle.texture.shape[0]
            ratio = head.albedo(out.z_tex, size)[0] / head.albedo(z_tex, size)[0].clamp_min(1e-3)
            texture = (bundle.texture * ratio).clamp(0, 1)
        before = meter(z_geo, z_tex)[0].numpy()
        after = meter(out.z_geo, out.z_tex)[0].numpy()
    bins = pipeline.settings.bins
    table, checks = attribute_report(after, bins, out.prompt.mentions)
    for check, m in zip(checks, out.prompt.mentions):
        i = ATTRIBUTES.index(m.attribute)
        check["change_std"] = round(float((after[i] - before[i]) / bins.std[i]), 3)
        check["moved_as_asked"] = bool(m.direction * (after[i] - before[i]) > 0)
    change = (after - before) / bins.std
    preserved = {a: round(float(change[ATTRIBUTES.index(a)]), 4) for a in out.preserved}
    document = {
        "edit": {"prompt": out.prompt.text, "strength": float(strength if strength is not None
                                                              else pipeline.settings.edit.get("strength", 0.6)),
                 "seed": int(seed), "source_bundle": bundle.meta.get("created_by", "?")},
        "requested": checks,
        "preserved_change_std": preserved,
        "max_preserved_change_std": round(max((abs(v) for v in preserved.values()), default=0.0), 4),
        "frozen_code_blocks": list(out.frozen_blocks),
        "attributes": table,
        "warnings": list(out.warnings) + head_mismatch(pipeline, head, meter),
        "avatar_engine_version": __version__,
    }
    edited = AvatarBundle(
        z_geo=out.z_geo[0, : bundle.z_geo.numel()].clone() if bundle.z_geo.numel() < out.z_geo.shape[1] else out.z_geo[0].clone(),
        z_tex=out.z_tex[0].clone(), expression=bundle.expression.clone(), head_rotation=bundle.head_rotation.clone(),
        head_translation=bundle.head_translation.clone(), vertices=vertices, expression_deltas=bundle.expression_deltas.clone(),
        faces=bundle.faces.clone(), uv=bundle.uv.clone(), uv_faces=bundle.uv_faces.clone(),
        face_parts=bundle.face_parts.clone(), part_names=bundle.part_names, expression_names=bundle.expression_names,
        neck_pivot=bundle.neck_pivot.clone(), texture=texture, sh_light=bundle.sh_light,
        meta={**{k: v for k, v in bundle.meta.items() if k not in ("format", "files", "codes", "units", "frame",
                                                                    "avatar_engine_version")},
              "created_by": "avatar edit", "edit": document["edit"]},
        preview=None, report=document,
    )
    if with_preview:
        edited.preview = preview_views([bundle, edited])
    return edited


def run_edit_command(bundle_dir: str | os.PathLike, text: str, out_dir: str | os.PathLike | None = None,
                     force: bool = False, progress=None, strength: float | None = None,
                     seed: int = 0, pipeline=None, head=None) -> GenerateResult:
    """``avatar edit BUNDLE "TEXT" [-o DIR] [--force]``.

    Args:
        bundle_dir: the ``.avatar`` folder to edit.
        text: the edit, e.g. "a longer nose, fuller lips".
        out_dir: the new bundle (default ``<bundle stem>-edited.avatar`` beside the input).
        force: replace an existing output.
        progress: a rich ``Progress``, a ``callback(stage, fraction)`` or ``None``.
        strength: SDEdit strength in (0, 1] (default the generator's, 0.6).
        seed: random seed.
        pipeline: the generator (default: the shipped weights).
        head: the head model (default ``load_head("auto")``).

    Returns:
        the :class:`GenerateResult` (one bundle).

    Raises:
        AvatarInputError: unreadable bundle, bad or empty edit text, existing output without ``force``.
    """
    from avatar.bundle import read_bundle, write_bundle
    from avatar.generator.captions import check_prompt

    start = time.perf_counter()
    bundle_dir = Path(bundle_dir)
    parsed = check_prompt(text)
    if not parsed.text:
        raise AvatarInputError("the edit text is empty; say what to change, e.g. 'a longer nose, fuller lips'")
    if strength is not None and not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
        raise AvatarInputError(f"--strength must be in (0, 1], got {strength}")
    if out_dir is None:
        stem = bundle_dir.name[: -len(".avatar")] if bundle_dir.name.endswith(".avatar") else bundle_dir.name
        out_dir = bundle_dir.parent / f"{stem}-edited.avatar"
    out_dir = Path(out_dir)
    if out_dir.resolve() == bundle_dir.resolve():
        raise AvatarInputError("the output would replace the bundle being edited; pass another -o")
    _check_out(out_dir, force)
    callback = _progress_callback(progress)
    callback("load", 0.0)
    bundle = read_bundle(bundle_dir)
    callback("load", 1.0)
    callback("sample", 0.0)
    edited = edit_bundle(bundle, parsed.text, strength=strength, seed=seed, pipeline=pipeline, head=head)
    callback("build", 1.0)
    edited.report["name"] = out_dir.name
    edited.report["seconds_total"] = round(time.perf_counter() - start, 3)
    callback("write", 0.0)
    write_bundle(out_dir, edited, force=force)
    callback("write", 1.0)
    return GenerateResult(out_dir, [out_dir], [edited.report], list(edited.report["warnings"]),
                          time.perf_counter() - start)


def generate(text: str = "", n: int | None = None, seed: int = 0, guidance: float | None = None,
             steps: int | None = None, progress=None):
    """Generate avatars from text (``avatar.generate``).

    Args:
        text: English description, e.g. "a woman with a round face and a small nose" ("" = random faces).
        n: ``None`` for one :class:`~avatar.api.Avatar`; an int for a list of that many.
        seed: random seed (same text and seed → same avatars).
        guidance: classifier-free guidance scale (default 3; higher follows the text more, with less variety).
        steps: DDIM steps (default 25).
        progress: ``callback(stage, fraction)``.

    Returns:
        an :class:`~avatar.api.Avatar` (``n=None``) or a list of them; each has ``.report`` with the
        measured attributes and whether each requested one was met.

    Raises:
        AvatarInputError: bad prompt (too long, not English, contradictory) or options.

    Example:
        >>> import avatar                                                      # doctest: +SKIP
        >>> a = avatar.generate("a man with a long face and a wide nose", seed=1)
        >>> a.save("long-face.avatar")
    """
    from avatar.api import Avatar
    from avatar.generator.captions import check_prompt

    count = 1 if n is None else n
    if not isinstance(count, (int, np.integer)) or not 1 <= int(count) <= 1000:
        raise AvatarInputError(f"n must be between 1 and 1000, got {n}")
    parsed = check_prompt(text)
    made = generate_bundles(parsed.text, int(count), seed, guidance, steps, progress=progress)
    avatars = [Avatar(b) for b in made.bundles]
    return avatars[0] if n is None else avatars
