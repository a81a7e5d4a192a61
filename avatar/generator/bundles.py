"""Generated and edited identities as ``.avatar`` bundles (the same format as ``avatar fit``).

:func:`generate_bundles` samples identities for a prompt and assembles their bundles (baked mesh, 53
morph targets, albedo texture, ``preview.png``, a report of the measured attributes); :func:`edit_bundle`
edits a bundle's codes with text: geometry edits move the bundle's own mesh by the change of the model's
neutral mesh (fitted detail is kept); texture edits multiply the bundle's own texture by the change of the
albedo model (so a fitted photo texture is edited, not replaced); what the text does not mention is kept
(:meth:`avatar.generator.pipeline.GeneratorPipeline.edit`). Nothing here writes files: ``avatar generate``
/ ``avatar edit`` (:mod:`avatar.commands.generate`) and :func:`avatar.generate` / :func:`avatar.edit` do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from avatar import __version__
from avatar.core.bundle import AvatarBundle
from avatar.core.colour import linear_to_srgb, srgb_to_linear
from avatar.core.errors import AvatarInputError
from avatar.core.preview import preview_views
from avatar.core.threads import single_thread
from avatar.generator.attributes import ATTRIBUTES
from avatar.generator.hair import HairRequest, draw_hair, hair_checks, measure_hair, parse_hair, style_hair

#: Texture atlas side of generated avatars (the albedo model is 128 px per tile; 512 keeps its detail).
TEXTURE_SIZE = 512
LEVEL_WORDS = {-2: "very low", -1: "low", 0: "average", 1: "high", 2: "very high"}


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
    (:func:`~avatar.core.threads.single_thread`).

    Args:
        text: the prompt ("" = unconditional).
        n: how many avatars.
        seed: random seed.
        guidance: classifier-free guidance scale (default: the generator's).
        steps: DDIM steps (default: the generator's).
        pipeline: a :class:`~avatar.generator.pipeline.GeneratorPipeline` (default: shipped weights).
        head: a :class:`~avatar.morphable.head.HeadModel` (default ``load_head("auto")``).
        progress: ``callback(stage, fraction)``.
        with_preview: render ``preview.png``.

    Returns:
        the :class:`GeneratedAvatars`.
    """
    from avatar.generator.attributes import AttributeMeter
    from avatar.morphable.head import load_head

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
        # the decoder's albedo is linear; bundle textures are sRGB (avatar.core.colour)
        textures = [linear_to_srgb(head.albedo(out.z_tex[i:i + 1], TEXTURE_SIZE)[0]) for i in range(n)]
    warnings = list(out.warnings) + head_mismatch(pipeline, head, meter)
    sample_cfg = pipeline.settings.sample
    used_guidance = float(sample_cfg.get("guidance", 3.0) if guidance is None else guidance)
    used_steps = int(sample_cfg.get("steps", 25) if steps is None else steps)
    bundles, reports = [], []
    hair_request = parse_hair(out.prompt.clauses)
    for i in range(n):
        table, checks = attribute_report(values[i], pipeline.settings.bins, out.prompt.mentions)
        document = {"prompt": out.prompt.text, "seed": int(seed), "index": i, "guidance": used_guidance,
                    "steps": used_steps, "requested": checks, "attributes": table, "warnings": warnings,
                    "clauses": out.prompt.clauses, "avatar_engine_version": __version__}
        bundle = head.bundle(out.z_geo[i], out.z_tex[i], textures[i],
                             {"created_by": "avatar generate", "generate": {"prompt": out.prompt.text, "seed": int(seed),
                                                                             "index": i, "guidance": used_guidance}},
                             report=document)
        bundle.hair, document["hair"] = make_hair(head, bundle.vertices, hair_request, np.random.default_rng([seed, i, 1811]))
        checks += hair_checks(hair_request, document["hair"]["measured"])
        if with_preview:
            bundle.preview = preview_views([bundle])
        bundles.append(bundle)
        reports.append(document)
        report("build", (i + 1) / n)
    timings["build"] = time.perf_counter() - tic
    for document in reports:
        document["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return GeneratedAvatars(bundles, reports, warnings)


def make_hair(head, vertices: torch.Tensor, request: HairRequest, rng: np.random.Generator, keep: dict | None = None):
    """A hair layer for a head from a request (:mod:`avatar.generator.hair`), what was not asked taken from ``keep``
    (an edit keeps the avatar's hair) or drawn; returns the layer and its report entry."""
    keep = keep or {}
    drawn_style, drawn_colour, drawn_fringe = draw_hair(request, rng)
    style = request.style or keep.get("style") or drawn_style
    colour = request.colour or keep.get("colour") or drawn_colour
    if style == "bald" and request.style is None and (request.colour or request.fringe):
        style = "short"  # "red hair" for a bald avatar
    fringe = request.fringe if request.fringe is not None else keep.get("fringe", drawn_fringe)
    layer = style_hair(head, vertices.numpy(), style, colour, bool(fringe) and style != "bald", rng)
    measured = measure_hair(layer, head, vertices.numpy())
    return layer, {"style": style, "colour": colour if style != "bald" else None, "fringe": bool(fringe) and style != "bald",
                   "requested": {"style": request.style, "colour": request.colour, "fringe": request.fringe},
                   "measured": measured}


def recoloured_hair(layer, colour: str):
    """The layer with its texture moved to a named colour (:data:`avatar.generator.hair.HAIR_COLOURS`), its shading
    and strand variation kept: every texel is scaled by ``target / median`` in linear light."""
    from dataclasses import replace

    from avatar.generator.hair import HAIR_COLOURS

    linear = srgb_to_linear(layer.texture)
    target = srgb_to_linear(torch.tensor(HAIR_COLOURS[colour]))
    ratio = target / linear.reshape(-1, 3).median(0).values.clamp_min(1e-3)
    return replace(layer, texture=linear_to_srgb((linear * ratio).clamp(0, 1)))


@single_thread()
def _moved_hair(bundle, vertices: torch.Tensor):
    """The bundle's hair layer carried onto the edited head: each hair vertex moves as its nearest head vertex."""
    if bundle.hair is None:
        return None
    from dataclasses import replace

    from scipy.spatial import cKDTree

    _, nearest = cKDTree(bundle.vertices.numpy()).query(bundle.hair.vertices.numpy())
    moved = bundle.hair.vertices + (vertices - bundle.vertices)[torch.from_numpy(nearest)]
    return replace(bundle.hair, vertices=moved)


def edit_bundle(bundle, text: str, strength: float | None = None, seed: int = 0, pipeline=None, head=None,
                with_preview: bool = True):
    """Edit an :class:`~avatar.core.bundle.AvatarBundle` with text (see the module docstring).

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
    from avatar.generator.attributes import AttributeMeter
    from avatar.morphable.head import load_head

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
    from avatar.generator.captions import check_prompt
    from avatar.generator.pipeline import EditOutput

    parsed = check_prompt(text)
    hair_request = parse_hair(parsed.clauses)
    if parsed.mentions or hair_request.empty:
        out = pipeline.edit(z_geo, z_tex, text, meter, strength=strength, seed=seed)
    else:  # a hair-only edit ("give her a grey bun"): the face's codes stay as they are
        out = EditOutput(z_geo, z_tex, parsed, [], ATTRIBUTES, ("z_geo", "z_tex"))
    with torch.no_grad():
        old_neutral = head.rest_vertices(z_geo)[0]
        new_neutral = head.rest_vertices(out.z_geo)[0]
        vertices = bundle.vertices + (new_neutral - old_neutral)
        texture = bundle.texture
        if "z_tex" not in out.frozen_blocks:
            size = bundle.texture.shape[0]
            ratio = head.albedo(out.z_tex, size)[0] / head.albedo(z_tex, size)[0].clamp_min(1e-3)
            texture = linear_to_srgb(srgb_to_linear(bundle.texture) * ratio)  # the ratio is of linear albedos
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
    edited = AvatarBundle.create(
        vertices=vertices, expression_deltas=bundle.expression_deltas, faces=bundle.faces, uv=bundle.uv,
        uv_faces=bundle.uv_faces, face_parts=bundle.face_parts, part_names=bundle.part_names,
        neck_pivot=bundle.neck_pivot, texture=texture,
        z_geo=out.z_geo[0, : bundle.z_geo.numel()] if bundle.z_geo.numel() < out.z_geo.shape[1] else out.z_geo[0],
        z_tex=out.z_tex[0], expression=bundle.expression, head_rotation=bundle.head_rotation,
        head_translation=bundle.head_translation, sh_light=bundle.sh_light,
        meta={**{k: v for k, v in bundle.meta.items() if k not in ("format", "files", "codes", "units", "frame",
                                                                    "avatar_engine_version")},
              "created_by": "avatar edit", "edit": document["edit"]},
        report=document,
        hair=_moved_hair(bundle, vertices),
    )
    if not hair_request.empty:  # the asked-for hair; what the edit does not say is kept from the avatar's
        current = measure_hair(bundle.hair, head, bundle.vertices.numpy())
        if edited.hair is not None and hair_request.style is None and hair_request.fringe is None:
            edited.hair = recoloured_hair(edited.hair, hair_request.colour)  # a new colour keeps the (fitted) shape
            measured = measure_hair(edited.hair, head, edited.vertices.numpy())
            document["hair"] = {**current, "colour": hair_request.colour, "measured": measured,
                                "requested": {"style": None, "colour": hair_request.colour, "fringe": None}}
        else:
            edited.hair, document["hair"] = make_hair(head, edited.vertices, hair_request,
                                                      np.random.default_rng([seed, 1811]), keep=current)
        document["requested"] = checks + hair_checks(hair_request, document["hair"]["measured"])
    if with_preview:
        edited.preview = preview_views([bundle, edited])
    return edited
