"""Codec-avatar generator: text → identity codes (latent diffusion over ``[z_geo, z_tex]``).

Stages, one module each: :mod:`~avatar.generator.attributes` (attributes measured on meshes and
textures), :mod:`~avatar.generator.captions` (checkable captions and prompt parsing),
:mod:`~avatar.generator.text` (MiniLM sentence embeddings, offline), :mod:`~avatar.generator.model`
(the denoiser), :mod:`~avatar.generator.pipeline` (sampling, editing), :mod:`~avatar.generator.prior`
(the prior ``avatar fit`` can regularise codes with), :mod:`~avatar.commands.generate` (``avatar
generate`` / ``avatar edit`` and :func:`generate`).
"""
