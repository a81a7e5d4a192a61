"""Watertight skin surfaces, surface / SDF sampling and mesh clean-up (numpy at this IO edge).

The ICT skin (parts M_Face + M_BackHead) is one surface with a single boundary loop at the neck; eye
sockets and the mouth bag are already closed. :func:`close_neck` fans that loop to its centroid,
giving a watertight genus-0 surface. Signed distances come from point-cloud-utils (exact distance,
sign from the generalized winding number, which is robust where pseudonormal signs are not).
"""

from __future__ import annotations

import numpy as np

from avatar.core.errors import AvatarInputError


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one triangle.

    Args:
        faces: triangles, shape :math:`(F, 3)`.

    Returns:
        edges, shape :math:`(E, 2)` (sorted vertex ids per edge).
    """
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return uniq[counts == 1]


def close_neck(vertices: np.ndarray, faces: np.ndarray, loop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan a boundary loop to its centroid so the surface becomes watertight.

    The fan is oriented consistently with the neighbouring triangles (outward normals stay outward).

    Args:
        vertices: shape :math:`(V, 3)`.
        faces: triangles with one boundary loop, shape :math:`(F, 3)`.
        loop: ordered vertex ids around the loop, shape :math:`(L,)`.

    Returns:
        vertices with the centroid appended, shape :math:`(V+1, 3)`; faces with the fan appended,
        shape :math:`(F+L, 3)`.
    """
    centre = len(vertices)
    nxt = np.roll(loop, -1)
    fan = np.stack([loop, nxt, np.full_like(loop, centre)], 1)
    # a boundary edge (a, b) appears in its triangle as a→b or b→a; the fan must traverse it oppositely
    a, b = int(loop[0]), int(loop[1])
    tri = faces[np.any(faces == a, 1) & np.any(faces == b, 1)][0].tolist()
    i = tri.index(a)
    if tri[(i + 1) % 3] == b:  # the triangle goes a→b, so the fan must go b→a
        fan = fan[:, [1, 0, 2]]
    verts = np.concatenate([vertices, vertices[loop].mean(0, keepdims=True)], 0).astype(np.float32)
    return verts, np.concatenate([faces, fan.astype(faces.dtype)], 0)


def signed_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance to a watertight triangle mesh (negative inside), with the closest point.

    Args:
        points: queries, shape :math:`(N, 3)`.
        vertices: mesh vertices, shape :math:`(V, 3)`.
        faces: triangles, shape :math:`(F, 3)`.

    Returns:
        sdf, shape :math:`(N,)`; closest triangle id, shape :math:`(N,)`; barycentric coordinates of the
        closest point, shape :math:`(N, 3)`.
    """
    import point_cloud_utils as pcu

    p = np.ascontiguousarray(points, dtype=np.float64)
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    sdf, fid, bary = pcu.signed_distance_to_mesh(p, v, f)
    return sdf.astype(np.float32), fid.astype(np.int64), np.asarray(bary, dtype=np.float32)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator, face_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area-uniform surface samples with normals.

    Args:
        vertices: shape :math:`(V, 3)`.
        faces: shape :math:`(F, 3)`.
        count: number of samples.
        rng: random generator.
        face_weights: optional extra per-face weight multiplying the area, shape :math:`(F,)`.

    Returns:
        points, shape :math:`(N, 3)`; unit normals, shape :math:`(N, 3)`; face ids, shape :math:`(N,)`;
        barycentric coordinates, shape :math:`(N, 3)`.
    """
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    prob = area if face_weights is None else area * face_weights
    prob = prob / prob.sum()
    fid = rng.choice(len(faces), size=count, p=prob)
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1).astype(np.float32)
    points = (tri[fid] * bary[:, :, None]).sum(1)
    normals = cross[fid] / np.maximum(np.linalg.norm(cross[fid], axis=1, keepdims=True), 1e-12)
    return points.astype(np.float32), normals.astype(np.float32), fid, bary


def largest_component(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the connected component with the most triangles (drops spurious pieces).

    Args:
        vertices: shape :math:`(V, 3)`.
        faces: shape :math:`(F, 3)`.

    Returns:
        vertices, shape :math:`(V', 3)`; faces re-indexed, shape :math:`(F', 3)`.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        raise AvatarInputError("the extracted surface is empty; check the codes or the extraction box")
    n = len(vertices)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    face_label = labels[faces[:, 0]]
    best = np.bincount(face_label).argmax()
    keep = faces[face_label == best]
    used = np.unique(keep)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[keep].astype(np.int32)


def is_watertight(faces: np.ndarray) -> bool:
    """Every edge shared by exactly two triangles, shape of faces :math:`(F, 3)`."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(len(faces)) and bool((counts == 2).all())


def close_holes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan every boundary loop to its centroid (the loops marching cubes leaves where a zero set
    leaves its band are a few cells long, so a fan is as good as any triangulation).

    Args:
        vertices: shape :math:`(V, 3)`.
        faces: consistently oriented triangles, shape :math:`(F, 3)`.

    Returns:
        vertices with one centroid per loop appended, shape :math:`(V+L, 3)`; faces with the fans
        appended, shape :math:`(F+B, 3)` (B = boundary edges). Unchanged when there are no holes.
    """
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
    key = np.minimum(directed[:, 0], directed[:, 1]) * (len(vertices) + 1) + np.maximum(directed[:, 0], directed[:, 1])
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    open_edges = directed[counts[inverse] == 1]  # a→b as the triangle traverses it
    if len(open_edges) == 0:
        return vertices, faces
    outgoing: dict[int, list[int]] = {}
    for a, b in open_edges.tolist():
        outgoing.setdefault(a, []).append(b)
    loops: list[list[int]] = []
    for start in list(outgoing):
        while outgoing.get(start):  # walk loops edge by edge; a vertex may start several
            path, position, v = [start], {start: 0}, outgoing[start].pop()
            while outgoing.get(v) is not None:
                if v in position:  # back at a vertex of this walk: cut off the simple loop it closes
                    j = position[v]
                    loops.append(path[j:])
                    for u in path[j + 1 :]:
                        del position[u]
                    path = path[: j + 1]
                    if v == start and j == 0 and not outgoing.get(v):
                        break
                else:
                    position[v] = len(path)
                    path.append(v)
                if not outgoing[v]:
                    break  # an open chain (non-manifold boundary): left as it is
                v = outgoing[v].pop()
    new_vertices, fans = [], []
    for loop in loops:
        if len(loop) < 3:
            continue
        centre = len(vertices) + len(new_vertices)
        new_vertices.append(vertices[loop].mean(0))
        loop_arr = np.asarray(loop)
        # the triangle traverses a→b, so the fan traverses b→a
        fans.append(np.stack([np.roll(loop_arr, -1), loop_arr, np.full_like(loop_arr, centre)], 1))
    if not fans:
        return vertices, faces
    verts = np.concatenate([vertices, np.asarray(new_vertices, dtype=vertices.dtype)], 0)
    return verts, np.concatenate([faces, np.concatenate(fans).astype(faces.dtype)], 0)
