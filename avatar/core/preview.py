"""Novel views of an avatar bundle for the ``preview.png`` of fits, generations and edits.

The head is seen at yaw −40°, 0°, +40° with a neutral expression (:data:`VIEW_YAWS`) and, as a second
expression the photo or the prompt did not show, smiling with the mouth slightly open
(:data:`PREVIEW_EXPRESSION`), under the default studio light on white.
"""

from __future__ import annotations

import numpy as np
import torch

from avatar.core.bundle import AvatarBundle
from avatar.core.colour import encode_rgba, srgb_to_linear
from avatar.core.expressions import weights_from_mapping

#: The second expression of the previews' novel views.
PREVIEW_EXPRESSION = {
    "mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.4, "cheekSquint_R": 0.4, "jawOpen": 0.2,
    "eyeSquint_L": 0.2, "eyeSquint_R": 0.2, "browOuterUp_L": 0.3, "browOuterUp_R": 0.3,
}  # fmt: skip
#: Yaws (degrees) of the novel views.
VIEW_YAWS = (-40.0, 0.0, 40.0)
BACKGROUND = (1.0, 1.0, 1.0)
#: Side of each preview panel of a generated avatar, in pixels.
PREVIEW_PANEL = 224


def preview_weights() -> torch.Tensor:
    """:data:`PREVIEW_EXPRESSION` as 53 weights, shape :math:`(1, 53)`."""
    return torch.from_numpy(weights_from_mapping(PREVIEW_EXPRESSION))[None]


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
    vertices, faces, uv, uv_faces = bundle.render_mesh(vertices)  # the hair, if any, too
    out = dr.render_mesh(vertices, faces, uv, uv_faces, srgb_to_linear(bundle.render_texture())[None], camera,
                         dr.default_sh(), antialias=False)
    return list(dr.to_uint8_image(encode_rgba(out.rgba), BACKGROUND))


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
    rows = []
    frame = bundles[0].vertices
    with torch.no_grad():
        for bundle in bundles:
            poses, yaws = [bundle.vertices] * len(VIEW_YAWS), list(VIEW_YAWS)
            if smile and len(bundles) == 1:
                weights = preview_weights()[0]
                poses.append(bundle.vertices + (weights @ bundle.expression_deltas.reshape(len(weights), -1)).reshape(-1, 3))
                yaws.append(0.0)
            rows.append(np.concatenate(render_views(torch.stack(poses), bundle, frame, yaws, panel), 1))
    return np.concatenate(rows, 0)
