"""The layering of docs/ARCHITECTURE.md holds in the code: who may import whom, research outside the runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("avatar", "drivers", "renderers")

#: Layer of each runtime module, by longest matching prefix (docs/ARCHITECTURE.md, "Layers").
LAYERS = {
    "renderers": "renderers",
    "avatar.core": "core",
    "avatar.morphable": "model",
    "drivers.media": "media",
    "drivers.audio": "media",
    "drivers.face_mesh": "media",
    "avatar.fitting": "stage",
    "avatar.generator": "stage",
    "drivers.tracking": "stage",
    "drivers.listener": "stage",
    "drivers.perception": "stage",
    "avatar.api": "surface",
    "avatar.batch": "surface",
    "avatar.cli": "commands",
    "avatar.commands": "commands",
    "avatar.__main__": "commands",
}
#: What each layer may import besides itself.
ALLOWED = {
    "renderers": set(),
    "core": {"renderers"},
    "model": {"renderers", "core"},
    "media": {"core"},
    "stage": {"renderers", "core", "model", "media"},
    "surface": {"renderers", "core", "model", "media", "stage"},
    "commands": {"renderers", "core", "model", "media", "stage", "surface"},
}
#: Stage → stage imports that are data flow, not sideways reach: the listener's speaker cues are the
#: speaker's tracked face, and perception reads faces the tracker fitted.
STAGE_EDGES = {("drivers.listener", "drivers.tracking"), ("drivers.perception", "drivers.tracking")}
STAGES = ("avatar.fitting", "avatar.generator", "drivers.tracking", "drivers.listener", "drivers.perception")


def _prefix(module: str, table) -> str | None:
    best = None
    for key in table:
        if (module == key or module.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    return best


def _modules() -> dict[str, Path]:
    out = {}
    for package in RUNTIME:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _violations() -> list[str]:
    modules = _modules()
    problems = []
    for module, path in sorted(modules.items()):
        if module in ("avatar", "drivers"):  # the lazy facade and an empty namespace
            continue
        own = _prefix(module, LAYERS)
        assert own is not None, f"{module} is in no layer of docs/ARCHITECTURE.md"
        layer = LAYERS[own]
        for target in _imports(module, path):
            top = target.split(".")[0]
            if top == "research" or target.startswith("scripts"):
                problems.append(f"{module} imports research code {target}")
                continue
            if top not in RUNTIME or target in ("avatar", "avatar.__version__", "drivers"):
                continue
            other = _prefix(target, LAYERS)
            if other is None:
                continue
            if layer == "stage" and LAYERS[other] == "stage":
                mine, theirs = _prefix(module, STAGES), _prefix(target, STAGES)
                if mine != theirs and (mine, theirs) not in STAGE_EDGES:
                    problems.append(f"stage {mine} reaches sideways into {target} ({module})")
                continue
            if LAYERS[other] != layer and LAYERS[other] not in ALLOWED[layer]:
                problems.append(f"{layer} module {module} imports {LAYERS[other]} module {target}")
    return problems


def test_every_import_follows_the_layers():
    assert _violations() == []


def test_runtime_imports_no_research_and_every_module_imports(tmp_path):
    """Import every runtime module in a fresh interpreter: none fails, none loads research code."""
    names = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'research' or m.startswith('research.'))\n"
        "assert not loaded, loaded\n"
    )
    # research/ is importable here (pytest puts scripts/ on the path): a runtime import of it would succeed
    env_path = str(ROOT / "scripts")
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r})\n" + code],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_no_research_file_in_the_runtime_packages():
    names = [p.relative_to(ROOT).as_posix() for package in RUNTIME for p in (ROOT / package).rglob("*.py")]
    assert [n for n in names if any(w in Path(n).name for w in ("train", "eval", "data_build", "dataset"))] == []


def test_no_docstring_cites_a_file_outside_the_repository():
    for package in RUNTIME:
        for path in (ROOT / package).rglob("*.py"):
            assert "DESIGN.md" not in path.read_text(encoding="utf-8"), path


def test_command_modules_are_thin():
    """Argument checks + one call + printing: about 150 lines at most."""
    for path in (ROOT / "avatar" / "commands").glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 160, path


def test_shared_import_rules(shared):
    """The house's own checker (../shared/tools/import_rules.py), when the shared folder is there."""
    tool = shared / "tools" / "import_rules.py"
    if not tool.is_file():
        pytest.skip("../shared/tools/import_rules.py is absent")
    result = subprocess.run([sys.executable, str(tool), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
