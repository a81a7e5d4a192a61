"""The built-in avatar (``assets/listener/default_avatar.npz``): who listens when no avatar is given.

A compact file on the shipped template (:func:`~avatar.morphable.template.load_template`) holding only
what rendering needs beyond the template: the identity's neutral vertices (float16 offsets from the
template), the 53 morph targets (int8 with one scale per expression, exact zeros kept), the atlas texture
(uint8), the atlas UVs and the neck pivot. ``scripts/build_default_avatar.py`` makes it by fitting the
astronaut photo of ``avatar demo``.

======================  ===============  ===========================================================
key                     shape, dtype     meaning
======================  ===============  ===========================================================
``vertex_offsets``      (V, 3) float16   neutral vertices − template neutral (cm)
``deltas``              (53, V, 3) int8  morph targets / ``delta_scale``
``delta_scale``         (53,) float32    cm per int8 step of each morph target
``texture``             (S, S, 3) uint8  albedo atlas, row 0 at the top
``neck_pivot``          (3,) float32     cm
``uv``, ``uv_faces``    (V_t, 2), (F, 3) atlas coordinates (v up) and their triangles
``hair_*``              (optional)       the hair layer: ``hair_vertices`` (H, 3) float32,
                                         ``hair_faces`` (F_h, 3) int32, ``hair_uv`` (U_h, 2) float32,
                                         ``hair_uv_faces`` (F_h, 3) int32, ``hair_texture`` (S, S, 3) uint8
======================  ===============  ===========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avatar.core.bundle import AvatarBundle, HairLayer
from avatar.core.errors import AvatarInputError
from avatar.core.io import atomic_output_file
from avatar.core.paths import ASSETS_DIR
from avatar.morphable.template import load_template

DEFAULT_AVATAR_PATH = ASSETS_DIR / "listener" / "default_avatar.npz"


def read_default_avatar(path: str | os.PathLike | None = None) -> AvatarBundle:
    """The built-in avatar as a bundle (default: :data:`DEFAULT_AVATAR_PATH`).

    Raises:
        AvatarInputError: the file is missing.
    """
    import torch

    path = Path(path) if path is not None else DEFAULT_AVATAR_PATH
    if not path.is_file():
        raise AvatarInputError(f"the built-in avatar {path} is missing; pass --avatar DIR or --photo PHOTO")
    template = load_template()
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    deltas = torch.from_numpy(arrays["deltas"].astype(np.float32) * arrays["delta_scale"][:, None, None])
    hair = None
    if "hair_vertices" in arrays:
        hair = HairLayer.create(vertices=arrays["hair_vertices"], faces=arrays["hair_faces"], uv=arrays["hair_uv"],
                                uv_faces=arrays["hair_uv_faces"], texture=arrays["hair_texture"])
    return AvatarBundle.create(
        vertices=template.neutral + arrays["vertex_offsets"].astype(np.float32), expression_deltas=deltas,
        faces=template.faces, uv=arrays["uv"], uv_faces=arrays["uv_faces"], face_parts=template.face_parts,
        part_names=template.part_names, neck_pivot=arrays["neck_pivot"], texture=arrays["texture"],
        meta={"created_by": "avatar listen (built-in default avatar)"}, hair=hair,
    )


def write_default_avatar(bundle: AvatarBundle, path: str | os.PathLike, texture_size: int = 256) -> Path:
    """Store an avatar compactly as the built-in default (see the module docstring).

    Args:
        bundle: an avatar on the template topology.
        path: the ``.npz`` to write (replaced atomically).
        texture_size: side of the stored texture.
    """
    from PIL import Image

    template = load_template()
    if bundle.vertices.shape[0] != template.neutral.shape[0] or bundle.faces.shape[0] != template.faces.shape[0]:
        raise AvatarInputError("the default avatar must use the template topology")
    deltas = bundle.expression_deltas.float().numpy()
    scale = np.abs(deltas).reshape(deltas.shape[0], -1).max(axis=1) / 127.0
    scale = np.maximum(scale, 1e-8).astype(np.float32)
    quantized = np.round(deltas / scale[:, None, None]).astype(np.int8)
    texture = (bundle.texture.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    texture = np.asarray(Image.fromarray(texture).resize((texture_size, texture_size), Image.LANCZOS))
    hair = {}
    if bundle.hair is not None:
        hair_texture = (bundle.hair.texture.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        hair = {"hair_vertices": bundle.hair.vertices.numpy().astype(np.float32),
                "hair_faces": bundle.hair.faces.numpy().astype(np.int32),
                "hair_uv": bundle.hair.uv.numpy().astype(np.float32),
                "hair_uv_faces": bundle.hair.uv_faces.numpy().astype(np.int32),
                "hair_texture": np.asarray(Image.fromarray(hair_texture).resize((texture_size, texture_size),
                                                                                 Image.LANCZOS))}
    with atomic_output_file(path, force=True) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, vertex_offsets=(bundle.vertices.numpy() - template.neutral).astype(np.float16),
                            deltas=quantized, delta_scale=scale, texture=texture,
                            neck_pivot=bundle.neck_pivot.numpy().astype(np.float32),
                            uv=bundle.uv.numpy().astype(np.float32), uv_faces=bundle.uv_faces.numpy().astype(np.int32),
                            **hair)
    return Path(path)
