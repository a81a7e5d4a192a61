"""avatar: one photo to an animatable 3D head that listens.

Stages, one folder each: ``avatar.morphable`` (shape), ``avatar.fitting`` (photo → codes),
``renderers`` (pixels), ``drivers`` (time).
"""

__version__ = "0.1.0"
