"""avatar: one photo to an animatable 3D head that listens.

The public surface (:mod:`avatar.api`)::

    import avatar
    a = avatar.fit("photo.jpg")                      # or avatar.load("photo.avatar")
    b = avatar.generate("a woman with a round face and a small nose", seed=1)
    c = avatar.edit(b, "a longer nose")
    frame = a.render(expression={"jawOpen": 0.4, "mouthSmileLeft": 0.6}, yaw=0.3, size=512)
    motion = avatar.track("clip.mp4").to_motion()    # 53 weights + head pose at 30 fps
    avatar.listen("speaker.mp4", out="listener.mp4", avatar=a)
    stream = avatar.ListenerStream(a, seed=0)          # live: codes = stream.push(audio=chunk, frame=image)

The layers (docs/ARCHITECTURE.md): ``avatar.core`` (types, formats, geometry) → ``avatar.morphable`` (the
face model) → stages (``avatar.fitting``, ``avatar.generator``, ``drivers.tracking``, ``drivers.listener``)
→ this surface → the CLI (``avatar.cli``, ``avatar.commands``); ``renderers`` draws for all of them.
The public functions are imported on first use, so ``import avatar`` stays light.
"""

__version__ = "0.1.0"

_LAZY = {
    "Avatar": "avatar.core.avatar",
    "default_avatar": "avatar.api",
    "edit": "avatar.api",
    "fit": "avatar.api",
    "generate": "avatar.api",
    "listen": "avatar.api",
    "load": "avatar.api",
    "perceive": "avatar.api",
    "PerceptionStream": "drivers.perception.stream",
    "track": "avatar.api",
    "ListenerStream": "drivers.listener.stream",
    "Motion": "avatar.core.motion",
}
__all__ = ["Avatar", "ListenerStream", "Motion", "default_avatar", "edit", "fit", "generate", "listen", "load",
           "track", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avatar' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
