"""The ``.avatar`` bundle: one folder per avatar, readable without this library.

=====================  =======================================================================
file                   what
=====================  =======================================================================
``avatar.json``        format, versions, head model, code sizes, units and frame, neck pivot,
                       how it was made (fit settings), file names
``avatar.safetensors`` codes and the baked head (float32 unless noted):
                       ``z_geo (K,)``, ``z_tex (T,)``, ``expression (53,)``, ``head_rotation (3,)``,
                       ``head_translation (3,)``, ``vertices (V, 3)`` — the identity's neutral mesh
                       in cm, ``expression_deltas (53, V, 3)`` float16 — one morph target per
                       expression, ``faces (F, 3)`` int32, ``uv (V_t, 2)``, ``uv_faces (F, 3)`` int32
                       (single-image atlas, OBJ convention), ``face_parts (F,)`` int16, and when fitted
                       ``sh_light (9, 1)`` (the photo's lighting, monochrome order-2 SH)
``texture.png``        the albedo in the UV atlas (:mod:`avatar.morphable.uv_atlas`), row 0 = top, sRGB
``hair.png``           (avatars with hair: fits, generations) the hair layer's colour in its own atlas, sRGB; its mesh is
                       ``hair_vertices (H, 3)``, ``hair_faces (F_h, 3)`` int32, ``hair_uv (U_h, 2)``,
                       ``hair_uv_faces (F_h, 3)`` int32 in ``avatar.safetensors`` — rigid with the head
``mesh.glb``           textured glTF 2.0 with ARKit's 52 morph targets (canonical names, e.g.
                       ``mouthSmileLeft``; :func:`~avatar.core.expressions.arkit_morph_targets`), a neck
                       pivot node and, with hair, a separate ``hair`` node (swap or hide it)
``mesh.obj``/``.mtl``  the neutral mesh with the texture, for any 3D tool
``preview.png``        (fits) input | landmarks | fit over the photo, novel views × two expressions
``overlay.png``        (fits) the fitted head in the photo's own camera, RGBA at the photo's size
``report.json``        (fits) image size, faces found, face box, 68 landmarks, losses, skin ΔE2000, timings;
                       (generations) prompt, requested attributes and their checks, measured attributes, hair
=====================  =======================================================================

A mesh for any expression is ``vertices + Σ_j expression[j] · expression_deltas[j]``; the head pose
turns it about ``neck_pivot``. Bundles are written into a temporary sibling folder and renamed into
place, so a failed write leaves nothing (or the previous bundle, with ``force``) behind.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from avatar import __version__
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, EXPRESSION_NAMES, NUM_EXPRESSIONS, arkit_morph_targets
from avatar.core.io import atomic_output_dir

FORMAT = "avatar-bundle/1"
JSON_FILE = "avatar.json"
TENSOR_FILE = "avatar.safetensors"
TEXTURE_FILE = "texture.png"
HAIR_TEXTURE_FILE = "hair.png"
GLB_FILE = "mesh.glb"
OBJ_FILE = "mesh.obj"
PREVIEW_FILE = "preview.png"
OVERLAY_FILE = "overlay.png"
REPORT_FILE = "report.json"
#: Parts exported as meshes: the eye overlay shells and lashes are alpha-blended in ICT; opaque
#: exports leave them out.
EXPORT_PARTS = ("M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_IrisLeft", "M_ScleraRight",
                "M_IrisRight")
_REQUIRED = ("z_geo", "z_tex", "expression", "head_rotation", "head_translation", "vertices", "expression_deltas",
             "faces", "uv", "uv_faces", "face_parts")


@dataclass
class HairLayer:
    """A hair mesh over the scalp, rigid with the head (head frame, cm; see :mod:`avatar.fitting.hair`).

    Attributes:
        vertices: shape :math:`(H, 3)`.
        faces: shape :math:`(F_h, 3)` int32.
        uv: texture coordinates (v up), shape :math:`(U_h, 2)`.
        uv_faces: shape :math:`(F_h, 3)` int32.
        texture: sRGB colour, row 0 at the top, shape :math:`(S, S, 3)` float32 in [0, 1].
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    texture: torch.Tensor

    @classmethod
    def create(cls, *, vertices, faces, uv, uv_faces, texture) -> HairLayer:
        """Convert and check (NumPy or torch); keeps only the uv entries the triangles use."""
        uv_faces = np.asarray(uv_faces, dtype=np.int64)
        used, inverse = np.unique(uv_faces, return_inverse=True)
        texture = torch.as_tensor(np.array(texture))
        texture = texture.float() / 255.0 if texture.dtype == torch.uint8 else texture.float()
        layer = cls(torch.as_tensor(np.asarray(vertices, np.float32)).clone(),
                    torch.as_tensor(np.asarray(faces, np.int32)).clone(),
                    torch.as_tensor(np.asarray(uv, np.float32)[used]).clone(),
                    torch.as_tensor(inverse.reshape(-1, 3).astype(np.int32)), texture.clone())
        h, f = layer.vertices.shape[0], layer.faces.shape[0]
        if layer.vertices.shape != (h, 3) or layer.faces.shape != (f, 3) or layer.uv_faces.shape != (f, 3) \
                or layer.texture.ndim != 3 or layer.texture.shape[2] != 3 or int(layer.faces.max()) >= h:
            raise AvatarInputError("inconsistent hair layer: vertices (H, 3), faces and uv_faces (F, 3), texture (S, S, 3)")
        return layer


@dataclass
class AvatarBundle:
    """Everything a bundle holds, in memory (torch, float32, centimetres, head frame).

    Attributes:
        z_geo: identity geometry code, shape :math:`(K,)`.
        z_tex: texture code, shape :math:`(T,)`.
        expression: the expression in the photo (53 weights in [0, 1]), shape :math:`(53,)`.
        head_rotation: head rotation in the photo (axis-angle, rad), shape :math:`(3,)`.
        head_translation: head translation (cm), shape :math:`(3,)`.
        vertices: the identity's neutral mesh, shape :math:`(V, 3)`.
        expression_deltas: morph target per expression, shape :math:`(53, V, 3)`.
        faces: triangles, shape :math:`(F, 3)` int32.
        uv: atlas texture coordinates (v up), shape :math:`(V_t, 2)`.
        uv_faces: uv index per triangle corner, shape :math:`(F, 3)` int32.
        face_parts: part id per triangle, shape :math:`(F,)` int16.
        part_names: names of the part ids.
        expression_names: the 53 names (:data:`~avatar.core.expressions.EXPRESSION_NAMES`).
        neck_pivot: head-rotation pivot (cm), shape :math:`(3,)`.
        texture: albedo, row 0 at the top, shape :math:`(S, S, 3)` float32 in [0, 1].
        sh_light: the photo's lighting, shape :math:`(9, 1)`, or ``None``.
        meta: the rest of ``avatar.json`` (head model, fit settings, camera, ...).
        preview: the preview image, shape :math:`(H, W, 3)` uint8, or ``None``.
        report: the fit report, or ``None``.
        overlay: the fitted head in the photo's camera, RGBA uint8 :math:`(H, W, 4)` at the photo's size, or ``None``.
        hair: the :class:`HairLayer`, or ``None`` (bald).
    """

    z_geo: torch.Tensor
    z_tex: torch.Tensor
    expression: torch.Tensor
    head_rotation: torch.Tensor
    head_translation: torch.Tensor
    vertices: torch.Tensor
    expression_deltas: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    face_parts: torch.Tensor
    part_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    neck_pivot: torch.Tensor
    texture: torch.Tensor
    sh_light: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    preview: np.ndarray | None = None
    report: dict | None = None
    overlay: np.ndarray | None = None
    hair: HairLayer | None = None

    @classmethod
    def create(cls, *, vertices, expression_deltas, faces, uv, uv_faces, face_parts, part_names, neck_pivot, texture,
               z_geo=None, z_tex=None, expression=None, head_rotation=None, head_translation=None, sh_light=None,
               meta: dict | None = None, preview: np.ndarray | None = None, report: dict | None = None,
               overlay: np.ndarray | None = None, hair: HairLayer | None = None) -> AvatarBundle:
        """The one way to assemble a bundle in memory: converts (NumPy or torch) and copies every array to the
        dtype the format stores, fills the optional codes with zeros, and checks the shapes.

        Args:
            vertices: neutral mesh, :math:`(V, 3)` cm.
            expression_deltas: :math:`(53, V, 3)` cm, in :data:`~avatar.core.expressions.EXPRESSION_NAMES` order.
            faces, uv, uv_faces, face_parts, part_names: topology and atlas (see the class docstring).
            neck_pivot: :math:`(3,)` cm.
            texture: albedo :math:`(S, S, 3)`, float in [0, 1] or uint8.
            z_geo, z_tex: codes (empty when the avatar was not made from the model's codes).
            expression, head_rotation, head_translation: the photo's expression and pose (zeros by default).
            sh_light: :math:`(9, 1)` or ``None``; meta, preview, report, overlay: see the class docstring.
        """
        def tensor(x, dtype=torch.float32):
            x = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
            return x.to(dtype).clone()

        texture = texture.detach().cpu() if isinstance(texture, torch.Tensor) else torch.from_numpy(np.array(texture))
        texture = texture.float() / 255.0 if texture.dtype == torch.uint8 else texture.float().clone()
        bundle = cls(
            z_geo=tensor(z_geo if z_geo is not None else np.zeros(0)).reshape(-1),
            z_tex=tensor(z_tex if z_tex is not None else np.zeros(0)).reshape(-1),
            expression=tensor(expression if expression is not None else np.zeros(NUM_EXPRESSIONS)),
            head_rotation=tensor(head_rotation if head_rotation is not None else np.zeros(3)),
            head_translation=tensor(head_translation if head_translation is not None else np.zeros(3)),
            vertices=tensor(vertices),
            expression_deltas=tensor(expression_deltas),
            faces=tensor(faces, torch.int32),
            uv=tensor(uv),
            uv_faces=tensor(uv_faces, torch.int32),
            face_parts=tensor(face_parts, torch.int16),
            part_names=tuple(part_names),
            expression_names=EXPRESSION_NAMES,
            neck_pivot=tensor(neck_pivot),
            texture=texture,
            sh_light=None if sh_light is None else tensor(sh_light),
            meta=dict(meta or {}),
            preview=preview,
            report=report,
            overlay=overlay,
            hair=hair,
        )
        _check(bundle)
        return bundle

    def render_mesh(self, vertices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The mesh renders draw: the exported head parts and, when there is one, the hair layer merged in
        (texture it with :meth:`render_texture`).

        Args:
            vertices: the head's vertices as posed for the render, shape :math:`(B, V, 3)`; the hair follows the
                same rigid pose, recovered from the neutral mesh (rotation about the neck pivot and translation).

        Returns:
            ``vertices (B, V', 3)``, ``faces (F', 3)`` int32, ``uv (U', 2)``, ``uv_faces (F', 3)`` int32.
        """
        keep = self.export_face_mask()
        faces, uv_faces = self.faces[keep], self.uv_faces[keep]
        if self.hair is None:
            return vertices, faces, self.uv, uv_faces
        back = self.faces[self.face_parts.long() == self.part_names.index("M_BackHead")].unique().long()
        rotation, translation = rigid_pose(self.vertices[back], vertices[:, back], self.neck_pivot)
        return with_hair(vertices, faces, self.uv, uv_faces, self.hair, rotation, translation, self.neck_pivot)

    def render_texture(self) -> torch.Tensor:
        """The sRGB texture of :meth:`render_mesh`: the atlas, or with hair :func:`merged_texture`."""
        return self.texture if self.hair is None else merged_texture(self.texture, self.hair)

    def export_face_mask(self) -> torch.Tensor:
        """Triangles written to the mesh files (:data:`EXPORT_PARTS`), shape :math:`(F,)` bool."""
        ids = [self.part_names.index(n) for n in EXPORT_PARTS if n in self.part_names]
        return torch.isin(self.face_parts.long(), torch.tensor(ids))


def with_hair(vertices: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
              hair: HairLayer, rotation: torch.Tensor, translation: torch.Tensor,
              pivot: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A head mesh with a hair layer merged in, for renderers that draw one mesh with :func:`merged_texture`.

    Args:
        vertices: posed head vertices :math:`(B, V, 3)`; faces, uv, uv_faces: the head's.
        hair: the layer (head frame, neutral).
        rotation: the head's rotation about ``pivot``, :math:`(B, 3, 3)`; translation: :math:`(B, 1, 3)` or 0.

    Returns:
        ``vertices (B, V + H, 3)``, ``faces``, ``uv``, ``uv_faces``: uv scaled into the left (head) and right
        (hair) halves of the merged texture.
    """
    posed = (hair.vertices - pivot) @ rotation.transpose(-1, -2) + pivot + translation
    half = torch.tensor([0.5, 1.0])
    return (torch.cat([vertices, posed.to(vertices.dtype)], 1), torch.cat([faces, hair.faces + vertices.shape[1]]),
            torch.cat([uv * half, hair.uv * half + torch.tensor([0.5, 0.0])]),
            torch.cat([uv_faces, hair.uv_faces + uv.shape[0]]))


def merged_texture(texture: torch.Tensor, hair: HairLayer) -> torch.Tensor:
    """The head's atlas :math:`(S, S, 3)` and the hair's (resized to it) side by side, :math:`(S, 2S, 3)`."""
    size = texture.shape[0]
    hair_texture = torch.nn.functional.interpolate(hair.texture.permute(2, 0, 1)[None], size=(size, size),
                                                   mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    return torch.cat([texture, hair_texture.clamp(0, 1)], 1)


def rigid_pose(rest: torch.Tensor, posed: torch.Tensor, pivot: torch.Tensor, points: int = 64) -> tuple[torch.Tensor, ...]:
    """The rotation about ``pivot`` and translation that take ``rest`` to ``posed`` (Kabsch on a fixed subset).

    Args:
        rest: neutral points that expressions do not move (e.g. the back of the head), shape :math:`(N, 3)`;
        posed: the same points posed, shape :math:`(B, N, 3)`.

    Returns:
        rotation :math:`(B, 3, 3)` and translation :math:`(B, 1, 3)`: ``posed ≈ (rest − p) Rᵀ + p + t``.
    """
    ids = torch.linspace(0, rest.shape[0] - 1, points).long()
    a = rest[ids] - pivot
    b = posed[:, ids] - pivot
    ca, cb = a.mean(0), b.mean(1, keepdim=True)
    u, _, vt = torch.linalg.svd((a - ca).T[None] @ (b - cb))
    d = torch.sign(torch.linalg.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rotation = vt.transpose(-1, -2) @ fix @ u.transpose(-1, -2)
    translation = cb - (ca @ rotation.transpose(-1, -2))[:, None]
    return rotation, translation


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _texture_uint8(texture: torch.Tensor) -> np.ndarray:
    return (texture.detach().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def bundle_json(bundle: AvatarBundle) -> dict:
    """The ``avatar.json`` document of a bundle."""
    return {
        "format": FORMAT,
        "avatar_engine_version": __version__,
        "units": "cm",
        "frame": "head frame: x to the head's left, y up, z out of the face",
        "neck_pivot": [round(float(x), 6) for x in bundle.neck_pivot],
        "codes": {
            "z_geo": int(bundle.z_geo.numel()),
            "z_tex": int(bundle.z_tex.numel()),
            "expression_names": list(bundle.expression_names),
        },
        "part_names": list(bundle.part_names),
        "export_parts": list(EXPORT_PARTS),
        "files": {
            "tensors": TENSOR_FILE,
            "texture": TEXTURE_FILE,
            "glb": GLB_FILE,
            "obj": OBJ_FILE,
            **({"preview": PREVIEW_FILE} if bundle.preview is not None else {}),
            **({"overlay": OVERLAY_FILE} if bundle.overlay is not None else {}),
            **({"hair_texture": HAIR_TEXTURE_FILE} if bundle.hair is not None else {}),
            **({"report": REPORT_FILE} if bundle.report is not None else {}),
        },
        **{k: v for k, v in bundle.meta.items() if k not in ("format", "files", "codes", "units", "frame")},
    }


def write_bundle(directory: str | os.PathLike, bundle: AvatarBundle, force: bool = False) -> Path:
    """Write a bundle folder atomically.

    Args:
        directory: the folder to create (e.g. ``photo.avatar``).
        bundle: what to write.
        force: replace an existing folder (only once the new one is complete).

    Returns:
        the folder.

    Raises:
        AvatarInputError: the folder exists and ``force`` is false, or the bundle is inconsistent.
    """
    from avatar.core.export.gltf import write_glb
    from avatar.core.export.mesh import TexturedMesh
    from avatar.core.export.obj import write_obj

    directory = Path(directory)
    _check(bundle)
    keep = bundle.export_face_mask()
    texture = _texture_uint8(bundle.texture)
    mesh = TexturedMesh.create(bundle.vertices, bundle.faces[keep], bundle.uv, bundle.uv_faces[keep], texture)
    tensors = {
        "z_geo": bundle.z_geo.float(),
        "z_tex": bundle.z_tex.float(),
        "expression": bundle.expression.float(),
        "head_rotation": bundle.head_rotation.float(),
        "head_translation": bundle.head_translation.float(),
        "vertices": bundle.vertices.float(),
        "expression_deltas": bundle.expression_deltas.to(torch.float16),
        "faces": bundle.faces.to(torch.int32),
        "uv": bundle.uv.float(),
        "uv_faces": bundle.uv_faces.to(torch.int32),
        "face_parts": bundle.face_parts.to(torch.int16),
    }
    if bundle.sh_light is not None:
        tensors["sh_light"] = bundle.sh_light.float().reshape(9, -1)
    if bundle.hair is not None:
        tensors.update(hair_vertices=bundle.hair.vertices.float(), hair_faces=bundle.hair.faces.to(torch.int32),
                       hair_uv=bundle.hair.uv.float(), hair_uv_faces=bundle.hair.uv_faces.to(torch.int32))
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    start = time.perf_counter()
    with atomic_output_dir(directory, force=force) as tmp:
        save_file(tensors, str(tmp / TENSOR_FILE), metadata={"format": FORMAT})
        os.chmod(tmp / TENSOR_FILE, 0o644)
        (tmp / JSON_FILE).write_text(json.dumps(bundle_json(bundle), indent=1) + "\n")
        (tmp / TEXTURE_FILE).write_bytes(_png_bytes(texture))
        hair = None
        if bundle.hair is not None:
            hair = TexturedMesh.create(bundle.hair.vertices, bundle.hair.faces, bundle.hair.uv, bundle.hair.uv_faces,
                                       _texture_uint8(bundle.hair.texture))
            (tmp / HAIR_TEXTURE_FILE).write_bytes(_png_bytes(hair.texture))
        write_glb(tmp / GLB_FILE, mesh, morph_deltas=arkit_morph_targets(bundle.expression_deltas),
                  morph_names=ARKIT_NAMES, neck_pivot=bundle.neck_pivot, hair=hair)
        write_obj(tmp / OBJ_FILE, mesh, texture_name=TEXTURE_FILE, write_texture=False)
        if bundle.preview is not None:
            (tmp / PREVIEW_FILE).write_bytes(_png_bytes(bundle.preview))
        if bundle.overlay is not None:
            (tmp / OVERLAY_FILE).write_bytes(_png_bytes(bundle.overlay))
        if bundle.report is not None:  # last, so it can say how long writing took
            seconds = time.perf_counter() - start
            if isinstance(bundle.report.get("timings"), dict):
                bundle.report["timings"]["write"] = round(seconds, 3)
                if isinstance(bundle.report.get("seconds_total"), (int, float)):
                    bundle.report["seconds_total"] = round(bundle.report["seconds_total"] + seconds, 3)
            (tmp / REPORT_FILE).write_text(json.dumps(bundle.report, indent=1) + "\n")
    return directory


def _check(bundle: AvatarBundle) -> None:
    v = bundle.vertices.shape[0]
    if bundle.vertices.shape != (v, 3) or bundle.expression_deltas.shape != (len(bundle.expression_names), v, 3):
        raise AvatarInputError(
            f"bundle shapes disagree: vertices {tuple(bundle.vertices.shape)}, "
            f"expression_deltas {tuple(bundle.expression_deltas.shape)}"
        )
    if bundle.expression.shape != (len(bundle.expression_names),):
        raise AvatarInputError(f"expression must have {len(bundle.expression_names)} weights, got {tuple(bundle.expression.shape)}")
    if bundle.texture.ndim != 3 or bundle.texture.shape[2] != 3:
        raise AvatarInputError(f"texture must be S x S x 3, got {tuple(bundle.texture.shape)}")


def read_bundle(directory: str | os.PathLike) -> AvatarBundle:
    """Read a bundle folder written by :func:`write_bundle`.

    Args:
        directory: the bundle folder.

    Returns:
        the :class:`AvatarBundle`.

    Raises:
        AvatarInputError: missing folder or files, unknown format, corrupt contents.
    """
    directory = Path(directory)
    if not directory.exists():
        raise AvatarInputError(f"{directory} not found; give an .avatar folder made by `avatar fit` or `avatar generate`")
    if not directory.is_dir():
        raise AvatarInputError(f"{directory} is a file; an avatar bundle is a folder (e.g. photo.avatar)")
    missing = [n for n in (JSON_FILE, TENSOR_FILE, TEXTURE_FILE) if not (directory / n).is_file()]
    if missing:
        raise AvatarInputError(f"{directory} is not a complete avatar bundle (missing {', '.join(missing)})")
    try:
        meta = json.loads((directory / JSON_FILE).read_text())
    except (ValueError, OSError) as error:
        raise AvatarInputError(f"{directory / JSON_FILE} is not valid JSON ({error})") from error
    if meta.get("format") != FORMAT:
        raise AvatarInputError(f"{directory} has bundle format {meta.get('format')!r}; this version reads {FORMAT!r}")
    try:
        tensors = load_file(str(directory / TENSOR_FILE))
    except Exception as error:  # safetensors raises its own error types
        raise AvatarInputError(f"{directory / TENSOR_FILE} is corrupt ({error})") from error
    absent = [k for k in _REQUIRED if k not in tensors]
    if absent:
        raise AvatarInputError(f"{directory / TENSOR_FILE} lacks {', '.join(absent)}")
    try:
        with Image.open(directory / TEXTURE_FILE) as image:
            texture = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    except OSError as error:
        raise AvatarInputError(f"{directory / TEXTURE_FILE} is not a readable PNG ({error})") from error
    preview = None
    if (directory / PREVIEW_FILE).is_file():
        with Image.open(directory / PREVIEW_FILE) as image:
            preview = np.asarray(image.convert("RGB"))
    overlay = None
    if (directory / OVERLAY_FILE).is_file():
        with Image.open(directory / OVERLAY_FILE) as image:
            overlay = np.asarray(image.convert("RGBA"))
    report = json.loads((directory / REPORT_FILE).read_text()) if (directory / REPORT_FILE).is_file() else None
    hair = None
    if "hair_vertices" in tensors:
        try:
            with Image.open(directory / HAIR_TEXTURE_FILE) as image:
                hair_texture = np.asarray(image.convert("RGB"))
        except OSError as error:
            raise AvatarInputError(f"{directory / HAIR_TEXTURE_FILE} is missing or not a readable PNG ({error})") from error
        hair = HairLayer.create(vertices=tensors["hair_vertices"], faces=tensors["hair_faces"], uv=tensors["hair_uv"],
                                uv_faces=tensors["hair_uv_faces"], texture=hair_texture)
    codes = meta.get("codes", {})
    bundle = AvatarBundle(
        z_geo=tensors["z_geo"].float(),
        z_tex=tensors["z_tex"].float(),
        expression=tensors["expression"].float(),
        head_rotation=tensors["head_rotation"].float(),
        head_translation=tensors["head_translation"].float(),
        vertices=tensors["vertices"].float(),
        expression_deltas=tensors["expression_deltas"].float(),
        faces=tensors["faces"].to(torch.int32),
        uv=tensors["uv"].float(),
        uv_faces=tensors["uv_faces"].to(torch.int32),
        face_parts=tensors["face_parts"].to(torch.int16),
        part_names=tuple(meta.get("part_names", ())),
        expression_names=tuple(codes.get("expression_names", ())),
        neck_pivot=torch.tensor(meta.get("neck_pivot", [0.0, 0.0, 0.0]), dtype=torch.float32),
        texture=texture,
        sh_light=tensors["sh_light"].float() if "sh_light" in tensors else None,
        meta=meta,
        preview=preview,
        report=report,
        overlay=overlay,
        hair=hair,
    )
    _check(bundle)
    return bundle
