"""The implicit morphable head: SDF(x | z_geo, expr) = SDF_canonical(x_canonical).

* **Canonical SDF** — a multi-resolution grid (coarse levels dense, fine levels only in a band around
  the canonical head) whose levels are summed: the signed distance of the canonical (neutral,
  mean-identity) head, in centimetres.
* **Deformation field** — canonical point ``p`` → deformed point ``x = p + D(p; c)`` with
  ``D(p; c) = Σ_k c_k (W_k h(p) + b_k)``: grid features → MLP → a wide basis ``h(p)`` (H channels),
  and a per-code linear head. It is *linear in the codes* ``c = [z_geo, expr]`` (so baking the 53
  expressions is exact), and nonlinear in space. ``SDF(x | c)`` inverts it with a few fixed-point
  steps ``p ← x - D(p; c)`` started from the nearest forward-mapped canonical vertex.
* **Explicit parts** — eyes, teeth, gums and lashes are not part of the SDF; they are carried over
  from the template and moved per connected component either by a rigid-plus-scale motion linear in
  the codes or by the deformation field (whichever followed the ICT teacher better at build time).

Units: centimetres (ICT native); the public API reports nothing in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from avatar.morphable.grid import MultiResGrid


@dataclass(frozen=True)
class LevelSpec:
    """One grid level: vertices along the longest box side, channels, band half-width (cm, None = dense)."""

    resolution: int
    channels: int
    band: float | None


def level_specs(levels: list) -> list[LevelSpec]:
    """Parse ``[[resolution, channels, band_or_null], ...]`` from the config."""
    return [LevelSpec(int(r), int(c), None if b is None else float(b)) for r, c, b in levels]


class DeformationField(nn.Module):
    """Per-code displacement fields ``B_k(p) = W_k h(p) + b_k``, shape per point :math:`(K, 3)`.

    ``h(p)`` is an H-channel basis: grid features → SiLU MLP → a final linear layer. For the ICT
    teacher the head ``W`` is initialised from the SVD of the (code-weighted) teacher displacements,
    so ``h`` learns the leading singular fields.

    Args:
        grid: feature grid over canonical space.
        hidden: MLP widths between the grid features and the basis.
        basis: width H of the basis ``h(p)``.
        codes: number of codes K (identity + expression).
    """

    def __init__(self, grid: MultiResGrid, hidden: list[int], basis: int, codes: int) -> None:
        super().__init__()
        self.grid = grid
        layers: list[nn.Module] = []
        width = grid.out_channels
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers += [nn.Linear(width, basis)]
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Parameter(torch.zeros(codes, 3, basis))
        self.head_bias = nn.Parameter(torch.zeros(codes, 3))
        self.codes = codes

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """The basis ``h(p)``.

        Args:
            points: canonical positions, shape :math:`(N, 3)`.

        Returns:
            basis values, shape :math:`(N, H)`.
        """
        return self.mlp(self.grid(points))

    def all_displacements(self, points: torch.Tensor) -> torch.Tensor:
        """Displacement of every code at unit weight.

        Args:
            points: canonical positions, shape :math:`(N, 3)`.

        Returns:
            displacements, shape :math:`(N, K, 3)`.
        """
        h = self.features(points)
        return torch.einsum("nh,kch->nkc", h, self.head) + self.head_bias

    def code_matrix(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contract the head (and the MLP's final linear layer) with codes once per shape.

        Args:
            codes: ``[z_geo, expr]``, shape :math:`(B, K)`.

        Returns:
            matrix over the last hidden layer, shape :math:`(B, 3, H_{last})`; bias, shape :math:`(B, 3)`.
        """
        final = self.mlp[-1]
        w = torch.einsum("bk,kch->bch", codes, self.head)  # (B, 3, H)
        return w @ final.weight, w @ final.bias + codes @ self.head_bias

    def displacement(self, points: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``D(p; c)`` for contracted codes.

        Args:
            points: canonical positions, shape :math:`(B, N, 3)`.
            matrix: from :meth:`code_matrix`, shape :math:`(B, 3, H_{last})`.
            bias: from :meth:`code_matrix`, shape :math:`(B, 3)`.

        Returns:
            displacements, shape :math:`(B, N, 3)`.
        """
        b, n, _ = points.shape
        h = self.mlp[:-1](self.grid(points.reshape(-1, 3))).reshape(b, n, -1)
        return torch.bmm(h, matrix.transpose(1, 2)) + bias[:, None]

    def jacobian(self, points: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``∂D/∂p`` per point (points do not interact, so three backward passes give all rows).

        Args:
            points: canonical positions, shape :math:`(B, N, 3)`.
            matrix: shape :math:`(B, 3, H_{last})`; bias: shape :math:`(B, 3)`.

        Returns:
            Jacobians, shape :math:`(B, N, 3, 3)` (row i = gradient of displacement component i).
        """
        with torch.enable_grad():
            q = points.detach().requires_grad_(True)
            d = self.displacement(q, matrix, bias)
            rows = [torch.autograd.grad(d[..., i].sum(), q, retain_graph=i < 2)[0] for i in range(3)]
        return torch.stack(rows, dim=-2)


class ExplicitParts(nn.Module):
    """Eyes, teeth, gums, lashes: template components moved by code-linear rigid+scale motions.

    Per component j and code k the motion is ``δv = t_kj + ω_kj × (v - o_j) + s_kj (v - o_j)``
    (linearised rotation), so a shape's motion is ``Σ_k c_k δv_kj`` — linear in the codes.
    Components flagged ``use_field`` follow the deformation field instead.

    Args:
        vertex_ids: template vertices of the explicit parts, shape :math:`(P,)`.
        component: component index per vertex, shape :math:`(P,)`.
        num_components: number of components J.
        codes: number of codes K.
    """

    def __init__(self, vertex_ids: torch.Tensor, component: torch.Tensor, num_components: int, codes: int) -> None:
        super().__init__()
        self.register_buffer("vertex_ids", vertex_ids.long())
        self.register_buffer("component", component.long())
        self.register_buffer("origin", torch.zeros(num_components, 3))
        self.register_buffer("use_field", torch.zeros(num_components, dtype=torch.bool))
        self.register_buffer("motion", torch.zeros(codes, num_components, 7))

    def displacement(self, rest: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Rigid+scale displacement of the part vertices.

        Args:
            rest: canonical part vertices, shape :math:`(P, 3)`.
            codes: shape :math:`(B, K)`.

        Returns:
            displacements, shape :math:`(B, P, 3)`.
        """
        m = torch.einsum("bk,kjd->bjd", codes, self.motion)[:, self.component]  # (B, P, 7)
        r = (rest - self.origin[self.component])[None]
        return m[..., :3] + torch.cross(m[..., 3:6], r.expand_as(m[..., :3]), dim=-1) + m[..., 6:7] * r


def _implicit_gradient(jacobian: torch.Tensor):
    """Gradient hook for ``p* = x - D(p*)``: maps g to :math:`(I + J)^{-T} g`, J shape :math:`(B, N, 3, 3)`."""
    system = (torch.eye(3, dtype=jacobian.dtype) + jacobian).transpose(-1, -2)

    def hook(grad: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(system, grad.unsqueeze(-1)).squeeze(-1)

    return hook


class MorphableSDF(nn.Module):
    """SDF(x | z_geo, expr) with a code-linear deformation into a canonical grid SDF.

    Args:
        box_min: canonical box corner (cm), shape :math:`(3,)`.
        box_max: canonical box corner (cm), shape :math:`(3,)`.
        canonical_levels: levels of the canonical SDF grid (channels 1, summed).
        deform_levels: levels of the deformation feature grid (concatenated).
        hidden: MLP widths; basis: width H of the wide basis.
        geo_dim: identity code size; expr_dim: expression code size (53).
        canonical_keys / deform_keys: per level active keys (``None`` = dense); these initial keys are
            replaced when a state dict is loaded.
        num_template_vertices: vertices of the template (for explicit parts and template mode).
        explicit_vertex_ids / explicit_component / num_components: explicit part layout.
    """

    def __init__(
        self,
        box_min: torch.Tensor,
        box_max: torch.Tensor,
        canonical_levels: list[LevelSpec],
        deform_levels: list[LevelSpec],
        hidden: list[int],
        basis: int,
        geo_dim: int,
        expr_dim: int,
        canonical_keys: list[torch.Tensor | None],
        deform_keys: list[torch.Tensor | None],
        explicit_vertex_ids: torch.Tensor,
        explicit_component: torch.Tensor,
        num_components: int,
    ) -> None:
        super().__init__()
        self.geo_dim, self.expr_dim = int(geo_dim), int(expr_dim)
        self.register_buffer("box_min", box_min.float())
        self.register_buffer("box_max", box_max.float())
        self.canonical = MultiResGrid(
            box_min, box_max, [l.resolution for l in canonical_levels], 1, canonical_keys, reduce="sum"
        )
        grid = MultiResGrid(
            box_min, box_max, [l.resolution for l in deform_levels], [l.channels for l in deform_levels],
            deform_keys, reduce="concat", init_std=0.1,
        )
        self.deform = DeformationField(grid, hidden, basis, geo_dim + expr_dim)
        self.parts = ExplicitParts(explicit_vertex_ids, explicit_component, num_components, geo_dim + expr_dim)
        # canonical surface vertices used to seed the inversion (nearest forward-mapped vertex)
        self.register_buffer("seed_points", torch.zeros(0, 3), persistent=False)

    @property
    def num_codes(self) -> int:
        return self.geo_dim + self.expr_dim

    def codes(self, z_geo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """``[z_geo, expr]``, shape :math:`(B, K)`."""
        return torch.cat([z_geo, expr], -1)

    def canonical_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Canonical signed distance (cm).

        Args:
            points: canonical positions, shape :math:`(..., 3)`.

        Returns:
            sdf, shape :math:`(...)`.
        """
        shape = points.shape[:-1]
        return self.canonical(points.reshape(-1, 3)).reshape(shape)

    def forward_map(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Canonical → deformed positions ``p + D(p; c)``.

        Args:
            points: canonical positions, shape :math:`(B, N, 3)` or :math:`(N, 3)` (shared).
            codes: shape :math:`(B, K)`.

        Returns:
            deformed positions, shape :math:`(B, N, 3)`.
        """
        if points.ndim == 2:
            points = points[None].expand(codes.shape[0], -1, -1)
        matrix, bias = self.deform.code_matrix(codes)
        return points + self.deform.displacement(points, matrix, bias)

    def inverse_map(
        self, points: torch.Tensor, codes: torch.Tensor, iterations: int = 6, init: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Deformed → canonical positions by fixed-point steps ``p ← x - D(p; c)``.

        The steps run without gradients; the result carries the exact implicit gradient (to codes,
        field and points): the last step's graph, with the incoming gradient first multiplied by
        :math:`(I + \\partial D / \\partial p)^{-T}` at the fixed point (a 3×3 solve per point).

        Args:
            points: deformed positions, shape :math:`(B, N, 3)`.
            codes: shape :math:`(B, K)`.
            iterations: fixed-point steps.
            init: starting canonical guess, shape :math:`(B, N, 3)`; default: seeded from the nearest
                forward-mapped canonical surface vertex.

        Returns:
            canonical positions, shape :math:`(B, N, 3)`.
        """
        matrix, bias = self.deform.code_matrix(codes)
        with torch.no_grad():
            p = self.seed_inverse(points, codes) if init is None else init
            for _ in range(max(iterations - 1, 0)):
                p = points - self.deform.displacement(p, matrix.detach(), bias.detach())
        p = p.detach()
        out = points - self.deform.displacement(p, matrix, bias)
        if out.requires_grad:
            out.register_hook(_implicit_gradient(self.deform.jacobian(p, matrix.detach(), bias.detach())))
        return out

    @torch.no_grad()
    def seed_inverse(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Initial canonical guess: ``x - D(v)`` of the forward-mapped seed vertex ``v`` nearest to x.

        Args:
            points: deformed positions, shape :math:`(B, N, 3)`.
            codes: shape :math:`(B, K)`.

        Returns:
            canonical guesses, shape :math:`(B, N, 3)`.
        """
        if self.seed_points.shape[0] == 0:
            return points.clone()
        from scipy.spatial import cKDTree

        moved = self.forward_map(self.seed_points, codes)
        out = torch.empty_like(points)
        for b in range(points.shape[0]):
            tree = cKDTree(moved[b].numpy())
            _, nn_idx = tree.query(points[b].detach().numpy(), k=1, workers=-1)
            nn_idx = torch.from_numpy(nn_idx)
            out[b] = points[b] - (moved[b, nn_idx] - self.seed_points[nn_idx])
        return out

    def sdf(self, points: torch.Tensor, codes: torch.Tensor, iterations: int = 6, seeded: bool = True) -> torch.Tensor:
        """Signed distance (cm, negative inside) of deformed-space points.

        Args:
            points: shape :math:`(B, N, 3)`.
            codes: shape :math:`(B, K)`.
            iterations: fixed-point steps of the inversion.
            seeded: start the inversion from the nearest forward-mapped seed vertex (robust for large
                deformations such as an open jaw); ``False`` starts from the point itself (cheaper).

        Returns:
            sdf, shape :math:`(B, N)`.
        """
        init = None if seeded else points.detach()
        return self.canonical_sdf(self.inverse_map(points, codes, iterations, init=init))

    def template_vertices(self, rest: torch.Tensor, skin_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Template mode: carry every template vertex onto the shape given by the codes.

        Skin vertices (on the canonical zero level set) go through the deformation field, so they land
        on the deformed zero level set; explicit parts move per component.

        Args:
            rest: canonical template vertices, shape :math:`(V, 3)`.
            skin_ids: ids of the skin vertices, shape :math:`(V_s,)`.
            codes: shape :math:`(B, K)`.

        Returns:
            vertices, shape :math:`(B, V, 3)`.
        """
        out = rest[None].repeat(codes.shape[0], 1, 1)
        out[:, skin_ids] = self.forward_map(rest[skin_ids], codes)
        ids = self.parts.vertex_ids
        if ids.numel():
            part_rest = rest[ids]
            rigid = part_rest + self.parts.displacement(part_rest, codes)
            field_mask = self.parts.use_field[self.parts.component]
            if bool(field_mask.any()):
                moved = self.forward_map(part_rest[field_mask], codes)
                rigid[:, field_mask] = moved
            out[:, ids] = rigid
        return out
