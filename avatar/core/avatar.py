"""An avatar in memory: the baked head of one identity, ready to pose and render (:class:`Avatar`).

``avatar.fit``, ``avatar.load``, ``avatar.generate`` and ``avatar.edit`` (:mod:`avatar.api`) return one. It
holds an :class:`~avatar.core.bundle.AvatarBundle` — the neutral mesh and one morph target per expression (the
53 of :mod:`avatar.core.expressions`; ARKit's and ICT's names both work) with the texture — so rendering any
expression is a linear blend plus one rasterization; no model is needed after fitting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import torch

import renderers as dr
from avatar.core.bundle import AvatarBundle, write_bundle
from avatar.core.colour import encode_rgba, srgb_to_linear
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, weights_from_mapping
from avatar.core.geometry import axis_angle_to_matrix, euler_to_matrix

__all__ = ["Avatar"]


class Avatar:
    """One animatable, textured head (see the module docstring).

    Attributes:
        bundle: the data (:class:`avatar.core.bundle.AvatarBundle`).
        report: the fit report (``None`` for avatars not made by fitting).
        preview: the fit's preview image, shape :math:`(H, W, 3)` uint8, or ``None``.
    """

    def __init__(self, bundle: AvatarBundle):
        self.bundle = bundle
        self._cameras: dict = {}
        self._texture_cache: tuple | None = None

    # ---------------------------------------------------------------- properties
    @property
    def expression_names(self) -> tuple[str, ...]:
        """The 53 expression names (ICT order and spelling; ARKit's names are accepted everywhere too)."""
        return self.bundle.expression_names

    @property
    def z_geo(self) -> torch.Tensor:
        """Identity geometry code, shape :math:`(K,)`."""
        return self.bundle.z_geo

    @property
    def z_tex(self) -> torch.Tensor:
        """Texture code, shape :math:`(T,)`."""
        return self.bundle.z_tex

    @property
    def texture(self) -> np.ndarray:
        """The albedo texture, shape :math:`(S, S, 3)` uint8 (row 0 at the top)."""
        return (self.bundle.texture.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

    @property
    def report(self) -> dict | None:
        return self.bundle.report

    @property
    def preview(self) -> np.ndarray | None:
        return self.bundle.preview

    def __repr__(self) -> str:
        made = self.bundle.meta.get("created_by", "?")
        return f"Avatar({made}, z_geo={self.z_geo.numel()}, vertices={self.bundle.vertices.shape[0]})"

    # ---------------------------------------------------------------- geometry
    def expression_weights(self, expression) -> torch.Tensor:
        """An expression as 53 weights in [0, 1].

        Args:
            expression: ``None`` (neutral), ``"fitted"`` (the photo's), a mapping with ARKit's or ICT's names
                (``{"jawOpen": 0.4, "mouthSmileLeft": 0.6}``; ARKit's ``browInnerUp`` and ``cheekPuff`` set
                both of ICT's sides, ``tongueOut`` has no shape), or 53 numbers in
                :data:`~avatar.core.expressions.EXPRESSION_NAMES` order (array or tensor).

        Returns:
            weights, shape :math:`(53,)`.
        """
        names = self.expression_names
        if expression is None:
            return torch.zeros(len(names))
        if isinstance(expression, str):
            if expression != "fitted":
                raise AvatarInputError(f"expression {expression!r}: pass a dict of ARKit names, 53 weights, or 'fitted'")
            return self.bundle.expression.clone()
        if isinstance(expression, Mapping):
            weights = torch.from_numpy(weights_from_mapping(expression))
            if tuple(names) != EXPRESSION_NAMES:  # a bundle that lists the same 53 in another order
                weights = weights[[EXPRESSION_NAMES.index(n) for n in names]]
        else:
            weights = torch.as_tensor(np.asarray(expression, dtype=np.float32)).reshape(-1)
            if weights.numel() != len(names):
                raise AvatarInputError(f"expression must have {len(names)} weights, got {weights.numel()}")
        if not bool(torch.isfinite(weights).all()):
            raise AvatarInputError("expression weights must be finite numbers")
        return weights.clamp(0.0, 1.0)

    def vertices(self, expression=None, pose=None) -> torch.Tensor:
        """Mesh vertices for an expression and head pose.

        Args:
            expression: see :meth:`expression_weights`.
            pose: head rotation (axis-angle, rad) shape :math:`(3,)`, or rotation + translation (cm)
                shape :math:`(6,)`; ``None`` for the rest pose.

        Returns:
            vertices in centimetres (head frame), shape :math:`(V, 3)`.
        """
        weights = self.expression_weights(expression)
        deltas = self.bundle.expression_deltas
        verts = self.bundle.vertices + (weights @ deltas.reshape(len(weights), -1)).reshape(-1, 3)
        return verts if pose is None else self._posed(verts, pose)

    # ---------------------------------------------------------------- rendering
    def _default_camera(self, size: tuple[int, int]) -> dr.Camera:
        if size not in self._cameras:
            keep = self.bundle.export_face_mask()
            used = torch.unique(self.bundle.faces[keep].long())
            framed = self.bundle.vertices[used]
            if self.bundle.hair is not None:  # the portrait frames the hair too
                framed = torch.cat([framed, self.bundle.hair.vertices])
            self._cameras[size] = dr.frame_points(framed, size, fill=0.8)
        return self._cameras[size]

    def _linear_texture(self) -> torch.Tensor:
        """The render texture decoded to linear light, once per texture (renders are often called per frame)."""
        key = (id(self.bundle.texture), id(self.bundle.hair))
        if self._texture_cache is None or self._texture_cache[0] != key:
            self._texture_cache = (key, srgb_to_linear(self.bundle.render_texture()))
        return self._texture_cache[1]

    def render(self, expression=None, pose=None, camera: dr.Camera | None = None, size: int | tuple[int, int] = 512,
               yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, light: torch.Tensor | str | None = None,
               background: tuple[float, float, float] | None = (1.0, 1.0, 1.0)) -> np.ndarray:
        """Render the avatar.

        Args:
            expression: see :meth:`expression_weights` (e.g. ``{"jawOpen": 0.4}``).
            pose: head pose, see :meth:`vertices`; composed after ``yaw``/``pitch``/``roll``.
            camera: a :class:`renderers.Camera`; default a fixed frontal portrait framing of the head.
            size: image size, ``int`` or ``(H, W)`` (ignored with ``camera``).
            yaw, pitch, roll: head rotation in radians (yaw turns the face to its left, pitch raises the
                chin, roll tilts it), about the neck pivot.
            light: SH coefficients :math:`(1, 9, C)`, ``"photo"`` (the fitted lighting, when present) or
                ``None`` (the default studio light).
            background: RGB in [0, 1] to composite over, or ``None`` for RGBA with transparency.

        Returns:
            the image, shape :math:`(H, W, 3)` uint8 (``(H, W, 4)`` with ``background=None``), row 0 at the top.
        """
        if isinstance(size, int):
            size = (size, size)
        size = (int(size[0]), int(size[1]))
        if min(size) < 1 or max(size) > 8192:
            raise AvatarInputError(f"size must be between 1 and 8192 pixels, got {size}")
        for name, value in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
            if not math.isfinite(float(value)):
                raise AvatarInputError(f"{name} must be a finite number of radians")
        verts = self.vertices(expression)
        # yaw turns the face to its left, pitch raises the chin (hence -pitch about x), roll tilts it
        rotation = euler_to_matrix(*(torch.tensor(float(a)) for a in (yaw, -pitch, roll)))
        pivot = self.bundle.neck_pivot
        verts = (verts - pivot) @ rotation.T + pivot
        if pose is not None:
            verts = self._posed(verts, pose)
        if light is None:
            sh = dr.default_sh()
        elif isinstance(light, str):
            if light != "photo" or self.bundle.sh_light is None:
                raise AvatarInputError("light='photo' needs a fitted avatar; pass SH coefficients or None")
            sh = self.bundle.sh_light.reshape(1, 9, -1)
        else:
            sh = torch.as_tensor(light, dtype=torch.float32)
        camera = camera if camera is not None else self._default_camera(size)
        with torch.no_grad():
            verts, faces, uv, uv_faces = self.bundle.render_mesh(verts[None])  # the hair, if any, too
            out = dr.render_mesh(verts, faces, uv, uv_faces, self._linear_texture(), camera, sh)
        return dr.to_uint8_image(encode_rgba(out.rgba[0]), background)

    def _posed(self, verts: torch.Tensor, pose) -> torch.Tensor:
        pose = torch.as_tensor(np.asarray(pose, dtype=np.float32)).reshape(-1)
        if pose.numel() not in (3, 6) or not bool(torch.isfinite(pose).all()):
            raise AvatarInputError("pose must be 3 (axis-angle, rad) or 6 (plus translation, cm) finite numbers")
        matrix = axis_angle_to_matrix(pose[:3])
        pivot = self.bundle.neck_pivot
        verts = (verts - pivot) @ matrix.T + pivot
        return verts + pose[3:] if pose.numel() == 6 else verts

    # ---------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike, force: bool = False):
        """Write the bundle folder (see :mod:`avatar.core.bundle`); returns its path.

        Raises:
            AvatarInputError: the folder exists and ``force`` is false.
        """
        return write_bundle(directory, self.bundle, force=force)
