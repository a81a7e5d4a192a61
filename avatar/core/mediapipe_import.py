"""Import MediaPipe without paying for matplotlib.

``mediapipe/__init__`` imports ``mediapipe.python.solutions.drawing_utils``, whose first line imports
``matplotlib.pyplot`` for a plotting helper we never call: about half of MediaPipe's 0.9 s import, paid
by every ``avatar fit``, ``track`` and ``listen``. :func:`import_mediapipe` lends that import a lazy
stand-in module for the duration of MediaPipe's import; the stand-in imports the real pyplot on first
use, so nothing changes for code that does plot.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
import warnings

_LOCK = threading.Lock()


class _LazyModule(types.ModuleType):
    """A module that imports the real one (by its name) on first attribute access."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, name)


def import_mediapipe() -> types.ModuleType:
    """``import mediapipe`` (quiet C++ logs and protobuf notices), with ``matplotlib.pyplot`` deferred until
    someone uses it."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ info logs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # protobuf's deprecation notice, raised inside MediaPipe 0.10.14's solutions on every process() call
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning)
    with _LOCK:
        if "mediapipe" in sys.modules:
            return sys.modules["mediapipe"]
        stand_ins = {name: _LazyModule(name) for name in ("matplotlib", "matplotlib.pyplot") if name not in sys.modules}
        if len(stand_ins) == 2:  # `import matplotlib.pyplot as plt` reads the attribute of the package first
            stand_ins["matplotlib"].pyplot = stand_ins["matplotlib.pyplot"]
        sys.modules.update(stand_ins)
        try:
            import mediapipe
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return mediapipe
