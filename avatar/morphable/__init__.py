"""Implicit SDF morphable face model (SSIF-style) and the ICT FaceKit teacher it learns from.

Public entry point: :class:`avatar.morphable.api.FaceModel` (``FaceModel.load()``, ``.sdf``,
``.mesh(mode="template" | "narrow_band")``, ``.bake``, ``.texture``). Pieces:

- ``ict`` / ``template`` — the ICT FaceKit Light teacher (../shared) and the small shipped template;
- ``model`` / ``grid`` — SDF(x | z_geo, expr) = canonical grid SDF at the inverse of a deformation field
  linear in ``[z_geo, expr]``; sparse multi-resolution grids;
- ``extract`` — narrow-band marching cubes and template mode; ``texture`` — parametric skin model and
  the z_tex → UV albedo decoder;
- ``dataset`` / ``teacher`` / ``training`` / ``io`` — data, distillation, training stages, weights on disk.
"""
