"""Compiled CPU kernels (numba) for rasterization and interpolation, forward and backward.

Math shared by every kernel. For a triangle with clip-space vertices ``(x_i, y_i, z_i, w_i)`` let
``M = [[x0, x1, x2], [y0, y1, y2], [w0, w1, w2]]`` and ``p = (px, py, 1)`` the pixel centre in
normalised device coordinates. Then ``c = M^-1 p`` are the perspective barycentrics divided by the
clip ``w`` of the surface point (homogeneous rasterization, Olano & Greer 1997):

- the pixel is covered iff ``c_i >= 0`` for all ``i`` (this also puts the point in front, ``w > 0``,
  so no clipping against ``w = 0`` is needed);
- ``u = c0 / s``, ``v = c1 / s`` with ``s = c0 + c1 + c2`` (nvdiffrast's barycentrics);
- ``z / w = c . z``.

Each ``c_i`` is linear in ``(px, py)``, so per pixel a triangle costs three multiply-adds per
coordinate, like a scanline edge function. Backward: ``dc = -M^-1 dM c``, so the gradient of a loss
with respect to vertex ``j``'s ``(x, y, w)`` is ``-c_j M^-T g_c`` — one 3x3 product per pixel.

Pixel centres are at ``(x + 0.5) * 2 / W - 1``; image row 0 is ``y = -1`` (nvdiffrast's convention).
Visibility: smallest ``z / w`` in ``[-1, 1]`` wins; exact ties go to the lower triangle id.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

TILE = 32  # pixels per tile side; tiles are the unit of parallel work in rasterization
COEF_SIZE = 12  # per triangle: M^-1 row-major (9) and clip z of the three vertices (3)


@nb.njit(inline="always")
def triangle_inverse(x0, y0, w0, x1, y1, w1, x2, y2, w2):
    """``M^-1`` row-major for ``M`` with the vertices' ``(x, y, w)`` as columns.

    Returns ``(ok, m0, ..., m8)``; ``ok`` is false for a degenerate triangle or one seen edge-on (it covers
    no pixel centre). Inlined by :mod:`renderers.backends.cpu_draw` too, whose numba cache does not see
    changes here: touch that file when editing this one or :func:`pixel_box`.
    """
    # Adjugate of M; rows of M^-1 = cross products / det.
    a00 = y1 * w2 - w1 * y2
    a01 = w1 * x2 - x1 * w2
    a02 = x1 * y2 - y1 * x2
    a10 = y2 * w0 - w2 * y0
    a11 = w2 * x0 - x2 * w0
    a12 = x2 * y0 - y2 * x0
    a20 = y0 * w1 - w0 * y1
    a21 = w0 * x1 - x0 * w1
    a22 = x0 * y1 - y0 * x1
    det = x0 * a00 + y0 * a01 + w0 * a02
    scale = (abs(x0) + abs(y0) + abs(w0)) * (abs(x1) + abs(y1) + abs(w1)) * (abs(x2) + abs(y2) + abs(w2))
    if not (abs(det) > 1e-14 * scale):
        return False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    inv = 1.0 / det
    return (True, a00 * inv, a01 * inv, a02 * inv, a10 * inv, a11 * inv, a12 * inv,
            a20 * inv, a21 * inv, a22 * inv)


@nb.njit(inline="always")
def pixel_box(nx0, nx1, nx2, ny0, ny1, ny2, width, height):
    """Inclusive pixel box ``(x0, x1, y0, y1)`` of the pixel centres a triangle's NDC extent can cover."""
    # Clamp to just beyond the viewport so huge projected extents stay finite ints.
    xmin = max(-2.0, min(nx0, min(nx1, nx2)))
    xmax = min(2.0, max(nx0, max(nx1, nx2)))
    ymin = max(-2.0, min(ny0, min(ny1, ny2)))
    ymax = min(2.0, max(ny0, max(ny1, ny2)))
    # Pixel centre x sits at NDC (x + 0.5) * 2 / W - 1.
    bx0 = max(0, int(math.ceil((xmin + 1.0) * 0.5 * width - 0.5 - 1e-7)))
    bx1 = min(width - 1, int(math.floor((xmax + 1.0) * 0.5 * width - 0.5 + 1e-7)))
    by0 = max(0, int(math.ceil((ymin + 1.0) * 0.5 * height - 0.5 - 1e-7)))
    by1 = min(height - 1, int(math.floor((ymax + 1.0) * 0.5 * height - 0.5 + 1e-7)))
    return bx0, bx1, by0, by1


@nb.njit(parallel=True, cache=True)
def setup_triangles(pos, tri, height, width, coef, bbox):
    """Per (batch, triangle): ``M^-1`` and z into ``coef [B,T,12]`` and a pixel box into ``bbox [B,T,4]``.

    ``pos [B,V,4]`` must be float64 (numba keeps float32 arithmetic in float32).

    ``bbox`` holds inclusive ``(x0, x1, y0, y1)``; ``x0 > x1`` marks a triangle that covers nothing.
    """
    num_batch = pos.shape[0]
    num_tri = tri.shape[0]
    for k in nb.prange(num_batch * num_tri):
        b = k // num_tri
        t = k % num_tri
        i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
        x0, y0, z0, w0 = pos[b, i0, 0], pos[b, i0, 1], pos[b, i0, 2], pos[b, i0, 3]
        x1, y1, z1, w1 = pos[b, i1, 0], pos[b, i1, 1], pos[b, i1, 2], pos[b, i1, 3]
        x2, y2, z2, w2 = pos[b, i2, 0], pos[b, i2, 1], pos[b, i2, 2], pos[b, i2, 3]
        bbox[b, t, 0] = 1
        bbox[b, t, 1] = 0
        bbox[b, t, 2] = 1
        bbox[b, t, 3] = 0
        if w0 <= 0.0 and w1 <= 0.0 and w2 <= 0.0:
            continue  # entirely behind the eye
        ok, m0, m1, m2, m3, m4, m5, m6, m7, m8 = triangle_inverse(x0, y0, w0, x1, y1, w1, x2, y2, w2)
        if not ok:
            continue  # degenerate or seen edge-on: covers no pixel centre
        coef[b, t, 0] = m0
        coef[b, t, 1] = m1
        coef[b, t, 2] = m2
        coef[b, t, 3] = m3
        coef[b, t, 4] = m4
        coef[b, t, 5] = m5
        coef[b, t, 6] = m6
        coef[b, t, 7] = m7
        coef[b, t, 8] = m8
        coef[b, t, 9] = z0
        coef[b, t, 10] = z1
        coef[b, t, 11] = z2
        if w0 > 0.0 and w1 > 0.0 and w2 > 0.0:
            zn0, zn1, zn2 = z0 / w0, z1 / w1, z2 / w2
            if (zn0 > 1.0 and zn1 > 1.0 and zn2 > 1.0) or (zn0 < -1.0 and zn1 < -1.0 and zn2 < -1.0):
                continue  # entirely beyond the far plane or before the near plane
            nx0, nx1, nx2 = x0 / w0, x1 / w1, x2 / w2
            ny0, ny1, ny2 = y0 / w0, y1 / w1, y2 / w2
            bx0, bx1, by0, by1 = pixel_box(nx0, nx1, nx2, ny0, ny1, ny2, width, height)
        else:
            # A vertex behind the eye: the projected extent is unbounded, test the whole image.
            bx0, bx1, by0, by1 = 0, width - 1, 0, height - 1
        bbox[b, t, 0] = bx0
        bbox[b, t, 1] = bx1
        bbox[b, t, 2] = by0
        bbox[b, t, 3] = by1


@nb.njit(parallel=True, cache=True)
def bin_triangles(bbox, tiles_x, tiles_y, num_threads):
    """Lists, per (batch, tile), the triangles whose box touches it, in increasing triangle id.

    A parallel counting sort: each thread counts and then places one contiguous range of triangles;
    within a tile, thread ``i``'s triangles precede thread ``i + 1``'s, so ids stay increasing.

    Returns ``offsets [B * tiles + 1]`` and ``tri_list``: tile ``k`` holds
    ``tri_list[offsets[k]:offsets[k + 1]]``.
    """
    num_batch, num_tri = bbox.shape[0], bbox.shape[1]
    tiles = tiles_x * tiles_y
    num_bins = num_batch * tiles
    chunks = num_threads
    bounds = np.linspace(0, num_batch * num_tri, chunks + 1).astype(np.int64)
    counts = np.zeros((chunks, num_bins), np.int64)
    for chunk in nb.prange(chunks):
        for k in range(bounds[chunk], bounds[chunk + 1]):
            b = k // num_tri
            t = k % num_tri
            if bbox[b, t, 0] > bbox[b, t, 1] or bbox[b, t, 2] > bbox[b, t, 3]:
                continue
            for ty in range(bbox[b, t, 2] // TILE, bbox[b, t, 3] // TILE + 1):
                for tx in range(bbox[b, t, 0] // TILE, bbox[b, t, 1] // TILE + 1):
                    counts[chunk, b * tiles + ty * tiles_x + tx] += 1
    offsets = np.zeros(num_bins + 1, np.int64)
    cursor = np.empty((chunks, num_bins), np.int64)
    running = 0
    for k in range(num_bins):
        offsets[k] = running
        for chunk in range(chunks):
            cursor[chunk, k] = running
            running += counts[chunk, k]
    offsets[num_bins] = running
    tri_list = np.empty(running, np.int32)
    for chunk in nb.prange(chunks):
        for k in range(bounds[chunk], bounds[chunk + 1]):
            b = k // num_tri
            t = k % num_tri
            if bbox[b, t, 0] > bbox[b, t, 1] or bbox[b, t, 2] > bbox[b, t, 3]:
                continue
            for ty in range(bbox[b, t, 2] // TILE, bbox[b, t, 3] // TILE + 1):
                for tx in range(bbox[b, t, 0] // TILE, bbox[b, t, 1] // TILE + 1):
                    bin_index = b * tiles + ty * tiles_x + tx
                    tri_list[cursor[chunk, bin_index]] = t
                    cursor[chunk, bin_index] += 1
    return offsets, tri_list


@nb.njit(parallel=True, cache=True)
def rasterize_tiles(coef, bbox, offsets, tri_list, tiles_x, tiles_y, rast, rast_db, want_db, num_threads):
    """Depth-tested visibility per tile (one thread per tile), then ``rast`` and ``rast_db``.

    ``rast [B,H,W,4]`` and ``rast_db [B,H,W,4]`` must be zero-filled on entry.
    """
    num_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    tiles = tiles_x * tiles_y
    sx = 2.0 / width
    sy = 2.0 / height
    # Round-robin over tiles balances the threads: a head covers the image unevenly.
    for thread in nb.prange(num_threads):
        for k in range(thread, num_batch * tiles, num_threads):
            b = k // tiles
            ty = (k % tiles) // tiles_x
            tx = (k % tiles) % tiles_x
            ylo = ty * TILE
            xlo = tx * TILE
            yhi = min(height, ylo + TILE) - 1
            xhi = min(width, xlo + TILE) - 1
            depth = np.full((TILE, TILE), np.inf)
            ids = np.zeros((TILE, TILE), np.int32)
            for j in range(offsets[k], offsets[k + 1]):
                t = tri_list[j]
                x0 = max(bbox[b, t, 0], xlo)
                x1 = min(bbox[b, t, 1], xhi)
                y0 = max(bbox[b, t, 2], ylo)
                y1 = min(bbox[b, t, 3], yhi)
                m0, m1, m2 = coef[b, t, 0], coef[b, t, 1], coef[b, t, 2]
                m3, m4, m5 = coef[b, t, 3], coef[b, t, 4], coef[b, t, 5]
                m6, m7, m8 = coef[b, t, 6], coef[b, t, 7], coef[b, t, 8]
                z0, z1, z2 = coef[b, t, 9], coef[b, t, 10], coef[b, t, 11]
                for y in range(y0, y1 + 1):
                    py = (y + 0.5) * sy - 1.0
                    r0 = m1 * py + m2
                    r1 = m4 * py + m5
                    r2 = m7 * py + m8
                    for x in range(x0, x1 + 1):
                        px = (x + 0.5) * sx - 1.0
                        c0 = m0 * px + r0
                        c1 = m3 * px + r1
                        c2 = m6 * px + r2
                        if c0 >= 0.0 and c1 >= 0.0 and c2 >= 0.0 and c0 + c1 + c2 > 0.0:
                            zw = c0 * z0 + c1 * z1 + c2 * z2
                            if zw >= -1.0 and zw <= 1.0 and zw < depth[y - ylo, x - xlo]:
                                depth[y - ylo, x - xlo] = zw
                                ids[y - ylo, x - xlo] = t + 1
            for y in range(ylo, yhi + 1):
                py = (y + 0.5) * sy - 1.0
                for x in range(xlo, xhi + 1):
                    tid = ids[y - ylo, x - xlo]
                    if tid == 0:
                        continue
                    t = tid - 1
                    px = (x + 0.5) * sx - 1.0
                    c0 = coef[b, t, 0] * px + coef[b, t, 1] * py + coef[b, t, 2]
                    c1 = coef[b, t, 3] * px + coef[b, t, 4] * py + coef[b, t, 5]
                    c2 = coef[b, t, 6] * px + coef[b, t, 7] * py + coef[b, t, 8]
                    s_inv = 1.0 / (c0 + c1 + c2)
                    u = c0 * s_inv
                    v = c1 * s_inv
                    rast[b, y, x, 0] = u
                    rast[b, y, x, 1] = v
                    rast[b, y, x, 2] = depth[y - ylo, x - xlo]
                    rast[b, y, x, 3] = tid
                    if want_db:
                        # d(c_i)/d(px) = M^-1[i, 0]; chain through u = c0 / s, then NDC -> pixels.
                        sa = coef[b, t, 0] + coef[b, t, 3] + coef[b, t, 6]
                        sb = coef[b, t, 1] + coef[b, t, 4] + coef[b, t, 7]
                        rast_db[b, y, x, 0] = (coef[b, t, 0] - u * sa) * s_inv * sx
                        rast_db[b, y, x, 1] = (coef[b, t, 1] - u * sb) * s_inv * sy
                        rast_db[b, y, x, 2] = (coef[b, t, 3] - v * sa) * s_inv * sx
                        rast_db[b, y, x, 3] = (coef[b, t, 4] - v * sb) * s_inv * sy


def _row_chunks(num_rows: int) -> np.ndarray:
    """Row ranges ``[n + 1]`` splitting ``num_rows`` into one chunk per numba thread."""
    chunks = max(1, min(nb.get_num_threads(), num_rows))
    return np.linspace(0, num_rows, chunks + 1).astype(np.int64)


@nb.njit(parallel=True, cache=True)
def _rasterize_backward_chunks(coef, tri, rast, grad_rast, row_bounds, grad_buffers):
    num_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    sx = 2.0 / width
    sy = 2.0 / height
    for chunk in nb.prange(row_bounds.shape[0] - 1):
        g = grad_buffers[chunk]
        for row in range(row_bounds[chunk], row_bounds[chunk + 1]):
            b = row // height
            y = row % height
            py = (y + 0.5) * sy - 1.0
            for x in range(width):
                tid = int(rast[b, y, x, 3])
                if tid == 0:
                    continue
                gu = grad_rast[b, y, x, 0]
                gv = grad_rast[b, y, x, 1]
                gz = grad_rast[b, y, x, 2]
                if gu == 0.0 and gv == 0.0 and gz == 0.0:
                    continue
                t = tid - 1
                px = (x + 0.5) * sx - 1.0
                m0, m1, m2 = coef[b, t, 0], coef[b, t, 1], coef[b, t, 2]
                m3, m4, m5 = coef[b, t, 3], coef[b, t, 4], coef[b, t, 5]
                m6, m7, m8 = coef[b, t, 6], coef[b, t, 7], coef[b, t, 8]
                c0 = m0 * px + m1 * py + m2
                c1 = m3 * px + m4 * py + m5
                c2 = m6 * px + m7 * py + m8
                s_inv = 1.0 / (c0 + c1 + c2)
                u = c0 * s_inv
                v = c1 * s_inv
                # dL/dc_k for u = c0/s, v = c1/s, zw = c . z
                base = -(gu * u + gv * v) * s_inv
                gc0 = base + gu * s_inv + gz * coef[b, t, 9]
                gc1 = base + gv * s_inv + gz * coef[b, t, 10]
                gc2 = base + gz * coef[b, t, 11]
                # r = M^-T g_c ; vertex i's (x, y, w) gets -c_i r, its z gets gz c_i.
                rx = m0 * gc0 + m3 * gc1 + m6 * gc2
                ry = m1 * gc0 + m4 * gc1 + m7 * gc2
                rw = m2 * gc0 + m5 * gc1 + m8 * gc2
                i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
                g[b, i0, 0] -= c0 * rx
                g[b, i0, 1] -= c0 * ry
                g[b, i0, 2] += gz * c0
                g[b, i0, 3] -= c0 * rw
                g[b, i1, 0] -= c1 * rx
                g[b, i1, 1] -= c1 * ry
                g[b, i1, 2] += gz * c1
                g[b, i1, 3] -= c1 * rw
                g[b, i2, 0] -= c2 * rx
                g[b, i2, 1] -= c2 * ry
                g[b, i2, 2] += gz * c2
                g[b, i2, 3] -= c2 * rw


def rasterize_backward(coef, tri, rast, grad_rast, num_vertices):
    """Gradient of a loss w.r.t. clip positions ``[B, V, 4]`` from its gradient w.r.t. ``rast``'s
    ``(u, v, z/w)`` channels (visibility is held fixed)."""
    num_batch, height = rast.shape[0], rast.shape[1]
    row_bounds = _row_chunks(num_batch * height)
    buffers = np.zeros((len(row_bounds) - 1, num_batch, num_vertices, 4), grad_rast.dtype)
    _rasterize_backward_chunks(coef, tri, rast, grad_rast, row_bounds, buffers)
    return buffers.sum(axis=0) if len(buffers) > 1 else buffers[0]


@nb.njit(parallel=True, cache=True)
def interpolate_forward(attr, rast, tri, out):
    """``out[b, y, x] = u a_i0 + v a_i1 + (1 - u - v) a_i2`` over covered pixels (``out`` zero-filled).

    ``attr`` is ``[1 or B, V, C]``; a batch of 1 is broadcast.
    """
    num_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    channels = attr.shape[2]
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        ab = b if attr.shape[0] > 1 else 0
        for x in range(width):
            tid = int(rast[b, y, x, 3])
            if tid == 0:
                continue
            u = rast[b, y, x, 0]
            v = rast[b, y, x, 1]
            w = 1.0 - u - v
            i0, i1, i2 = tri[tid - 1, 0], tri[tid - 1, 1], tri[tid - 1, 2]
            for ch in range(channels):
                out[b, y, x, ch] = u * attr[ab, i0, ch] + v * attr[ab, i1, ch] + w * attr[ab, i2, ch]


@nb.njit(parallel=True, cache=True)
def _interpolate_backward_chunks(attr, rast, tri, grad_out, row_bounds, grad_buffers, grad_rast, want_attr, want_rast):
    num_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    channels = attr.shape[2]
    for chunk in nb.prange(row_bounds.shape[0] - 1):
        g = grad_buffers[chunk]
        for row in range(row_bounds[chunk], row_bounds[chunk + 1]):
            b = row // height
            y = row % height
            ab = b if attr.shape[0] > 1 else 0
            for x in range(width):
                tid = int(rast[b, y, x, 3])
                if tid == 0:
                    continue
                u = rast[b, y, x, 0]
                v = rast[b, y, x, 1]
                w = 1.0 - u - v
                i0, i1, i2 = tri[tid - 1, 0], tri[tid - 1, 1], tri[tid - 1, 2]
                du = 0.0
                dv = 0.0
                for ch in range(channels):
                    go = grad_out[b, y, x, ch]
                    if want_attr:
                        g[ab, i0, ch] += u * go
                        g[ab, i1, ch] += v * go
                        g[ab, i2, ch] += w * go
                    if want_rast:
                        a2 = attr[ab, i2, ch]
                        du += go * (attr[ab, i0, ch] - a2)
                        dv += go * (attr[ab, i1, ch] - a2)
                if want_rast:
                    grad_rast[b, y, x, 0] = du
                    grad_rast[b, y, x, 1] = dv


def interpolate_backward(attr, rast, tri, grad_out, want_attr=True, want_rast=True):
    """Gradients of ``interpolate_forward`` w.r.t. ``attr`` (``[1 or B, V, C]``) and ``rast`` (u, v)."""
    num_batch, height = rast.shape[0], rast.shape[1]
    row_bounds = _row_chunks(num_batch * height)
    chunks = len(row_bounds) - 1
    buffers = np.zeros((chunks,) + (attr.shape if want_attr else (1, 1, 1)), grad_out.dtype)
    grad_rast = np.zeros(rast.shape if want_rast else (1, 1, 1, 4), grad_out.dtype)
    _interpolate_backward_chunks(attr, rast, tri, grad_out, row_bounds, buffers, grad_rast, want_attr, want_rast)
    grad_attr = (buffers.sum(axis=0) if chunks > 1 else buffers[0]) if want_attr else None
    return grad_attr, (grad_rast if want_rast else None)


@nb.njit(inline="always")
def tap_index(i, size, boundary):
    """Texel index for tap ``i`` under boundary mode 0 = wrap, 1 = clamp, 2 = zero (-1: no texel)."""
    if boundary == 0:
        return i % size
    if boundary == 1:
        return min(max(i, 0), size - 1)
    return i if 0 <= i < size else -1


@nb.njit(inline="always")
def _bilinear_taps(u, v, tex_w, tex_h, boundary):
    """Columns ``c0, c1``, rows ``r0, r1`` (-1: no texel) and fractions ``ax, ay`` of a bilinear lookup."""
    fx = u * tex_w - 0.5
    fy = v * tex_h - 0.5
    x0 = int(math.floor(fx))
    y0 = int(math.floor(fy))
    c0 = tap_index(x0, tex_w, boundary)
    c1 = tap_index(x0 + 1, tex_w, boundary)
    r0 = tap_index(y0, tex_h, boundary)
    r1 = tap_index(y0 + 1, tex_h, boundary)
    return c0, c1, r0, r1, fx - x0, fy - y0


@nb.njit(parallel=True, cache=True)
def texture_linear_forward(tex, uv, boundary, out):
    """Bilinear lookup: ``tex [1 or B, Ht, Wt, C]``, ``uv [B, H, W, 2]`` -> ``out [B, H, W, C]``.

    Texel centres at ``(i + 0.5) / size`` (``grid_sample(align_corners=False)``).
    """
    num_batch, height, width = uv.shape[0], uv.shape[1], uv.shape[2]
    tex_h, tex_w, channels = tex.shape[1], tex.shape[2], tex.shape[3]
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        tb = b if tex.shape[0] > 1 else 0
        for x in range(width):
            if x > 0 and uv[b, y, x, 0] == uv[b, y, x - 1, 0] and uv[b, y, x, 1] == uv[b, y, x - 1, 1]:
                # Same coordinates as the left neighbour (e.g. the uv = 0 background): same value.
                for ch in range(channels):
                    out[b, y, x, ch] = out[b, y, x - 1, ch]
                continue
            c0, c1, r0, r1, ax, ay = _bilinear_taps(uv[b, y, x, 0], uv[b, y, x, 1], tex_w, tex_h, boundary)
            w00 = (1.0 - ax) * (1.0 - ay) if r0 >= 0 and c0 >= 0 else 0.0
            w01 = ax * (1.0 - ay) if r0 >= 0 and c1 >= 0 else 0.0
            w10 = (1.0 - ax) * ay if r1 >= 0 and c0 >= 0 else 0.0
            w11 = ax * ay if r1 >= 0 and c1 >= 0 else 0.0
            c0, c1, r0, r1 = max(c0, 0), max(c1, 0), max(r0, 0), max(r1, 0)
            for ch in range(channels):
                out[b, y, x, ch] = (
                    w00 * tex[tb, r0, c0, ch] + w01 * tex[tb, r0, c1, ch] + w10 * tex[tb, r1, c0, ch] + w11 * tex[tb, r1, c1, ch]
                )


@nb.njit(parallel=True, cache=True)
def _texture_linear_grad_uv(tex, uv, boundary, grad_out, grad_uv):
    num_batch, height, width = uv.shape[0], uv.shape[1], uv.shape[2]
    tex_h, tex_w, channels = tex.shape[1], tex.shape[2], tex.shape[3]
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        tb = b if tex.shape[0] > 1 else 0
        slope_x = np.empty(channels, tex.dtype)  # d(value)/d(fx), d(value)/d(fy) at the last new uv
        slope_y = np.empty(channels, tex.dtype)
        for x in range(width):
            if not (x > 0 and uv[b, y, x, 0] == uv[b, y, x - 1, 0] and uv[b, y, x, 1] == uv[b, y, x - 1, 1]):
                c0, c1, r0, r1, ax, ay = _bilinear_taps(uv[b, y, x, 0], uv[b, y, x, 1], tex_w, tex_h, boundary)
                for ch in range(channels):
                    t00 = tex[tb, r0, c0, ch] if r0 >= 0 and c0 >= 0 else 0.0
                    t01 = tex[tb, r0, c1, ch] if r0 >= 0 and c1 >= 0 else 0.0
                    t10 = tex[tb, r1, c0, ch] if r1 >= 0 and c0 >= 0 else 0.0
                    t11 = tex[tb, r1, c1, ch] if r1 >= 0 and c1 >= 0 else 0.0
                    slope_x[ch] = (1.0 - ay) * (t01 - t00) + ay * (t11 - t10)
                    slope_y[ch] = (1.0 - ax) * (t10 - t00) + ax * (t11 - t01)
            gx = 0.0
            gy = 0.0
            for ch in range(channels):
                g = grad_out[b, y, x, ch]
                gx += g * slope_x[ch]
                gy += g * slope_y[ch]
            grad_uv[b, y, x, 0] = gx * tex_w
            grad_uv[b, y, x, 1] = gy * tex_h


@nb.njit(cache=True)
def _texture_linear_grad_tex(uv, boundary, grad_out, grad_tex):
    # Sequential scatter: one pass over the pixels, no per-thread copies of a large texture (splitting
    # texel rows between threads measured no faster: the pass is bound by computing the taps). Runs of
    # pixels with equal uv (the uv = 0 background) are summed first and scattered once.
    num_batch, height, width = uv.shape[0], uv.shape[1], uv.shape[2]
    tex_h, tex_w, channels = grad_tex.shape[1], grad_tex.shape[2], grad_tex.shape[3]
    run = np.zeros(channels, grad_out.dtype)
    for b in range(num_batch):
        tb = b if grad_tex.shape[0] > 1 else 0
        for y in range(height):
            for x in range(width):
                for ch in range(channels):
                    run[ch] += grad_out[b, y, x, ch]
                if x + 1 < width and uv[b, y, x + 1, 0] == uv[b, y, x, 0] and uv[b, y, x + 1, 1] == uv[b, y, x, 1]:
                    continue  # the next pixel samples the same point: keep summing
                c0, c1, r0, r1, ax, ay = _bilinear_taps(uv[b, y, x, 0], uv[b, y, x, 1], tex_w, tex_h, boundary)
                for ch in range(channels):
                    g = run[ch]
                    run[ch] = 0.0
                    if g == 0.0:
                        continue
                    if r0 >= 0 and c0 >= 0:
                        grad_tex[tb, r0, c0, ch] += (1.0 - ax) * (1.0 - ay) * g
                    if r0 >= 0 and c1 >= 0:
                        grad_tex[tb, r0, c1, ch] += ax * (1.0 - ay) * g
                    if r1 >= 0 and c0 >= 0:
                        grad_tex[tb, r1, c0, ch] += (1.0 - ax) * ay * g
                    if r1 >= 0 and c1 >= 0:
                        grad_tex[tb, r1, c1, ch] += ax * ay * g


def texture_linear_backward(tex, uv, boundary, grad_out, want_tex, want_uv):
    """Gradients of :func:`texture_linear_forward` w.r.t. ``tex`` and ``uv`` (``None`` if not wanted)."""
    grad_tex = grad_uv = None
    if want_uv:
        grad_uv = np.zeros(uv.shape, uv.dtype)
        _texture_linear_grad_uv(tex, uv, boundary, grad_out, grad_uv)
    if want_tex:
        grad_tex = np.zeros(tex.shape, tex.dtype)
        _texture_linear_grad_tex(uv, boundary, grad_out, grad_tex)
    return grad_tex, grad_uv


# ---------------------------------------------------------------------------------------------
# Antialiasing (math in renderers/antialias.py). Pairs are indexed by their lower-left pixel:
# direction 0 pairs (x, y) with (x + 1, y), direction 1 pairs (x, y) with (x, y + 1).


@nb.njit(parallel=True, cache=True)
def silhouette_edges(pos, tri, neighbor, width, height, screen, silhouette):
    """Screen positions ``screen [B,V,2]`` (pixels) and per-edge silhouette flags ``silhouette [B,T,3]``.

    An edge is a silhouette if it is a boundary or its neighbour faces the other way; triangles with a
    vertex behind the eye get none.
    """
    num_batch, num_vertices = pos.shape[0], pos.shape[1]
    num_tri = tri.shape[0]
    for k in nb.prange(num_batch * num_vertices):
        b = k // num_vertices
        i = k % num_vertices
        w = pos[b, i, 3]
        w = w if w > 0.0 else 1.0
        screen[b, i, 0] = (pos[b, i, 0] / w + 1.0) * 0.5 * width
        screen[b, i, 1] = (pos[b, i, 1] / w + 1.0) * 0.5 * height
    for b in range(num_batch):
        facing = np.zeros(num_tri, np.int8)
        for t in nb.prange(num_tri):
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            if pos[b, i0, 3] <= 0.0 or pos[b, i1, 3] <= 0.0 or pos[b, i2, 3] <= 0.0:
                continue
            ax = screen[b, i1, 0] - screen[b, i0, 0]
            ay = screen[b, i1, 1] - screen[b, i0, 1]
            bx = screen[b, i2, 0] - screen[b, i0, 0]
            by = screen[b, i2, 1] - screen[b, i0, 1]
            area = ax * by - ay * bx
            facing[t] = 1 if area > 0.0 else (-1 if area < 0.0 else 0)
        for t in nb.prange(num_tri):
            for e in range(3):
                n = neighbor[t, e]
                silhouette[b, t, e] = facing[t] != 0 and (n < 0 or facing[n] != facing[t])


@nb.njit(parallel=True, cache=True)
def antialias_pairs(rast, tri, screen, silhouette, alpha, edge, front_is_first):
    """For each pixel pair with different triangle ids whose front triangle leaves through a silhouette
    edge between the two centres: ``alpha [B,H,W,2]`` (crossing distance from the front centre, NaN if
    none), ``edge [B,H,W,2]`` (which edge of the front triangle), ``front_is_first [B,H,W,2]``."""
    num_batch, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        for x in range(width):
            for d in range(2):
                alpha[b, y, x, d] = np.nan
                x2 = x + 1 - d
                y2 = y + d
                if x2 >= width or y2 >= height:
                    continue
                id1 = int(rast[b, y, x, 3])
                id2 = int(rast[b, y2, x2, 3])
                if id1 == id2:
                    continue
                first_front = id2 == 0 or (id1 != 0 and rast[b, y, x, 2] <= rast[b, y2, x2, 2])
                t = (id1 if first_front else id2) - 1
                if not (silhouette[b, t, 0] or silhouette[b, t, 1] or silhouette[b, t, 2]):
                    continue
                sx = (x if first_front else x2) + 0.5
                sy = (y if first_front else y2) + 0.5
                dx = float(x2 - x) if first_front else float(x - x2)
                dy = float(y2 - y) if first_front else float(y - y2)
                best = 2.0
                best_edge = -1
                for e in range(3):
                    p = tri[t, (e + 1) % 3]
                    q = tri[t, (e + 2) % 3]
                    ex = screen[b, q, 0] - screen[b, p, 0]
                    ey = screen[b, q, 1] - screen[b, p, 1]
                    cs = ex * (sy - screen[b, p, 1]) - ey * (sx - screen[b, p, 0])
                    cd = ex * dy - ey * dx
                    if cs * cd < 0.0:
                        a = -cs / cd
                        if 0.0 <= a <= 1.0 and a < best:
                            best = a
                            best_edge = e
                if best_edge >= 0 and silhouette[b, t, best_edge]:
                    alpha[b, y, x, d] = best
                    edge[b, y, x, d] = best_edge
                    front_is_first[b, y, x, d] = first_front


@nb.njit(inline="always")
def _pair_target(x, y, d, alpha_value, first_front):
    """The pixel a pair blends into and the pixel it blends from, as (tx, ty, sx, sy)."""
    x2 = x + 1 - d
    y2 = y + d
    into_other = alpha_value > 0.5
    if first_front == into_other:  # target is the second pixel
        return x2, y2, x, y
    return x, y, x2, y2


@nb.njit(inline="always")
def _pair_touching(x, y, n):
    """The ``n``-th (0..3) pair touching pixel (x, y), as its lower-left pixel and direction:
    (x, y)->right, (x, y)->up, (x-1, y)->right, (x, y-1)->up."""
    return (x - 1 if n == 2 else x), (y - 1 if n == 3 else y), (1 if (n == 1 or n == 3) else 0)


@nb.njit(parallel=True, cache=True)
def antialias_forward(color, alpha, front_is_first, out):
    """``out = color`` plus, per pair, ``|alpha - 0.5| (color_source - color_target)`` at the target.

    Gathers per target pixel over its four pairs, so no two threads write one pixel.
    """
    num_batch, height, width, channels = color.shape
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        for x in range(width):
            for ch in range(channels):
                out[b, y, x, ch] = color[b, y, x, ch]
            for n in range(4):
                px, py, d = _pair_touching(x, y, n)
                if px < 0 or py < 0:
                    continue
                a = alpha[b, py, px, d]
                if np.isnan(a):
                    continue
                tx, ty, sx, sy = _pair_target(px, py, d, a, front_is_first[b, py, px, d])
                if tx != x or ty != y:
                    continue
                weight = abs(a - 0.5)
                for ch in range(channels):
                    out[b, y, x, ch] += weight * (color[b, sy, sx, ch] - color[b, y, x, ch])


@nb.njit(parallel=True, cache=True)
def antialias_backward_color(color, alpha, front_is_first, grad_out, grad_color):
    """``grad_color``: identity plus each pair's blend weight moved from target to source."""
    num_batch, height, width, channels = color.shape
    for row in nb.prange(num_batch * height):
        b = row // height
        y = row % height
        for x in range(width):
            for ch in range(channels):
                grad_color[b, y, x, ch] = grad_out[b, y, x, ch]
            for n in range(4):
                px, py, d = _pair_touching(x, y, n)
                if px < 0 or py < 0:
                    continue
                a = alpha[b, py, px, d]
                if np.isnan(a):
                    continue
                tx, ty, sx, sy = _pair_target(px, py, d, a, front_is_first[b, py, px, d])
                weight = abs(a - 0.5)
                if tx == x and ty == y:
                    for ch in range(channels):
                        grad_color[b, y, x, ch] -= weight * grad_out[b, y, x, ch]
                elif sx == x and sy == y:
                    for ch in range(channels):
                        grad_color[b, y, x, ch] += weight * grad_out[b, ty, tx, ch]


@nb.njit(cache=True)
def antialias_backward_pos(pos, tri, rast, screen, color, alpha, edge, front_is_first, grad_out, boost, grad_pos):
    """Scatter each pair's d(loss)/d(alpha) to the clip positions of its silhouette edge's vertices."""
    num_batch, height, width, channels = color.shape
    for b in range(num_batch):
        bp = b if pos.shape[0] > 1 else 0
        for y in range(height):
            for x in range(width):
                for d in range(2):
                    a = alpha[b, y, x, d]
                    if np.isnan(a):
                        continue
                    first_front = front_is_first[b, y, x, d]
                    tx, ty, sx, sy = _pair_target(x, y, d, a, first_front)
                    # out[target] += |a - 0.5| (c_src - c_tgt)  =>  dL/da = sign(a - 0.5) g_tgt . (c_src - c_tgt)
                    g_alpha = 0.0
                    for ch in range(channels):
                        g_alpha += grad_out[b, ty, tx, ch] * (color[b, sy, sx, ch] - color[b, ty, tx, ch])
                    g_alpha *= boost if a > 0.5 else -boost
                    x2 = x + 1 - d
                    y2 = y + d
                    fx = (x if first_front else x2) + 0.5
                    fy = (y if first_front else y2) + 0.5
                    dx = float(x2 - x) if first_front else float(x - x2)
                    dy = float(y2 - y) if first_front else float(y - y2)
                    t = int(rast[b, y, x, 3] if first_front else rast[b, y2, x2, 3]) - 1
                    e = edge[b, y, x, d]
                    p = tri[t, (e + 1) % 3]
                    q = tri[t, (e + 2) % 3]
                    px, py = screen[bp, p, 0], screen[bp, p, 1]
                    qx, qy = screen[bp, q, 0], screen[bp, q, 1]
                    ex, ey = qx - px, qy - py
                    cd = ex * dy - ey * dx
                    # alpha = -cs / cd  =>  d alpha = -(d cs + alpha d cd) / cd
                    k = -g_alpha / cd
                    g_px = k * ((qy - fy) + a * (-dy))
                    g_py = k * ((fx - qx) + a * dx)
                    g_qx = k * ((fy - py) + a * dy)
                    g_qy = k * ((px - fx) + a * (-dx))
                    for vertex, gx, gy in ((p, g_px, g_py), (q, g_qx, g_qy)):
                        w = pos[bp, vertex, 3]
                        sxw = 0.5 * width / w
                        syw = 0.5 * height / w
                        grad_pos[bp, vertex, 0] += gx * sxw
                        grad_pos[bp, vertex, 1] += gy * syw
                        grad_pos[bp, vertex, 3] -= gx * sxw * pos[bp, vertex, 0] / w + gy * syw * pos[bp, vertex, 1] / w
