"""Public surface of the morphable face model: :class:`FaceModel`.

>>> from avatar.morphable.api import FaceModel
>>> fm = FaceModel.load()                          # shipped weights in assets/morphable
>>> z = torch.zeros(1, fm.geo_dim); w = torch.zeros(1, 53); w[0, fm.expression_names.index("jawOpen")] = .5
>>> d = fm.sdf(points, z, w)                       # (B, N) signed distance in cm, negative inside
>>> mesh = fm.mesh(z, w, mode="template")         # template topology, UVs, eyes and teeth
>>> baked = fm.bake(z)                             # 53 morph targets: animation is a linear blend
>>> albedo = fm.texture(torch.zeros(1, fm.tex_dim))  # (1, 3, 256, 512) UV albedo atlas

Units are centimetres in the template's head frame (x left, y up, z forward). Codes: ``z_geo``
(B, geo_dim) ~ N(0, 1); ``expr`` (B, 53) ARKit weights in [0, 1] — values outside are clamped with
a warning, NaN/inf or wrong sizes raise :class:`avatar.core.errors.AvatarInputError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR
from avatar.morphable.codes import check_codes
from avatar.morphable.extract import narrow_band_mesh
from avatar.morphable.geometry import close_neck
from avatar.morphable.io import load_weights
from avatar.morphable.model import MorphableSDF
from avatar.morphable.template import Template, load_template
from avatar.morphable.texture import TextureDecoder

WEIGHTS_DIR = ASSETS_DIR / "morphable"
MESH_MODES = ("template", "narrow_band")


@dataclass
class FaceMesh:
    """A mesh from the model (torch tensors, centimetres).

    Attributes:
        vertices: shape :math:`(V, 3)` float32.
        faces: shape :math:`(F, 3)` int32.
        uv: texture coordinates (ICT layout), shape :math:`(V_t, 2)`; ``None`` when not computed.
        uv_faces: uv index per triangle corner, shape :math:`(F, 3)` int32 (``None`` with ``uv``).
        face_parts: part id per triangle, shape :math:`(F,)` (template mode; ``None`` otherwise).
        part_names: names for ``face_parts``.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    face_parts: torch.Tensor | None = None
    part_names: tuple[str, ...] = ()


@dataclass
class BakedTargets:
    """Per-identity morph targets: ``vertices = neutral + Σ_k w_k targets[k]`` (template topology).

    Attributes:
        neutral: shape :math:`(V, 3)`.
        targets: shape :math:`(53, V, 3)` (offsets from ``neutral``).
        names: the 53 ARKit names in ICT order.
    """

    neutral: torch.Tensor
    targets: torch.Tensor
    names: tuple[str, ...]

    def blend(self, expr: torch.Tensor) -> torch.Tensor:
        """Linear blend.

        Args:
            expr: shape :math:`(B, 53)`.

        Returns:
            vertices, shape :math:`(B, V, 3)`.
        """
        return self.neutral[None] + torch.einsum("bk,kvc->bvc", expr, self.targets)


class FaceModel:
    """The implicit morphable head: geometry SDF, template-mode meshes, baking and texture.

    Args:
        model: geometry network.
        texture_decoder: z_tex → albedo decoder.
        template: the template head (topology, UVs, parts).
        record: the config/training record stored with the weights.
    """

    def __init__(self, model: MorphableSDF, texture_decoder: TextureDecoder, template: Template, record: dict) -> None:
        self.model = model
        self.texture_decoder = texture_decoder
        self.template = template
        self.record = record
        self.rest = torch.from_numpy(np.array(template.neutral, dtype=np.float32))
        self.skin_ids = torch.from_numpy(template.skin_vertex_ids)
        skin_faces = template.skin_faces
        remap = np.full(len(template.neutral), -1, dtype=np.int64)
        remap[template.skin_vertex_ids] = np.arange(len(template.skin_vertex_ids))
        self._skin_faces_local = remap[skin_faces]
        # narrow-band seeds: the skin closed by the neck fan, like the canonical SDF's zero set
        seed_v, self._seed_faces = close_neck(
            template.neutral[template.skin_vertex_ids], self._skin_faces_local, remap[template.neck_loop]
        )
        self._seed_vertices = torch.from_numpy(seed_v)
        if model.seed_points.shape[0] == 0:
            model.seed_points = self.rest[self.skin_ids].clone()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> "FaceModel":
        """Load weights (default: the shipped ``assets/morphable``).

        Raises:
            AvatarInputError: missing or corrupt weight files.
        """
        model, texture, record = load_weights(Path(path) if path is not None else WEIGHTS_DIR)
        return cls(model, texture, load_template(), record)

    @property
    def geo_dim(self) -> int:
        return self.model.geo_dim

    @property
    def expr_dim(self) -> int:
        return self.model.expr_dim

    @property
    def tex_dim(self) -> int:
        return self.texture_decoder.code_dim

    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.template.expression_names

    def codes(self, z_geo, expr) -> torch.Tensor:
        """Validated ``[z_geo, expr]``, shape :math:`(B, K)` (see module doc for the rules)."""
        z, w = check_codes(z_geo, expr, self.geo_dim, self.expr_dim)
        return self.model.codes(z, w)

    # ------------------------------------------------------------------ geometry
    def sdf(self, points: torch.Tensor, z_geo: torch.Tensor, expr: torch.Tensor, iterations: int = 6) -> torch.Tensor:
        """Signed distance to the head surface (cm, negative inside).

        Args:
            points: shape :math:`(B, N, 3)` or :math:`(N, 3)` (shared by the batch).
            z_geo: shape :math:`(B, D_{geo})`.
            expr: shape :math:`(B, 53)`.
            iterations: fixed-point steps of the inverse deformation.

        Returns:
            sdf, shape :math:`(B, N)`.
        """
        codes = self.codes(z_geo, expr)
        points = torch.as_tensor(points, dtype=torch.float32)
        if points.ndim == 2:
            points = points[None].expand(codes.shape[0], -1, -1)
        if points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != codes.shape[0]:
            raise AvatarInputError(f"points must have shape (B, N, 3) or (N, 3) matching the codes, got {tuple(points.shape)}")
        if not torch.isfinite(points).all():
            raise AvatarInputError("points contain NaN or infinite values")
        return self.model.sdf(points, codes, iterations)

    def template_vertices(self, z_geo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """Template mode, differentiable in the codes: every template vertex carried onto the shape.

        Args:
            z_geo: shape :math:`(B, D_{geo})`.
            expr: shape :math:`(B, 53)`.

        Returns:
            vertices (cm), shape :math:`(B, V, 3)` in the template's order (faces/uv from the template).
        """
        return self.model.template_vertices(self.rest, self.skin_ids, self.codes(z_geo, expr))

    def mesh(self, z_geo: torch.Tensor, expr: torch.Tensor, mode: str = "template", resolution: int = 256,
             with_uv: bool = True) -> FaceMesh:
        """A mesh for one shape.

        Args:
            z_geo: shape :math:`(1, D_{geo})` or :math:`(D_{geo},)`.
            expr: shape :math:`(1, 53)` or :math:`(53,)`.
            mode: ``"template"`` (template topology, UVs, eyes, teeth — for animation and export) or
                ``"narrow_band"`` (marching cubes of the SDF, skin only).
            resolution: narrow band: lattice vertices along the model box's longest side.
            with_uv: narrow band: also map vertices to ICT UVs (canonical closest point on the template).

        Returns:
            the :class:`FaceMesh`.
        """
        if mode not in MESH_MODES:
            raise AvatarInputError(f"unknown mesh mode {mode!r}; use one of {MESH_MODES}")
        codes = self.codes(z_geo, expr)
        if codes.shape[0] != 1:
            raise AvatarInputError(f"mesh() makes one shape; got a batch of {codes.shape[0]} codes")
        t = self.template
        if mode == "template":
            with torch.no_grad():
                v = self.model.template_vertices(self.rest, self.skin_ids, codes)[0]
            return FaceMesh(v, torch.tensor(t.faces), torch.tensor(t.uv), torch.tensor(t.uv_faces),
                            torch.tensor(t.face_parts), t.part_names)
        if not 16 <= resolution <= 1024:
            raise AvatarInputError(f"resolution must be in [16, 1024], got {resolution}")
        cfg = self.record.get("extract", {})
        verts, faces, _ = narrow_band_mesh(
            self.model, codes, self._seed_vertices, self._seed_faces, resolution=resolution,
            coarse=int(cfg.get("coarse", 64)), iterations=int(cfg.get("iterations", 4)), refine=int(cfg.get("refine", 0)),
        )
        mesh = FaceMesh(torch.from_numpy(verts), torch.from_numpy(faces))
        if with_uv:
            mesh.uv, mesh.uv_faces = self.surface_uv(torch.from_numpy(verts), codes), torch.from_numpy(faces)
        return mesh

    @torch.no_grad()
    def surface_uv(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """ICT UVs of points on the deformed surface: inverse-map to canonical space, take the closest
        point on the template skin and interpolate its UVs (consistent across identities).

        Args:
            points: shape :math:`(N, 3)`.
            codes: shape :math:`(1, K)`.

        Returns:
            uv, shape :math:`(N, 2)`.
        """
        import point_cloud_utils as pcu

        canonical = self.model.inverse_map(points[None], codes)[0].numpy().astype(np.float64)
        t = self.template
        skin = t.part_face_mask()
        _, fid, bary = pcu.closest_points_on_mesh(canonical, t.neutral.astype(np.float64), t.faces[skin].astype(np.int64))
        uv_tri = t.uv[t.uv_faces[skin][fid]]  # (N, 3, 2)
        return torch.from_numpy((uv_tri * np.asarray(bary)[:, :, None]).sum(1).astype(np.float32))

    def bake(self, z_geo: torch.Tensor) -> BakedTargets:
        """Per-identity morph targets: the model at each of the 53 unit expressions (template mode).

        Args:
            z_geo: shape :math:`(1, D_{geo})` or :math:`(D_{geo},)`.

        Returns:
            :class:`BakedTargets` with ``neutral`` (V, 3) and ``targets`` (53, V, 3).
        """
        z, _ = check_codes(z_geo, None, self.geo_dim, self.expr_dim)
        if z.shape[0] != 1:
            raise AvatarInputError("bake() takes one identity code")
        expr = torch.cat([torch.zeros(1, self.expr_dim), torch.eye(self.expr_dim)], 0)
        with torch.no_grad():
            v = self.model.template_vertices(self.rest, self.skin_ids, self.model.codes(z.expand(expr.shape[0], -1), expr))
        return BakedTargets(v[0], v[1:] - v[:1], self.expression_names)

    # ------------------------------------------------------------------ texture
    def texture(self, z_tex: torch.Tensor, height: int | None = 256) -> torch.Tensor:
        """UV albedo atlas (ICT tiles 0–1, u ∈ [0, 2]) from a texture code.

        Args:
            z_tex: shape :math:`(B, D_{tex})` or :math:`(D_{tex},)`.
            height: output height H (width 2H); ``None`` = the decoder's native size.

        Returns:
            albedo in (0, 1], shape :math:`(B, 3, H, 2H)`, row 0 at v = 0 (sample with
            :func:`avatar.morphable.texture.atlas_uv`).
        """
        z = torch.as_tensor(z_tex, dtype=torch.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.tex_dim:
            raise AvatarInputError(f"z_tex must have shape (B, {self.tex_dim}), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise AvatarInputError("z_tex contains NaN or infinite values")
        if height is not None and not 16 <= height <= 4096:
            raise AvatarInputError(f"texture height must be in [16, 4096], got {height}")
        return self.texture_decoder(z, height)

    def timed_mesh(self, z_geo, expr, mode: str = "narrow_band", resolution: int = 256) -> tuple[FaceMesh, float]:
        """:meth:`mesh` without UVs plus its wall time in seconds (for benchmarks)."""
        t0 = time.perf_counter()
        m = self.mesh(z_geo, expr, mode=mode, resolution=resolution, with_uv=False)
        return m, time.perf_counter() - t0
