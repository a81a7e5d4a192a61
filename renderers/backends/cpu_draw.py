"""Compiled CPU kernel (numba) for :func:`renderers.draw.draw_textured`: visibility, UV texture lookup,
per-vertex shading and the uint8 composite of many frames in one pass, forward only.

The per-pixel arithmetic is the op chain's (:mod:`renderers.backends.cpu_kernels`): the same
homogeneous triangle setup in float64 (``c = M^-1 p``), the same depth test (smallest ``z / w`` in
``[-1, 1]``, ties to the lower triangle id), barycentrics rounded to float32 as ``rast`` stores them,
float32 attribute interpolation and the bilinear texel taps of ``texture(filter_mode="linear")``.
What it saves is the traffic between the ops: one thread draws one whole frame (setup, depth test,
shading) in buffers that stay in cache, no triangle binning, no float images in between.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from renderers.backends.cpu_kernels import tap_index, pixel_box, triangle_inverse


@nb.njit(nogil=True, cache=True)
def _draw_one(pos, tri, uv, uv_tri, tex, boundary, shade, tri_mask, background, flip_y, out, b, depth, ids, bary, ndc):
    """Frame ``b``: depth test into ``depth``/``ids``/``bary`` (``[H,W]``, ``[H,W]``, ``[H,W,2]``; ``ndc [V,3]``
    scratch), then shade."""
    height, width, channels = out.shape[1], out.shape[2], out.shape[3]
    num_tri = tri.shape[0]
    tex_h, tex_w = tex.shape[0], tex.shape[1]
    sx = 2.0 / width
    sy = 2.0 / height
    depth[:] = np.inf
    ids[:] = 0
    mb = b if tri_mask.shape[0] > 1 else 0
    sb = b if shade.shape[0] > 1 else 0
    for i in range(pos.shape[1]):  # normalised device coordinates once per vertex (w > 0)
        w = pos[b, i, 3]
        if w > 0.0:
            ndc[i, 0] = pos[b, i, 0] / w
            ndc[i, 1] = pos[b, i, 1] / w
            ndc[i, 2] = pos[b, i, 2] / w
    for t in range(num_tri):
        if tri_mask.shape[1] > 0 and not tri_mask[mb, t]:
            continue
        i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
        w0, w1, w2 = pos[b, i0, 3], pos[b, i1, 3], pos[b, i2, 3]
        if w0 <= 0.0 and w1 <= 0.0 and w2 <= 0.0:
            continue  # entirely behind the eye
        if w0 > 0.0 and w1 > 0.0 and w2 > 0.0:
            zn0, zn1, zn2 = ndc[i0, 2], ndc[i1, 2], ndc[i2, 2]
            if (zn0 > 1.0 and zn1 > 1.0 and zn2 > 1.0) or (zn0 < -1.0 and zn1 < -1.0 and zn2 < -1.0):
                continue  # entirely beyond the far plane or before the near plane
            nx0, nx1, nx2 = ndc[i0, 0], ndc[i1, 0], ndc[i2, 0]
            ny0, ny1, ny2 = ndc[i0, 1], ndc[i1, 1], ndc[i2, 1]
            bx0, bx1, by0, by1 = pixel_box(nx0, nx1, nx2, ny0, ny1, ny2, width, height)
            if bx0 > bx1 or by0 > by1:
                continue  # covers no pixel centre (most triangles of a dense mesh at video sizes)
        else:
            bx0, bx1, by0, by1 = 0, width - 1, 0, height - 1  # a vertex behind the eye: test the whole image
        x0, y0, z0 = pos[b, i0, 0], pos[b, i0, 1], pos[b, i0, 2]
        x1, y1, z1 = pos[b, i1, 0], pos[b, i1, 1], pos[b, i1, 2]
        x2, y2, z2 = pos[b, i2, 0], pos[b, i2, 1], pos[b, i2, 2]
        ok, m0, m1, m2, m3, m4, m5, m6, m7, m8 = triangle_inverse(x0, y0, w0, x1, y1, w1, x2, y2, w2)
        if not ok:
            continue  # degenerate or seen edge-on
        for y in range(by0, by1 + 1):
            py = (y + 0.5) * sy - 1.0
            r0 = m1 * py + m2
            r1 = m4 * py + m5
            r2 = m7 * py + m8
            for x in range(bx0, bx1 + 1):
                px = (x + 0.5) * sx - 1.0
                c0 = m0 * px + r0
                c1 = m3 * px + r1
                c2 = m6 * px + r2
                if c0 >= 0.0 and c1 >= 0.0 and c2 >= 0.0 and c0 + c1 + c2 > 0.0:
                    zw = c0 * z0 + c1 * z1 + c2 * z2
                    if zw >= -1.0 and zw <= 1.0 and zw < depth[y, x]:
                        depth[y, x] = zw
                        ids[y, x] = t + 1
                        # barycentrics as rasterize stores them (its second pass, float32)
                        d0 = m0 * px + m1 * py + m2
                        d1 = m3 * px + m4 * py + m5
                        d2 = m6 * px + m7 * py + m8
                        s_inv = 1.0 / (d0 + d1 + d2)
                        bary[y, x, 0] = d0 * s_inv
                        bary[y, x, 1] = d1 * s_inv
    # shading: interpolated uv, bilinear texel taps, interpolated vertex shade
    for y in range(height):
        row = height - 1 - y if flip_y else y
        for x in range(width):
            tid = ids[y, x]
            if tid == 0:
                for ch in range(channels):
                    out[b, row, x, ch] = np.uint8(min(max(background[ch], np.float32(0.0)), np.float32(1.0))
                                                  * np.float32(255.0) + np.float32(0.5))
                continue
            t = tid - 1
            u = bary[y, x, 0]
            v = bary[y, x, 1]
            w = 1.0 - u - v  # float64, as in interpolate_forward
            j0, j1, j2 = uv_tri[t, 0], uv_tri[t, 1], uv_tri[t, 2]
            tu = np.float32(u * uv[j0, 0] + v * uv[j1, 0] + w * uv[j2, 0])
            tv = np.float32(u * uv[j0, 1] + v * uv[j1, 1] + w * uv[j2, 1])
            fx = tu * tex_w - 0.5
            fy = tv * tex_h - 0.5
            xi = int(math.floor(fx))
            yi = int(math.floor(fy))
            ax = fx - xi
            ay = fy - yi
            q0 = tap_index(xi, tex_w, boundary)
            q1 = tap_index(xi + 1, tex_w, boundary)
            p0 = tap_index(yi, tex_h, boundary)
            p1 = tap_index(yi + 1, tex_h, boundary)
            w00 = (1.0 - ax) * (1.0 - ay) if p0 >= 0 and q0 >= 0 else 0.0
            w01 = ax * (1.0 - ay) if p0 >= 0 and q1 >= 0 else 0.0
            w10 = (1.0 - ax) * ay if p1 >= 0 and q0 >= 0 else 0.0
            w11 = ax * ay if p1 >= 0 and q1 >= 0 else 0.0
            q0, q1, p0, p1 = max(q0, 0), max(q1, 0), max(p0, 0), max(p1, 0)
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            for ch in range(channels):
                albedo = np.float32(w00 * tex[p0, q0, ch] + w01 * tex[p0, q1, ch]
                                    + w10 * tex[p1, q0, ch] + w11 * tex[p1, q1, ch])
                if shade.shape[1] > 0:
                    light = np.float32(u * shade[sb, i0, ch] + v * shade[sb, i1, ch] + w * shade[sb, i2, ch])
                    albedo = albedo * light
                value = min(max(albedo, np.float32(0.0)), np.float32(1.0)) * np.float32(255.0) + np.float32(0.5)
                out[b, row, x, ch] = np.uint8(value)


@nb.njit(parallel=True, nogil=True, cache=True)
def draw_frames_parallel(pos, tri, uv, uv_tri, tex, boundary, shade, tri_mask, background, flip_y, out, num_chunks):
    """Draw the frames of ``out [B,H,W,C]`` uint8 on the numba threads (see :func:`renderers.draw.draw_textured`).

    ``pos [B,V,4]`` float64 clip positions; ``tri``/``uv_tri [T,3]`` int32; ``uv [Vt,2]`` float32;
    ``tex [Ht,Wt,C]`` float32; ``shade [B or 1,V,C]`` float32 (or ``[1,0,C]`` for none);
    ``tri_mask [B or 1,T]`` bool (or ``[1,0]`` for none); ``background [C]`` float32; frames are split into
    ``num_chunks`` runs (one per thread).
    """
    num_batch, height, width = out.shape[0], out.shape[1], out.shape[2]
    chunks = min(num_batch, num_chunks)
    for parallel_index in nb.prange(chunks):
        chunk = np.int64(parallel_index)  # the parallel index is unsigned; keep the arithmetic signed
        # buffers are allocated once per chunk of frames and stay in cache
        depth = np.empty((height, width))
        ids = np.empty((height, width), np.int32)
        bary = np.empty((height, width, 2), np.float32)
        ndc = np.empty((pos.shape[1], 3))
        for b in range(chunk * num_batch // chunks, (chunk + 1) * num_batch // chunks):
            _draw_one(pos, tri, uv, uv_tri, tex, boundary, shade, tri_mask, background, flip_y, out, b,
                      depth, ids, bary, ndc)


@nb.njit(nogil=True, cache=True)
def draw_frames_serial(pos, tri, uv, uv_tri, tex, boundary, shade, tri_mask, background, flip_y, out):
    """:func:`draw_frames_parallel` one frame after another in the calling thread, without the GIL (for a
    rendering thread of its own). A function of its own: numba's cache does not tell a ``parallel=True``
    compilation of one Python function from a serial one."""
    height, width = out.shape[1], out.shape[2]
    depth = np.empty((height, width))
    ids = np.empty((height, width), np.int32)
    bary = np.empty((height, width, 2), np.float32)
    ndc = np.empty((pos.shape[1], 3))
    for b in range(out.shape[0]):
        _draw_one(pos, tri, uv, uv_tri, tex, boundary, shade, tri_mask, background, flip_y, out, b,
                  depth, ids, bary, ndc)
