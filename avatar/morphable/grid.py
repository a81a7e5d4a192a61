"""Multi-resolution feature grids with trilinear interpolation, sparse near a surface (pure torch).

Each level is a lattice over a fixed axis-aligned box with isotropic spacing. Coarse levels are dense;
fine levels keep only the lattice vertices in a band around a reference surface (``active`` mask),
stored as sorted linear keys, so a 256³-equivalent level costs memory proportional to the surface
area. Inactive vertices read as zero features. Lookups go through a dense int32 index volume built
at load time (no hashing, hence no collisions).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import nn


@numba.njit(parallel=True, fastmath=True, cache=True)
def _trilinear_kernel(points, box_min, spacing, dims, index, table, out, col0):  # pragma: no cover - compiled
    n = points.shape[0]
    channels = table.shape[1]
    nx, ny, nz = dims[0], dims[1], dims[2]
    for i in numba.prange(n):
        gx = min(max((points[i, 0] - box_min[0]) / spacing, 0.0), nx - 1.0001)
        gy = min(max((points[i, 1] - box_min[1]) / spacing, 0.0), ny - 1.0001)
        gz = min(max((points[i, 2] - box_min[2]) / spacing, 0.0), nz - 1.0001)
        ix, iy, iz = int(gx), int(gy), int(gz)
        fx, fy, fz = gx - ix, gy - iy, gz - iz
        for corner in range(8):
            dx, dy, dz = corner >> 2, (corner >> 1) & 1, corner & 1
            w = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy) * (fz if dz else 1.0 - fz)
            row = index[((ix + dx) * ny + (iy + dy)) * nz + (iz + dz)]
            for c in range(channels):
                out[i, col0 + c] += w * table[row, c]


def level_shape(box_min: torch.Tensor, box_max: torch.Tensor, resolution: int) -> tuple[float, tuple[int, int, int]]:
    """Spacing and lattice size of a level with ``resolution`` vertices along the box's longest side.

    Args:
        box_min: box corner, shape :math:`(3,)`.
        box_max: box corner, shape :math:`(3,)`.
        resolution: vertices along the longest side.

    Returns:
        spacing (float) and vertices per axis (x, y, z).
    """
    extent = (box_max - box_min).tolist()
    spacing = max(extent) / (resolution - 1)
    dims = tuple(int(math.ceil(e / spacing - 1e-6)) + 1 for e in extent)
    return spacing, dims  # type: ignore[return-value]


class SparseGridLevel(nn.Module):
    """One lattice level: features at active vertices, trilinear lookup.

    Args:
        box_min: box corner, shape :math:`(3,)`.
        box_max: box corner, shape :math:`(3,)`.
        resolution: vertices along the box's longest side.
        channels: feature channels.
        active_keys: sorted linear indices ``(ix * ny + iy) * nz + iz`` of active vertices,
            shape :math:`(A,)`; ``None`` makes the level dense.
        init_std: standard deviation of the initial features.
    """

    def __init__(
        self,
        box_min: torch.Tensor,
        box_max: torch.Tensor,
        resolution: int,
        channels: int,
        active_keys: torch.Tensor | None = None,
        init_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.channels = int(channels)
        spacing, dims = level_shape(box_min, box_max, resolution)
        self.spacing = spacing
        self.dims = dims
        self.register_buffer("box_min", box_min.clone().float(), persistent=False)
        total = dims[0] * dims[1] * dims[2]
        if active_keys is None:
            active_keys = torch.arange(total, dtype=torch.int64)
        active_keys = torch.as_tensor(active_keys, dtype=torch.int64)
        self.register_buffer("active_keys", active_keys.to(torch.int32))
        self.features = nn.Parameter(torch.randn(active_keys.numel(), channels) * init_std)
        self._index: torch.Tensor | None = None

    @property
    def num_active(self) -> int:
        return int(self.active_keys.numel())

    def index_volume(self) -> torch.Tensor:
        """Dense map lattice key → feature row (inactive → the zero row ``A``), shape :math:`(N_x N_y N_z,)`."""
        if self._index is None or self._index.device != self.active_keys.device:
            total = self.dims[0] * self.dims[1] * self.dims[2]
            index = torch.full((total,), self.num_active, dtype=torch.int32, device=self.active_keys.device)
            index[self.active_keys.long()] = torch.arange(self.num_active, dtype=torch.int32, device=index.device)
            self._index = index
        return self._index

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # keys decide the feature count
        keys = state_dict.get(prefix + "active_keys")
        feats = state_dict.get(prefix + "features")
        if keys is not None and feats is not None:
            self.active_keys = keys.to(torch.int32).clone()
            self._index = None
            if self.features.shape != feats.shape:  # keep the Parameter object when it fits: an optimizer may hold it
                self.features = nn.Parameter(torch.zeros_like(feats, dtype=torch.float32))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def corners(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows and trilinear weights of the 8 lattice corners around each point.

        Args:
            points: positions, shape :math:`(N, 3)`; clamped into the box.

        Returns:
            rows, shape :math:`(N, 8)` int64 (``A`` = zero row); weights, shape :math:`(N, 8)`.
        """
        nx, ny, nz = self.dims
        upper = torch.tensor([nx - 1, ny - 1, nz - 1], dtype=points.dtype, device=points.device)
        g = ((points - self.box_min) / self.spacing).clamp(min=torch.zeros_like(upper), max=upper - 1e-4)
        base = g.floor()
        frac = g - base
        base = base.long()
        rows, weights = [], []
        index = self.index_volume()
        for dx in (0, 1):
            wx = frac[:, 0] if dx else 1 - frac[:, 0]
            for dy in (0, 1):
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                for dz in (0, 1):
                    wz = frac[:, 2] if dz else 1 - frac[:, 2]
                    key = ((base[:, 0] + dx) * ny + (base[:, 1] + dy)) * nz + (base[:, 2] + dz)
                    rows.append(index[key].long())
                    weights.append(wx * wy * wz)
        return torch.stack(rows, 1), torch.stack(weights, 1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Trilinearly interpolated features.

        Args:
            points: positions, shape :math:`(N, 3)`.

        Returns:
            features, shape :math:`(N, C)`.
        """
        if not torch.is_grad_enabled() or not (points.requires_grad or self.features.requires_grad):
            out = np.zeros((points.shape[0], self.channels), dtype=np.float32)
            self.accumulate_into(points, out, 0)
            return torch.from_numpy(out)
        rows, weights = self.corners(points)
        table = torch.cat([self.features, self.features.new_zeros(1, self.channels)], 0)
        return (table[rows] * weights.unsqueeze(-1)).sum(1)

    def table(self) -> np.ndarray:
        """Features with the zero row appended, shape (A + 1, C) float32 (cached while unchanged)."""
        version = (self.features.data_ptr(), self.features._version)
        if getattr(self, "_table_version", None) != version:
            feats = self.features.detach().numpy()
            self._table = np.concatenate([feats, np.zeros((1, self.channels), np.float32)], 0)
            self._table_version = version
        return self._table

    def accumulate_into(self, points: torch.Tensor, out: np.ndarray, col0: int) -> None:
        """Compiled (no-grad) trilinear lookup added into ``out[:, col0:col0 + C]``."""
        pts = np.ascontiguousarray(points.detach().numpy(), dtype=np.float32)
        _trilinear_kernel(
            pts, self.box_min.numpy().astype(np.float32), np.float32(self.spacing), np.asarray(self.dims, np.int64),
            self.index_volume().numpy(), self.table(), out, col0,
        )

    def vertex_positions(self, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Positions of lattice vertices (default: the active ones), shape :math:`(A, 3)`."""
        keys = (self.active_keys if keys is None else keys).long()
        nx, ny, nz = self.dims
        ix, rem = keys // (ny * nz), keys % (ny * nz)
        iy, iz = rem // nz, rem % nz
        return torch.stack([ix, iy, iz], 1).float() * self.spacing + self.box_min


def band_keys(
    surface_points: np.ndarray, box_min: np.ndarray, box_max: np.ndarray, resolution: int, band: float
) -> np.ndarray:
    """Sorted linear keys of lattice vertices within ``band`` of densely sampled surface points.

    Args:
        surface_points: dense samples of the reference surface (spacing well below the lattice
            spacing), shape :math:`(P, 3)`.
        box_min: box corner, shape :math:`(3,)`.
        box_max: box corner, shape :math:`(3,)`.
        resolution: vertices along the box's longest side.
        band: half-width of the band, same units as the points.

    Returns:
        keys, shape :math:`(A,)` int64.
    """
    from scipy import ndimage

    spacing, dims = level_shape(torch.as_tensor(box_min), torch.as_tensor(box_max), resolution)
    g = np.floor((surface_points - box_min) / spacing).astype(np.int64)
    g = np.clip(g, 0, np.array(dims) - 2)
    occupied = np.zeros(dims, dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                occupied[g[:, 0] + dx, g[:, 1] + dy, g[:, 2] + dz] = True
    steps = int(math.ceil(band / spacing))
    if steps > 0:
        occupied = ndimage.binary_dilation(occupied, iterations=steps)
    return np.flatnonzero(occupied.ravel()).astype(np.int64)


class MultiResGrid(nn.Module):
    """A stack of :class:`SparseGridLevel` whose features are concatenated (or summed).

    Args:
        box_min: box corner, shape :math:`(3,)`.
        box_max: box corner, shape :math:`(3,)`.
        resolutions: vertices along the longest side, per level.
        channels: channels per level (int or list).
        active_keys: per level, sorted active keys or ``None`` (dense).
        reduce: ``"concat"`` or ``"sum"``.
        init_std: initial feature scale.
    """

    def __init__(
        self,
        box_min: torch.Tensor,
        box_max: torch.Tensor,
        resolutions: list[int],
        channels: int | list[int],
        active_keys: list[torch.Tensor | None],
        reduce: str = "concat",
        init_std: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(channels, int):
            channels = [channels] * len(resolutions)
        self.reduce = reduce
        self.levels = nn.ModuleList(
            SparseGridLevel(box_min, box_max, r, c, k, init_std) for r, c, k in zip(resolutions, channels, active_keys)
        )
        self.out_channels = sum(channels) if reduce == "concat" else channels[0]

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Features at points.

        Args:
            points: positions, shape :math:`(N, 3)`.

        Returns:
            features, shape :math:`(N, C_{out})`.
        """
        if not torch.is_grad_enabled() or not (points.requires_grad or any(p.requires_grad for p in self.parameters())):
            out = np.zeros((points.shape[0], self.out_channels), dtype=np.float32)
            col = 0
            for level in self.levels:
                level.accumulate_into(points, out, col)
                col += level.channels if self.reduce == "concat" else 0
            return torch.from_numpy(out)
        feats = [level(points) for level in self.levels]
        return torch.cat(feats, -1) if self.reduce == "concat" else torch.stack(feats, 0).sum(0)
