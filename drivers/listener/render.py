"""Fast frames of an avatar for listener codes (``avatar listen``): linear blend + one rasterization.

Per frame: vertices = neutral + weights · morph targets (the avatar's baked per-identity
expression deltas), turned about the neck pivot by the head pose; back-facing triangles are
culled; :func:`renderers.rasterize` (CPU backend) gives triangle ids and barycentrics; the albedo
is looked up through the interpolated UVs (:func:`renderers.interpolate` + :func:`renderers.texture`)
and shaded by per-vertex SH irradiance of the *rest-pose* normals turned with the head (the
expression's effect on shading is left out: at listener sizes it is invisible, and recomputing
normals would cost more than the rasterization). Frames are rendered in batches.
"""

from __future__ import annotations

import numpy as np
import torch

import renderers as dr
from drivers.listener import EXPRESSION_SLICE, ROTATION_SLICE, TRANSLATION_SLICE


def _vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = verts[faces.long()]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    out = torch.zeros_like(verts).index_add_(0, faces.long().reshape(-1), normal.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(out, dim=-1, eps=1e-12)


class ListenerRenderer:
    """Render an avatar's head for listener codes at a small size.

    Args:
        avatar: an :class:`avatar.Avatar` (its bundle: vertices, expression deltas, faces, uv, texture).
        size: output side in pixels.
        background: RGB in [0, 1].
        batch: frames rendered per rasterization call.

    Example:
        >>> renderer = ListenerRenderer(avatar, 256)            # doctest: +SKIP
        >>> frames = renderer.render(codes)                     # (T, 256, 256, 3) uint8
    """

    def __init__(self, avatar, size: int = 256, background=(1.0, 1.0, 1.0), batch: int = 8) -> None:
        from kornia.geometry.conversions import axis_angle_to_rotation_matrix

        self._rotation = axis_angle_to_rotation_matrix
        bundle = avatar.bundle
        keep = bundle.export_face_mask()
        faces = bundle.faces[keep].long()
        used, remap = torch.unique(faces, return_inverse=True)
        self.size, self.batch = int(size), int(batch)
        self.faces = remap.reshape(-1, 3).to(torch.int32)
        self.uv_faces = bundle.uv_faces[keep].to(torch.int32)
        self.uv = torch.stack([bundle.uv[:, 0], 1 - bundle.uv[:, 1]], dim=-1).contiguous()  # v up → row down
        self.rest = bundle.vertices[used].float()
        self.deltas = bundle.expression_deltas[:, used].float().reshape(bundle.expression_deltas.shape[0], -1)
        self.pivot = bundle.neck_pivot.float()
        self.texture = bundle.texture.float()[None].contiguous()
        self.camera = avatar._default_camera((self.size, self.size))
        self.normals = _vertex_normals(self.rest, self.faces)
        self.light = dr.default_sh()
        self.background = torch.tensor(background, dtype=torch.float32)

    def render(self, codes: torch.Tensor) -> np.ndarray:
        """Frames for listener codes.

        Args:
            codes: :math:`(T, 59)` listener codes.

        Returns:
            :math:`(T, size, size, 3)` uint8, row 0 at the top.
        """
        codes = torch.as_tensor(codes, dtype=torch.float32)
        frames = [self._render(codes[i:i + self.batch]) for i in range(0, codes.shape[0], self.batch)]
        return np.concatenate(frames) if frames else np.zeros((0, self.size, self.size, 3), np.uint8)

    @torch.no_grad()
    def _render(self, codes: torch.Tensor) -> np.ndarray:
        count = codes.shape[0]
        weights = codes[:, EXPRESSION_SLICE].clamp(0.0, 1.0)
        verts = self.rest + (weights @ self.deltas).reshape(count, -1, 3)
        rotation = self._rotation(codes[:, ROTATION_SLICE])
        verts = (verts - self.pivot) @ rotation.transpose(1, 2) + self.pivot + codes[:, None, TRANSLATION_SLICE]
        clip = self.camera.to_clip(verts).contiguous()
        # back-face culling (counter-clockwise front faces in clip space), shared over the batch
        ndc = clip[..., :2] / clip[..., 3:].clamp_min(1e-6)
        tri = ndc[:, self.faces.long()]
        area = ((tri[:, :, 1, 0] - tri[:, :, 0, 0]) * (tri[:, :, 2, 1] - tri[:, :, 0, 1])
                - (tri[:, :, 2, 0] - tri[:, :, 0, 0]) * (tri[:, :, 1, 1] - tri[:, :, 0, 1]))
        front = (area > 0).any(dim=0)
        faces, uv_faces = self.faces[front].contiguous(), self.uv_faces[front].contiguous()
        rast, _ = dr.rasterize(clip, faces, resolution=(self.size, self.size), grad_db=False, backend="cpu")
        uv_pix, _ = dr.interpolate(self.uv, rast, uv_faces, backend="cpu")
        albedo = dr.texture(self.texture, uv_pix, filter_mode="linear", boundary_mode="clamp")
        normals = self.normals @ rotation.transpose(1, 2)
        shade_v = dr.sh_shade(normals, self.light).contiguous()
        shade, _ = dr.interpolate(shade_v, rast, faces, backend="cpu")
        mask = rast[..., 3:] > 0
        colour = torch.where(mask, albedo * shade, self.background)
        image = (colour.flip(1).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return image.numpy()


__all__ = ["ListenerRenderer"]
