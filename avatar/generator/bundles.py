"""Generated and edited identities as ``.avatar`` bundles (the same format as ``avatar fit``).

:func:`bundle_from_head` assembles an :class:`~avatar.bundle.AvatarBundle` from a head model and
codes — the baked neutral mesh, the 53 morph targets, the atlas UVs and parts — exactly as
:func:`avatar.fitting.pipeline.to_bundle` does for a fit. :func:`preview_views` renders the
``preview.png`` of a generated avatar: the head at yaw −40°, 0°, +40°, neutral, and frontal smiling
with the mouth slightly open (one row of four panels); for an edit two rows of three, before | after.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar.bundle import AvatarBundle

#: Side of each preview panel in pixels.
PREVIEW_PANEL = 224


def bundle_from_head(head, z_geo: torch.Tensor, z_tex: torch.Tensor, texture: torch.Tensor, meta: dict,
                     expression: torch.Tensor | None = None, head_rotation: torch.Tensor | None = None,
                     head_translation: torch.Tensor | None = None, sh_light: torch.Tensor | None = None,
                     preview: np.ndarray | None = None, report: dict | None = None) -> AvatarBundle:
    """An :class:`AvatarBundle` for one identity of a :class:`~avatar.fitting.head.HeadModel`.

    Args:
        head: the head model.
        z_geo: identity code, shape :math:`(K,)`.
        z_tex: texture code, shape :math:`(T,)`.
        texture: albedo atlas, row 0 at the top, shape :math:`(S, S, 3)` in [0, 1].
        meta: extra ``avatar.json`` fields (``created_by``, ...); the head model is added.
        expression: the bundle's expression, shape :math:`(53,)` (default neutral).
        head_rotation: axis-angle, shape :math:`(3,)` (default zero).
        head_translation: cm, shape :math:`(3,)` (default zero).
        sh_light: lighting, shape :math:`(9, 1)`, or ``None``.
        preview: ``preview.png`` image, shape :math:`(H, W, 3)` uint8, or ``None``.
        report: ``report.json`` document, or ``None``.

    Returns:
        the bundle (neutral mesh baked from ``z_geo``; morph targets = the head's expression basis).
    """
    z_geo = torch.as_tensor(z_geo, dtype=torch.float32).reshape(-1)
    with torch.no_grad():
        neutral, deltas = head.bake(z_geo)
    names = head.expression_names
    return AvatarBundle(
        z_geo=z_geo.clone(),
        z_tex=torch.as_tensor(z_tex, dtype=torch.float32).reshape(-1).clone(),
        expression=torch.zeros(len(names)) if expression is None else expression.clone(),
        head_rotation=torch.zeros(3) if head_rotation is None else head_rotation.clone(),
        head_translation=torch.zeros(3) if head_translation is None else head_translation.clone(),
        vertices=neutral.clone(),
        expression_deltas=deltas.clone(),
        faces=head.faces.clone(),
        uv=torch.from_numpy(head.atlas.uv.copy()),
        uv_faces=torch.from_numpy(head.atlas.uv_faces.copy()),
        face_parts=torch.from_numpy(head.face_parts.astype(np.int16)),
        part_names=head.part_names,
        expression_names=names,
        neck_pivot=head.neck_pivot.clone(),
        texture=texture.detach().clone(),
        sh_light=sh_light,
        meta={**meta, "head_model": {"source": head.source, **head.info}},
        preview=preview,
        report=report,
    )


def render_views(vertices: torch.Tensor, bundle: AvatarBundle, frame: torch.Tensor, yaws, panel: int) -> list[np.ndarray]:
    """The bundle's textured export mesh, posed by each row of ``vertices``, seen from one yaw each (the
    fit preview's camera and light, white background), in one batched render.

    Args:
        vertices: shape :math:`(N, V, 3)`.
        bundle: gives faces, uvs and the texture.
        frame: vertices the cameras frame, shape :math:`(V, 3)`.
        yaws: N view yaws in degrees.
        panel: pixels per view.

    Returns:
        N uint8 images :math:`(panel, panel, 3)`.
    """
    import renderers as dr
    from avatar.fitting.preview import BACKGROUND

    keep = bundle.export_face_mask()
    faces, uv_faces = bundle.faces[keep], bundle.uv_faces[keep]
    used = torch.zeros(frame.shape[0], dtype=torch.bool)
    used[faces.reshape(-1).long()] = True  # the vertices the export mesh uses (a mask: no sort)
    framed = frame[used]
    cameras = [dr.frame_points(framed, (panel, panel), yaw_deg=yaw, fill=0.85) for yaw in yaws]
    camera = dr.Camera(torch.cat([c.view for c in cameras]), torch.cat([c.projection for c in cameras]),
                       cameras[0].image_size)
    # no silhouette antialiasing: invisible at preview size on white, and its edge topology costs ~0.3 s
    # of the 5 s `avatar generate` budget in a fresh process
    out = dr.render_mesh(vertices, faces, bundle.uv, uv_faces, bundle.texture[None], camera, dr.default_sh(),
                         antialias=False)
    return list(dr.to_uint8_image(out.rgba, BACKGROUND))


def preview_views(bundles: list[AvatarBundle], panel: int = PREVIEW_PANEL, smile: bool = True) -> np.ndarray:
    """Preview rows: each bundle at yaw −40°, 0°, +40° (neutral); with ``smile`` and one bundle a fourth
    panel, frontal and smiling with the mouth slightly open.

    Args:
        bundles: one bundle (generate) or two (edit: before, after).
        panel: pixels per view.
        smile: add the smiling panel (one bundle only).

    Returns:
        the image, shape :math:`(R·panel, C·panel, 3)` uint8 (R bundles; C = 4 with the smile, else 3).
    """
    from avatar.fitting.preview import PREVIEW_EXPRESSION, VIEW_YAWS
    from avatar.morphable.codes import expression_dict_to_weights

    rows = []
    frame = bundles[0].vertices
    with torch.no_grad():
        for bundle in bundles:
            poses, yaws = [bundle.vertices] * len(VIEW_YAWS), list(VIEW_YAWS)
            if smile and len(bundles) == 1:
                weights = expression_dict_to_weights(PREVIEW_EXPRESSION, bundle.expression_names)[0]
                poses.append(bundle.vertices + (weights @ bundle.expression_deltas.reshape(len(weights), -1)).reshape(-1, 3))
                yaws.append(0.0)
            rows.append(np.concatenate(render_views(torch.stack(poses), bundle, frame, yaws, panel), 1))
    return np.concatenate(rows, 0)
