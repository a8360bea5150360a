"""The package's imports flow one way: no circles between modules, and only engine/ builds a `YOLO`.

Both module-level and function-level `import`/`from` statements count: a lazy import still ties two
modules together. The root package is the public facade (`ultralytics.YOLO` resolves lazily), so
`from ultralytics import YOLO` counts as importing engine/model.py and `import ultralytics` for
`__version__` counts as importing nothing above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ultralytics

ROOT = Path(ultralytics.__file__).parent
YOLO_HOME = "ultralytics.engine.model"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("ultralytics", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                if base == "ultralytics" and alias.name == "YOLO":
                    targets.append(YOLO_HOME)
                else:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    graph["ultralytics"] = set()  # the facade: its lazy `YOLO` is counted at the importer, above
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walk_sees_lazy_imports():
    """The walker itself: a function-level import (model.py's lazy exporter import) is an edge."""
    graph = _graph()
    assert "ultralytics.engine.exporter" in graph["ultralytics.engine.model"]
    assert "ultralytics.engine.model" in graph["ultralytics.engine.cli"]


def test_no_import_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_engine_imports_yolo():
    offenders = sorted(
        name for name, deps in _graph().items() if YOLO_HOME in deps and not name.startswith("ultralytics.engine.")
    )
    assert offenders == [], f"modules outside engine/ importing YOLO: {offenders}"


UPPER_LAYERS = ("ultralytics.engine", "ultralytics.nn", "ultralytics.export", "ultralytics.trt", "ultralytics.gpu")


def test_utils_imports_no_upper_layer():
    """utils/ sits at the bottom: it never reaches up into engine/, nn/, export/, trt/ or gpu/.

    (`utils/ops.scale_boxes`, upstream's path, inverts the letterbox through data/augment's one geometry.)"""
    above = {
        name: sorted(d for d in deps if d.startswith(UPPER_LAYERS) or d.startswith("ultralytics.cfg"))
        for name, deps in _graph().items()
        if name.startswith("ultralytics.utils")
    }
    assert {k: v for k, v in above.items() if v} == {}


def test_trt_and_gpu_stay_below_export_nn_and_engine():
    """trt/ is the TensorRT version shim and gpu/ the CUDA pieces: neither reaches up into the layers that use them."""
    above = ("ultralytics.engine", "ultralytics.nn", "ultralytics.export")
    offenders = {
        name: sorted(d for d in deps if d.startswith(above))
        for name, deps in _graph().items()
        if name.startswith(("ultralytics.trt", "ultralytics.gpu"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
