"""Fast frames of an avatar driven by code rows (listener codes, tracked motion): linear blend + one drawing pass.

Used by ``avatar listen`` for its output and by ``avatar track --preview``; :meth:`avatar.Avatar.render`
is the full-quality single-frame path.

Per frame: vertices = neutral + weights · morph targets (the avatar's baked per-identity
expression deltas), turned about the neck pivot by the head pose and taken to clip space by one
4 x 4 matrix; back-facing triangles are culled per frame; :func:`renderers.draw_textured` (one
compiled pass: the visibility of :func:`renderers.rasterize`, the UV lookup of
:func:`renderers.interpolate` + :func:`renderers.texture`, the composite) draws the albedo shaded
by per-vertex SH irradiance of the *rest-pose* normals turned with the head (the expression's
effect on shading is left out: at listener sizes it is invisible, and recomputing normals would
cost more than the drawing). Frames are rendered in batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import renderers as dr
from avatar.core.bundle import merged_texture, with_hair
from avatar.core.code_layout import EXPRESSION_SLICE, ROTATION_SLICE, TRANSLATION_SLICE
from avatar.core.colour import srgb_shade
from avatar.core.geometry import axis_angle_to_matrix
from avatar.core.threads import single_thread


def _compact(faces: torch.Tensor, num_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The vertices ``faces (F, 3)`` use (sorted, :math:`(U,)` long) and the faces renumbered onto them (int32)."""
    index = faces.long().numpy()
    used = np.flatnonzero(np.bincount(index.ravel(), minlength=num_vertices))
    remap = np.zeros(num_vertices, np.int32)
    remap[used] = np.arange(used.size, dtype=np.int32)
    return torch.from_numpy(used), torch.from_numpy(remap[index])


#: Parts left out of these renders: hidden behind closed or slightly parted lips.
HIDDEN_PARTS = ("M_GumsTongue",)


def _fibonacci_sphere(count: int) -> torch.Tensor:
    index = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * index / count
    phi = index * math.pi * (3 - math.sqrt(5))
    radius = (1 - z * z).sqrt()
    return torch.stack([radius * phi.cos(), radius * phi.sin(), z], dim=1).float()


class CodeRenderer:
    """Render an avatar's head for code rows (:mod:`avatar.core.code_layout`) at a small size.

    Args:
        avatar: an :class:`avatar.Avatar` or its :class:`~avatar.core.bundle.AvatarBundle` (vertices, expression
            deltas, faces, uv, texture).
        size: output side in pixels.
        background: RGB in [0, 1].
        batch: frames rendered per rasterization call.

    Example:
        >>> renderer = CodeRenderer(avatar, 256)            # doctest: +SKIP
        >>> frames = renderer.render(codes)                     # (T, 256, 256, 3) uint8
    """

    def __init__(self, avatar, size: int = 256, background=(1.0, 1.0, 1.0), batch: int = 8) -> None:
        bundle = getattr(avatar, "bundle", avatar)
        hidden = [bundle.part_names.index(n) for n in HIDDEN_PARTS if n in bundle.part_names]
        keep = bundle.export_face_mask() & ~torch.isin(bundle.face_parts.long(), torch.tensor(hidden, dtype=torch.long))
        used, faces = _compact(bundle.faces[keep], bundle.vertices.shape[0])
        self.size, self.batch = int(size), int(batch)
        rest, uv, uv_faces, texture = bundle.vertices[used].float(), bundle.uv, bundle.uv_faces[keep], bundle.texture
        deltas = bundle.expression_deltas[:, used].float()
        if bundle.hair is not None:  # the hair layer is rigid: no morph deltas
            merged = with_hair(rest[None], faces, uv, uv_faces, bundle.hair, torch.eye(3)[None], torch.zeros(1, 1, 3),
                               bundle.neck_pivot)
            rest, faces, uv, uv_faces = merged[0][0], *merged[1:]
            texture = merged_texture(texture, bundle.hair)
            deltas = torch.cat([deltas, deltas.new_zeros(deltas.shape[0], rest.shape[0] - deltas.shape[1], 3)], 1)
        self.num_head_faces = int(keep.sum())
        self.faces = faces.to(torch.int32)
        self.uv_faces = uv_faces.to(torch.int32)
        self.uv = torch.stack([uv[:, 0], 1 - uv[:, 1]], dim=-1).contiguous()  # v up → row down
        self.rest = rest
        # the blend is one matrix product on flat (x, y, z) rows: rest + weights @ deltas
        self.rest_flat = self.rest.reshape(1, -1)
        self.deltas = deltas.reshape(deltas.shape[0], -1)
        self.pivot = bundle.neck_pivot.float()
        self.texture = texture.float().contiguous()  # (Ht, Wt, 3)
        # the avatar's default portrait framing (Avatar._default_camera, hair included), without its slow torch.unique
        exported, _ = _compact(bundle.faces[bundle.export_face_mask()], bundle.vertices.shape[0])
        framed = bundle.vertices[exported] if bundle.hair is None else torch.cat([bundle.vertices[exported],
                                                                                  bundle.hair.vertices])
        self.camera = dr.frame_points(framed, (self.size, self.size), fill=0.8)
        self.clip_matrix = (self.camera.projection @ self.camera.view)[0].float()  # world -> clip
        self.light = dr.default_sh()
        self.background = torch.tensor(background, dtype=torch.float32)
        normals = dr.mesh.vertex_normals(self.rest[None], self.faces)[0]
        tri = self.rest[self.faces.long()]
        self.face_normals = torch.nn.functional.normalize(
            torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
        view = torch.linalg.inv(self.camera.view[0])
        centre = self.rest.mean(dim=0)
        self.to_camera = torch.nn.functional.normalize(view[:3, 3] - centre, dim=0)
        # shading is a band-2 SH function of the normal: fit it on sample directions once per frame
        self.directions = _fibonacci_sphere(32)
        self.fit = torch.linalg.pinv(dr.lighting.sh_basis(self.directions))  # (9, 32)
        self.basis = dr.lighting.sh_basis(normals)  # (V, 9) rest-pose normals

    def render(self, codes: torch.Tensor, parallel: bool = True) -> np.ndarray:
        """Frames for code rows.

        Args:
            codes: :math:`(T, 59)` codes.
            parallel: draw the frames of a batch on all numba threads; ``False`` draws them in the
                calling thread, mostly without the GIL (for a rendering thread next to other work).

        Returns:
            :math:`(T, size, size, 3)` uint8, row 0 at the top.
        """
        codes = torch.as_tensor(codes, dtype=torch.float32)
        with single_thread():
            frames = [self._render(codes[i:i + self.batch], parallel) for i in range(0, codes.shape[0], self.batch)]
        return np.concatenate(frames) if frames else np.zeros((0, self.size, self.size, 3), np.uint8)

    @torch.no_grad()
    def _render(self, codes: torch.Tensor, parallel: bool = True) -> np.ndarray:
        count = codes.shape[0]
        weights = codes[:, EXPRESSION_SLICE].clamp(0.0, 1.0)
        verts = torch.addmm(self.rest_flat, weights, self.deltas).reshape(count, -1, 3)
        rotation = axis_angle_to_matrix(codes[:, ROTATION_SLICE])
        # one 4 x 4 per frame: the head pose about the neck pivot, then the camera (projection @ view)
        pose = torch.eye(4).repeat(count, 1, 1)
        pose[:, :3, :3] = rotation
        pose[:, :3, 3] = self.pivot + codes[:, TRANSLATION_SLICE] - rotation @ self.pivot
        matrix = self.clip_matrix @ pose
        clip = torch.baddbmm(matrix[:, None, :, 3], verts, matrix[:, :, :3].transpose(1, 2))  # (B, V, 4)
        # back-face culling per frame: rest-pose face normals turned with the head (a margin for perspective)
        front = (rotation.transpose(1, 2) @ self.to_camera) @ self.face_normals.T > -0.3  # (B, F)
        front[:, self.num_head_faces:] = True  # the hair shell is thin and folded: draw both of its sides
        # shading of the turned rest normals: SH coefficients refitted for each frame's rotation
        turned = self.directions @ rotation.transpose(1, 2)  # (B, 32, 3): R s
        shade_samples = dr.sh_shade(turned, self.light.expand(count, -1, -1))  # shading of R s
        shade_v = srgb_shade(self.basis @ (self.fit @ shade_samples))  # (B, V, 3), linear light on sRGB texels
        return dr.draw_textured(clip, self.faces, self.uv, self.uv_faces, self.texture, (self.size, self.size),
                                shade=shade_v, tri_mask=front, background=self.background, boundary_mode="clamp",
                                parallel=parallel)


__all__ = ["HIDDEN_PARTS", "CodeRenderer"]
