"""Binary glTF (``.glb``) with a base-colour texture, named morph targets and a neck pivot node.

trimesh does not write morph targets, so the file is assembled with pygltflib. What importers see:

- one mesh, one primitive: ``POSITION``, ``NORMAL``, ``TEXCOORD_0`` (glTF's uv origin is the image's
  top-left, so ``v_gltf = 1 - v``), ``uint32`` indices, and a PNG embedded as the base colour of a
  non-metallic PBR material;
- one morph target per expression: ``POSITION`` deltas only (stored as sparse accessors where most
  vertices do not move), default weight 0, names in ``mesh.extras.targetNames`` — the convention
  Blender, three.js, Babylon.js and Unity's glTFast read;
- nodes ``neck`` → ``head``: ``neck`` sits at the neck pivot, ``head`` (the mesh) carries the inverse
  offset, so the mesh is where it was and rotating ``neck`` turns the head about the pivot. Plain node
  transforms, no skin.

glTF's unit is the metre; inputs are the template's centimetres, hence ``scale=0.01`` by default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pygltflib as gl

from avatar.core.errors import AvatarInputError
from avatar.core.export.mesh import TexturedMesh, as_numpy, encode_png, split_uv_seams
from avatar.core.geometry import vertex_normals
from avatar.core.io import atomic_write_bytes

CM_TO_M = 0.01


class _BinaryChunk:
    """Collects the GLB binary chunk: 4-byte aligned buffer views and their accessors."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf = gltf
        self.parts: list[bytes] = []
        self.length = 0

    def view(self, data: bytes, target: int | None = None) -> int:
        """Append ``data`` as a new buffer view; returns its index."""
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.length, byteLength=len(data), target=target))
        padded = data + b"\0" * (-len(data) % 4)
        self.parts.append(padded)
        self.length += len(padded)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        """A dense accessor over a new view holding ``array`` (float32 or uint32); returns its index."""
        array = np.ascontiguousarray(array)
        component = gl.FLOAT if array.dtype == np.float32 else gl.UNSIGNED_INT
        accessor = gl.Accessor(
            bufferView=self.view(array.tobytes(), target),
            componentType=component,
            count=len(array) if kind != gl.SCALAR else array.size,
            type=kind,
        )
        if bounds:
            accessor.min, accessor.max = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, array: np.ndarray) -> int:
        """A float VEC3 accessor storing only the non-zero rows of ``array`` :math:`(N, 3)`; returns its index."""
        rows = np.flatnonzero(np.any(array != 0, axis=1))
        if len(rows) == 0:
            rows = np.array([0])  # a sparse accessor needs at least one entry
        accessor = gl.Accessor(
            byteOffset=None,  # no bufferView: the base is all zeros
            componentType=gl.FLOAT,
            count=len(array),
            type=gl.VEC3,
            min=array.min(axis=0).tolist(),
            max=array.max(axis=0).tolist(),
            sparse=gl.Sparse(
                count=len(rows),
                indices=gl.AccessorSparseIndices(bufferView=self.view(rows.astype(np.uint32).tobytes()), componentType=gl.UNSIGNED_INT),
                values=gl.AccessorSparseValues(bufferView=self.view(np.ascontiguousarray(array[rows]).tobytes())),
            ),
        )
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.parts)


def glb_bytes(
    mesh: TexturedMesh,
    morph_deltas=None,
    morph_names: Sequence[str] = (),
    neck_pivot=(0.0, 0.0, 0.0),
    scale: float = CM_TO_M,
    morph_tolerance: float = 1e-6,
    hair: TexturedMesh | None = None,
    name: str = "head",
) -> bytes:
    """Encode a textured mesh with morph targets as GLB bytes (see the module docstring).

    Args:
        mesh: the mesh, its uvs and texture (positions in input units).
        morph_deltas: :math:`(K, V, 3)` position offsets per target in input units, or ``None``.
        morph_names: K target names (e.g. :data:`avatar.core.motion.EXPRESSION_NAMES`).
        neck_pivot: :math:`(3,)` the point head rotations turn about, in input units.
        scale: input units → metres (0.01 for centimetres).
        morph_tolerance: offsets with every component at most this (in metres) are stored as 0.
        name: name of the mesh and its node.
        hair: a rigid hair mesh with its own texture, written as a second node ``hair`` beside the head's (same
            pivot), or ``None``.

    Returns:
        the ``.glb`` file's bytes.
    """
    morph_deltas = np.zeros((0, len(mesh.vertices), 3), np.float32) if morph_deltas is None else as_numpy(morph_deltas, np.float32)
    morph_names = [str(n) for n in morph_names]
    if morph_deltas.ndim != 3 or morph_deltas.shape[1:] != mesh.vertices.shape:
        raise AvatarInputError(f"morph_deltas must be K x {len(mesh.vertices)} x 3, got shape {morph_deltas.shape}")
    if len(morph_names) != len(morph_deltas):
        raise AvatarInputError(f"got {len(morph_names)} morph names for {len(morph_deltas)} morph targets")
    if not np.isfinite(morph_deltas).all():
        raise AvatarInputError("morph_deltas contain NaN or infinite values")
    pivot = as_numpy(neck_pivot, np.float64).reshape(-1)
    if pivot.shape != (3,) or not np.isfinite(pivot).all():
        raise AvatarInputError(f"neck_pivot must be 3 finite numbers, got {neck_pivot}")
    if not (np.isfinite(scale) and scale > 0):
        raise AvatarInputError(f"scale must be positive, got {scale}")

    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator="avatar-engine"))
    chunk = _BinaryChunk(gltf)
    split, attributes, indices = _geometry(chunk, mesh, scale)
    targets = []
    for deltas in morph_deltas:
        deltas = (deltas[split.vertex_ids] * scale).astype(np.float32)
        deltas[np.all(np.abs(deltas) <= morph_tolerance, axis=1)] = 0.0
        moving = np.count_nonzero(np.any(deltas != 0, axis=1))
        if moving * 16 < len(deltas) * 12:  # sparse: 4-byte index + 12-byte value per moving vertex
            targets.append(gl.Attributes(POSITION=chunk.sparse_vec3(deltas)))
        else:
            targets.append(gl.Attributes(POSITION=chunk.accessor(deltas, gl.VEC3, gl.ARRAY_BUFFER, bounds=True)))

    gltf.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR, wrapS=gl.REPEAT, wrapT=gl.REPEAT))
    _material(gltf, chunk, mesh.texture, "skin", roughness=0.7, image_name="texture")
    primitive = gl.Primitive(attributes=attributes, indices=indices, material=0, targets=targets or None)
    gl_mesh = gl.Mesh(name=name, primitives=[primitive], weights=[0.0] * len(targets) or None)
    if targets:
        gl_mesh.extras = {"targetNames": morph_names}
    gltf.meshes.append(gl_mesh)
    if hair is not None:
        _append_hair(gltf, chunk, hair, scale)

    offset = (pivot * scale).tolist()
    gltf.nodes.append(gl.Node(name="neck", translation=offset, children=[1, 2] if hair is not None else [1]))
    gltf.nodes.append(gl.Node(name=name, mesh=0, translation=[-x for x in offset]))
    if hair is not None:
        gltf.nodes.append(gl.Node(name="hair", mesh=1, translation=[-x for x in offset]))
    gltf.scenes.append(gl.Scene(name="avatar", nodes=[0]))
    gltf.scene = 0

    blob = chunk.blob()
    gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    gltf.set_binary_blob(blob)
    return b"".join(gltf.save_to_bytes())


def _geometry(chunk, mesh: TexturedMesh, scale: float):
    """A textured mesh's vertex attributes and indices (split at uv seams), in metres; returns the split too."""
    split = split_uv_seams(mesh.faces, mesh.uv_faces)
    positions = (mesh.vertices[split.vertex_ids] * scale).astype(np.float32)
    normals = vertex_normals(mesh.vertices, mesh.faces)[split.vertex_ids]
    texcoords = mesh.uv[split.uv_ids] * np.float32([1.0, -1.0]) + np.float32([0.0, 1.0])
    attributes = gl.Attributes(
        POSITION=chunk.accessor(positions, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=chunk.accessor(normals, gl.VEC3, gl.ARRAY_BUFFER),
        TEXCOORD_0=chunk.accessor(texcoords.astype(np.float32), gl.VEC2, gl.ARRAY_BUFFER),
    )
    indices = chunk.accessor(split.faces.astype(np.uint32).reshape(-1), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    return split, attributes, indices


def _material(gltf, chunk, texture: np.ndarray, name: str, roughness: float, image_name: str) -> int:
    """A PNG-textured, non-metallic material using sampler 0; returns its index."""
    gltf.images.append(gl.Image(bufferView=chunk.view(encode_png(texture)), mimeType="image/png", name=image_name))
    gltf.textures.append(gl.Texture(sampler=0, source=len(gltf.images) - 1))
    gltf.materials.append(gl.Material(name=name, pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorTexture=gl.TextureInfo(index=len(gltf.textures) - 1), metallicFactor=0.0, roughnessFactor=roughness)))
    return len(gltf.materials) - 1


def _append_hair(gltf, chunk, hair: TexturedMesh, scale: float) -> None:
    """The hair layer as mesh 1 with its own texture and material (no morph targets: it is rigid)."""
    _, attributes, indices = _geometry(chunk, hair, scale)
    material = _material(gltf, chunk, hair.texture, "hair", roughness=0.85, image_name="hair")
    gltf.meshes.append(gl.Mesh(name="hair", primitives=[gl.Primitive(attributes=attributes, indices=indices,
                                                                     material=material)]))


def write_glb(path: str | os.PathLike, mesh: TexturedMesh, *, force: bool = False, **options) -> Path:
    """Write :func:`glb_bytes` of ``mesh`` to ``path`` atomically; ``options`` as for :func:`glb_bytes`.

    Raises:
        AvatarInputError: ``path`` exists and ``force`` is false, or bad mesh / morph inputs.
    """
    return atomic_write_bytes(path, glb_bytes(mesh, **options), force=force)
