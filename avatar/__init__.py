"""avatar: one photo to an animatable 3D head that listens.

Stages, one folder each: ``avatar.morphable`` (shape), ``avatar.fitting`` (photo → codes),
``renderers`` (pixels), ``drivers`` (time)::

    import avatar
    a = avatar.fit("photo.jpg")                      # or avatar.load("photo.avatar")
    b = avatar.generate("a woman with a round face and a small nose", seed=1)
    frame = a.render(expression={"jawOpen": 0.4}, yaw=0.3, size=512)
    stream = avatar.ListenerStream(a, seed=0)          # codes = stream.push(audio=chunk, frame=image)

The public functions are imported on first use, so ``import avatar`` stays light.
"""

__version__ = "0.1.0"

_LAZY = {
    "fit": "avatar.api",
    "load": "avatar.api",
    "Avatar": "avatar.api",
    "generate": "avatar.generator.command",
    "ListenerStream": "drivers.listener.stream",
}
__all__ = ["Avatar", "ListenerStream", "fit", "generate", "load", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avatar' has no attribute {name!r}")
