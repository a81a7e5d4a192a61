"""Benchmark the rasterizer on the full ICT head against Mesa llvmpipe OpenGL (the CPU peer).

    python scripts/bench_render.py [--json] [--repeats 20] [--warmup 3]

The triangulated full ICT FaceKit head (all parts, ~52k triangles; from ``shared/`` when present,
else the shipped template, which is the same mesh) at 512 × 512, framed as fitting sees it (the head
spans 80 % of the image height, three-quarter view), timed in one run:

(a) our CPU backend forward: ``rasterize`` + ``interpolate`` (uv) + ``texture`` (1024² RGB, bilinear);
(b) its backward: ``loss = (color * fixed random weights).sum()``, gradients w.r.t. ``pos_clip`` and the
    texture (the forward is not timed);
(c) the pure-torch backend, same forward;
(d) the peer: Mesa llvmpipe through moderngl's EGL standalone context, drawing the same clip-space
    triangles with depth test into an RGBA32F framebuffer holding (u, v, z/w, triangle id + 1), then
    reading it back. Two ways of getting barycentrics are timed — a geometry shader over the indexed
    mesh, and vertices expanded per triangle with per-corner barycentric attributes (the expansion is
    timed) — and the faster one is the peer. Each frame uploads the positions, as a fitting step would.

Medians over ``--repeats`` runs after ``--warmup`` runs. Also checks that our triangle-id image agrees
with OpenGL's (both have row 0 at the bottom, clip-space y = -1). Targets (issue 2): a/d ≤ 1.0 and
b/a ≤ 2.0 on a 2-core machine. ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

# Mesa: no display, software rasterizer (llvmpipe). Set before any GL library loads.
os.environ.setdefault("EGL_PLATFORM", "surfaceless")
os.environ.setdefault("LIBGL_ALWAYS_SOFTWARE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from avatar.core.paths import shared_dir  # noqa: E402
from renderers import ops  # noqa: E402
from renderers.camera import frame_points  # noqa: E402

_VERTEX_SHADER_INDEXED = """#version 330
in vec4 in_pos;
void main() { gl_Position = in_pos; }
"""
_GEOMETRY_SHADER = """#version 330
layout(triangles) in;
layout(triangle_strip, max_vertices = 3) out;
out vec2 v_bary;
void main() {
    gl_PrimitiveID = gl_PrimitiveIDIn;
    gl_Position = gl_in[0].gl_Position; v_bary = vec2(1.0, 0.0); EmitVertex();
    gl_Position = gl_in[1].gl_Position; v_bary = vec2(0.0, 1.0); EmitVertex();
    gl_Position = gl_in[2].gl_Position; v_bary = vec2(0.0, 0.0); EmitVertex();
    EndPrimitive();
}
"""
_VERTEX_SHADER_EXPANDED = """#version 330
in vec4 in_pos;
in vec2 in_bary;
out vec2 v_bary;
void main() { gl_Position = in_pos; v_bary = in_bary; }
"""
_FRAGMENT_SHADER = """#version 330
in vec2 v_bary;
out vec4 f_rast;
void main() {
    // nvdiffrast's layout: (u, v, z/w in NDC, triangle id + 1); v_bary is perspective-correct.
    f_rast = vec4(v_bary, gl_FragCoord.z * 2.0 - 1.0, float(gl_PrimitiveID + 1));
}
"""


def load_head() -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The full triangulated ICT head: (source, verts (V,3), faces (F,3) int32, uv (Vt,2), uv_faces (F,3) int32)."""
    if shared_dir() is not None:
        from avatar.morphable.ict import load_ict_facekit

        model = load_ict_facekit()
        return "shared ICT FaceKit", model.neutral, model.faces, model.uv, model.uv_faces
    from avatar.morphable.template import load_template

    template = load_template()
    return "shipped template", template.neutral, template.faces, template.uv, template.uv_faces


class OpenGLPeer:
    """Mesa llvmpipe (moderngl EGL standalone context) writing nvdiffrast-style rast images."""

    def __init__(self, tri: np.ndarray, num_vertices: int, resolution: tuple[int, int]):
        try:
            import moderngl
        except ImportError as exc:
            raise SystemExit("the OpenGL peer needs moderngl: pip install -e '.[bench]'") from exc
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as exc:  # driver errors come in many types
            raise SystemExit(
                f"cannot create an EGL OpenGL context ({exc}); install Mesa: apt-get install libegl1 libgl1-mesa-dri"
            ) from exc
        self.moderngl = moderngl
        self.renderer = self.ctx.info["GL_RENDERER"]
        self.height, self.width = resolution
        self.tri = np.ascontiguousarray(tri, dtype=np.int32)
        color = self.ctx.renderbuffer((self.width, self.height), 4, dtype="f4")
        depth = self.ctx.depth_renderbuffer((self.width, self.height))
        self.fbo = self.ctx.framebuffer([color], depth)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.depth_func = "<"
        # Geometry-shader path: indexed mesh, positions uploaded as they are.
        program = self.ctx.program(
            vertex_shader=_VERTEX_SHADER_INDEXED, geometry_shader=_GEOMETRY_SHADER, fragment_shader=_FRAGMENT_SHADER
        )
        self.indexed_positions = self.ctx.buffer(reserve=num_vertices * 16)
        indices = self.ctx.buffer(self.tri.tobytes())
        self.indexed_vao = self.ctx.vertex_array(
            program, [(self.indexed_positions, "4f", "in_pos")], index_buffer=indices, index_element_size=4
        )
        # Expanded path: three vertices per triangle carrying per-corner barycentrics.
        program = self.ctx.program(vertex_shader=_VERTEX_SHADER_EXPANDED, fragment_shader=_FRAGMENT_SHADER)
        corners = np.tile(np.array([[1, 0], [0, 1], [0, 0]], np.float32), (len(self.tri), 1))
        self.expanded_positions = self.ctx.buffer(reserve=len(self.tri) * 3 * 16)
        self.expanded_vao = self.ctx.vertex_array(
            program,
            [(self.expanded_positions, "4f", "in_pos"), (self.ctx.buffer(corners.tobytes()), "2f", "in_bary")],
        )
        self.flat_tri = self.tri.reshape(-1)

    def _draw_and_read(self, vao) -> np.ndarray:
        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(self.moderngl.TRIANGLES)
        data = self.fbo.read(components=4, dtype="f4")  # rows from the bottom, like nvdiffrast
        return np.frombuffer(data, np.float32).reshape(self.height, self.width, 4)

    def render_geometry_shader(self, pos_clip: torch.Tensor) -> np.ndarray:
        """``[H, W, 4]`` (u, v, z/w, id + 1), row 0 at the bottom, from ``pos_clip [V, 4]``."""
        self.indexed_positions.write(pos_clip.detach().numpy().astype(np.float32, copy=False).tobytes())
        return self._draw_and_read(self.indexed_vao)

    def render_expanded(self, pos_clip: torch.Tensor) -> np.ndarray:
        """Same as :meth:`render_geometry_shader`, expanding vertices per triangle on the CPU."""
        positions = pos_clip.detach().numpy().astype(np.float32, copy=False)[self.flat_tri]
        self.expanded_positions.write(positions.tobytes())
        return self._draw_and_read(self.expanded_vao)


def median_ms(fn, repeats: int, warmup: int, setup=None) -> float:
    """Median wall time of ``fn(setup())`` in milliseconds (``setup`` is not timed)."""
    times = []
    for i in range(warmup + repeats):
        arg = setup() if setup is not None else None
        start = time.perf_counter()
        fn(arg)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    return 1e3 * statistics.median(times)


def thread_info() -> dict:
    try:
        import numba

        numba_threads = int(numba.get_num_threads())
    except ImportError:
        numba_threads = None
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba_threads,
        "llvmpipe_threads": int(os.environ.get("LP_NUM_THREADS", os.cpu_count() or 1)),
    }


def run(repeats: int, warmup: int, torch_repeats: int, size: int, texture_size: int, yaw: float) -> dict:
    source, verts_np, faces_np, uv_np, uv_faces_np = load_head()
    verts = torch.from_numpy(np.array(verts_np, dtype=np.float32))
    tri = torch.from_numpy(np.array(faces_np, dtype=np.int32))
    uv = torch.from_numpy(np.array(uv_np, dtype=np.float32))[None]
    uv_tri = torch.from_numpy(np.array(uv_faces_np, dtype=np.int32))
    resolution = (size, size)
    camera = frame_points(verts, resolution, yaw_deg=yaw, fill=0.8)
    pos_clip = camera.to_clip(verts).contiguous().detach()  # [1, V, 4]
    generator = torch.Generator().manual_seed(0)
    tex = torch.rand(1, texture_size, texture_size, 3, generator=generator)
    weights = torch.rand(1, size, size, 3, generator=generator)
    head_px = camera.project(verts)[0, :, 1]
    fill = float((head_px.max() - head_px.min()) / size)

    def forward(backend: str, pos: torch.Tensor, texture: torch.Tensor):
        rast, _ = ops.rasterize(pos, tri, resolution=resolution, grad_db=False, backend=backend)
        uv_pix, _ = ops.interpolate(uv, rast, uv_tri, backend=backend)
        return rast, ops.texture(texture, uv_pix, filter_mode="linear")

    def forward_for_backward():
        pos = pos_clip.clone().requires_grad_()
        texture = tex.clone().requires_grad_()
        _, color = forward("cpu", pos, texture)
        return (color * weights).sum()

    with torch.no_grad():
        ours_forward = median_ms(lambda _: forward("cpu", pos_clip, tex), repeats, warmup)
    ours_backward = median_ms(lambda loss: loss.backward(), repeats, warmup, setup=forward_for_backward)
    with torch.no_grad():
        torch_forward = median_ms(lambda _: forward("torch", pos_clip, tex), torch_repeats, 1)
        rast_cpu, _ = forward("cpu", pos_clip, tex)
        rast_torch, _ = forward("torch", pos_clip, tex)

    peer = OpenGLPeer(faces_np, verts.shape[0], resolution)
    gl_pos = pos_clip[0]
    opengl_gs = median_ms(lambda _: peer.render_geometry_shader(gl_pos), repeats, warmup)
    opengl_expanded = median_ms(lambda _: peer.render_expanded(gl_pos), repeats, warmup)
    gl_rast = peer.render_geometry_shader(gl_pos)
    opengl_ms = min(opengl_gs, opengl_expanded)

    ours_ids = rast_cpu[0, ..., 3].round().long().numpy()
    gl_ids = np.rint(gl_rast[..., 3]).astype(np.int64)
    covered = (ours_ids > 0) | (gl_ids > 0)
    same = (ours_ids == gl_ids) & covered
    agreement = float(same.sum() / max(int(covered.sum()), 1))
    bary_diff = np.abs(rast_cpu[0, ..., :2].numpy()[same] - gl_rast[..., :2][same])
    torch_ids = rast_torch[0, ..., 3].round().long().numpy()
    torch_covered = (ours_ids > 0) | (torch_ids > 0)
    torch_agreement = float(((ours_ids == torch_ids) & torch_covered).sum() / max(int(torch_covered.sum()), 1))

    return {
        "ours_forward_ms": round(ours_forward, 3),
        "ours_backward_ms": round(ours_backward, 3),
        "torch_forward_ms": round(torch_forward, 3),
        "opengl_ms": round(opengl_ms, 3),
        "ratio_vs_opengl": round(ours_forward / opengl_ms, 3),
        "backward_over_forward": round(ours_backward / ours_forward, 3),
        "opengl_geometry_shader_ms": round(opengl_gs, 3),
        "opengl_expanded_ms": round(opengl_expanded, 3),
        "opengl_variant": "geometry_shader" if opengl_gs <= opengl_expanded else "expanded",
        "opengl_renderer": peer.renderer,
        "triangle_id_agreement_vs_opengl": round(agreement, 5),
        "barycentric_max_abs_diff_vs_opengl": float(bary_diff.max()) if bary_diff.size else None,
        "barycentric_p99_abs_diff_vs_opengl": float(np.percentile(bary_diff, 99)) if bary_diff.size else None,
        "triangle_id_agreement_torch_vs_cpu": round(torch_agreement, 5),
        "covered_pixels": int((ours_ids > 0).sum()),
        "head_height_fill": round(fill, 3),
        "mesh_source": source,
        "triangles": int(tri.shape[0]),
        "vertices": int(verts.shape[0]),
        "resolution": list(resolution),
        "texture_size": texture_size,
        "repeats": repeats,
        "warmup": warmup,
        "torch_repeats": torch_repeats,
        "threads": thread_info(),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "torch_version": torch.__version__,
    }


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"ICT head, {result['triangles']} triangles, {result['resolution'][0]}×{result['resolution'][1]}, "
        f"texture {result['texture_size']}², medians of {result['repeats']}"
    )
    table.add_column("what")
    table.add_column("ms", justify="right")
    table.add_column("note")
    table.add_row("(a) ours, cpu forward", f"{result['ours_forward_ms']:.2f}", "rasterize + interpolate(uv) + texture")
    table.add_row("(b) ours, cpu backward", f"{result['ours_backward_ms']:.2f}", "grads w.r.t. pos_clip and texture")
    table.add_row("(c) ours, torch forward", f"{result['torch_forward_ms']:.2f}",
                  f"pure-torch backend (median of {result['torch_repeats']})")
    table.add_row("(d) OpenGL llvmpipe", f"{result['opengl_ms']:.2f}",
                  f"{result['opengl_variant']} (gs {result['opengl_geometry_shader_ms']:.2f}, "
                  f"expanded {result['opengl_expanded_ms']:.2f}); upload + draw + read back")
    table.add_row("a / d", f"{result['ratio_vs_opengl']:.2f}", "target ≤ 1.0")
    table.add_row("b / a", f"{result['backward_over_forward']:.2f}", "target ≤ 2.0")
    console = Console()
    console.print(table)
    console.print(
        f"triangle ids equal to OpenGL's on {100 * result['triangle_id_agreement_vs_opengl']:.3f} % of covered pixels "
        f"(barycentrics p99 |Δ| {result['barycentric_p99_abs_diff_vs_opengl']:.2e}); "
        f"torch vs cpu backend ids: {100 * result['triangle_id_agreement_torch_vs_cpu']:.3f} %"
    )
    console.print(
        f"mesh: {result['mesh_source']}, head spans {100 * result['head_height_fill']:.0f} % of the height; "
        f"threads: {result['threads']}; GL: {result['opengl_renderer']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--torch-repeats", type=int, default=5, help="timed runs for the slower pure-torch backend")
    parser.add_argument("--size", type=int, default=512, help="image height and width")
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--yaw", type=float, default=35.0, help="camera yaw in degrees (35: three-quarter view)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.torch_repeats, args.size, args.texture_size) < 1 or args.warmup < 0:
        parser.error("repeats, torch-repeats, size and texture-size must be ≥ 1 and warmup ≥ 0")
    result = run(args.repeats, args.warmup, args.torch_repeats, args.size, args.texture_size, args.yaw)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
