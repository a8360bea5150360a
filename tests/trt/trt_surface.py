"""Which `tensorrt` attributes our code uses, and under which capability, found by reading the source.

A reference to an API that a TensorRT release removed fails only on that release, usually on a
user's machine. This test helper (it ships with the tests, not the package) scans our TensorRT code (an AST walk, no import) and lists every use
together with the capability checks that guard it, so a test can check each use against the
recorded API of every version in which the guarding branch runs.

What counts as a use:
- `trt.X` (module attribute) and `trt.X.y` (member of class or enum X), also through `self.trt`;
- `<receiver>.y` where the receiver's name says what TensorRT object it holds (see RECEIVERS):
  our code binds TensorRT objects to these names, e.g. `engine.get_tensor_name` is `ICudaEngine.get_tensor_name`.

What counts as a guard (a capability, never a version number):
- `if hasattr(<trt.X | receiver | trt>, "name"):` — the body runs where it exists, `else:` where it does not;
  `not`, `and` and `or` combine as expected, and so do conditional expressions;
- an `if` without `else` whose body ends in `return`/`raise` guards the rest of the block with its negation;
- `REQUIRES = "Class.member"` (or `"attr"` for a module attribute) as a module-level constant or a
  class attribute: the rest of that module or class runs only where it exists (the caller or the
  constructor must make sure of it).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ultralytics

PACKAGE = Path(ultralytics.__file__).resolve().parent  # the `ultralytics` folder under test

# Variable names that hold TensorRT objects in our code, and the class each one is.
RECEIVERS = {
    "builder": "Builder",
    "config": "IBuilderConfig",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "profile": "IOptimizationProfile",
    "timing_cache": "ITimingCache",
}
MODULE_NAMES = ("trt",)  # names the `tensorrt` module is bound to


# export/ modules that drive TensorRT (the shim itself is all of trt/)
TRT_EXPORT_FILES = ("tensorrt.py", "calibrator.py", "network_builder.py", "network_route.py")


def scanned_files() -> list[Path]:
    """Every package file that talks to TensorRT."""
    files = sorted((PACKAGE / "trt").glob("*.py"))
    files += [PACKAGE / "export" / name for name in TRT_EXPORT_FILES]
    files += [PACKAGE / "nn" / "backends" / "tensorrt.py"]
    return [f for f in files if f.is_file()]


Guard = tuple[str, bool]  # ("Class.member" or "attr", must exist?)


@dataclass(frozen=True)
class Use:
    path: str  # "Class.member" or a module attribute "X"
    file: str
    line: int
    guards: tuple[Guard, ...] = ()

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _resolve(node: ast.expr) -> str | None:
    """What an expression denotes: "" for the module, "X" for class/enum X, None when unknown."""
    name = _last_name(node)
    if name in MODULE_NAMES:
        return ""
    if isinstance(node, ast.Attribute) and _last_name(node.value) in MODULE_NAMES:
        return node.attr
    if name is not None and name.lstrip("_") in RECEIVERS:
        return RECEIVERS[name.lstrip("_")]
    return None


def _join(owner: str, member: str) -> str:
    return f"{owner}.{member}" if owner else member


@dataclass
class _Condition:
    when_true: tuple[Guard, ...] = ()
    when_false: tuple[Guard, ...] = ()


def _condition(test: ast.expr) -> _Condition:
    """The guards a test establishes in its true and false branches (empty when it is no capability check)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _condition(test.operand)
        return _Condition(inner.when_false, inner.when_true)
    if isinstance(test, ast.BoolOp):
        parts = [_condition(v) for v in test.values]
        if isinstance(test.op, ast.And):  # all true in the body; in else, only a lone part is known false
            return _Condition(sum((p.when_true for p in parts), ()), parts[0].when_false if len(parts) == 1 else ())
        return _Condition(parts[0].when_true if len(parts) == 1 else (), sum((p.when_false for p in parts), ()))
    if (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "hasattr"
        and len(test.args) == 2
        and isinstance(test.args[1], ast.Constant)
        and isinstance(test.args[1].value, str)
    ):
        owner = _resolve(test.args[0])
        if owner is not None:
            path = _join(owner, test.args[1].value)
            return _Condition(((path, True),), ((path, False),))
    return _Condition()


def _ends_block(stmts: list[ast.stmt]) -> bool:
    return bool(stmts) and isinstance(stmts[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break))


def _declared_requirement(stmt: ast.AST) -> str | None:
    """The "Class.member" of a `REQUIRES = "Class.member"` statement, else None."""
    if (
        isinstance(stmt, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "REQUIRES" for t in stmt.targets)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    ):
        return stmt.value.value
    return None


class _Scanner:
    def __init__(self, file: str) -> None:
        self.file = file
        self.uses: list[Use] = []

    def block(self, stmts: Iterable[ast.AST], guards: tuple[Guard, ...]) -> None:
        for stmt in stmts:
            declared = _declared_requirement(stmt)
            if declared:
                guards = guards + ((declared, True),)
            self.node(stmt, guards)
            if isinstance(stmt, ast.If) and not stmt.orelse and _ends_block(stmt.body):
                guards = guards + _condition(stmt.test).when_false

    def node(self, node: ast.AST, guards: tuple[Guard, ...]) -> None:
        if isinstance(node, (ast.If, ast.IfExp)):
            cond = _condition(node.test)
            self.node(node.test, guards)
            for branch, extra in ((node.body, cond.when_true), (node.orelse, cond.when_false)):
                self.block(branch if isinstance(branch, list) else [branch], guards + extra)
            return
        if isinstance(node, ast.Attribute):
            owner = _resolve(node.value)
            if owner is not None:
                self.uses.append(Use(_join(owner, node.attr), self.file, node.lineno, guards))
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self.block(value, guards)
                else:
                    for item in value:
                        if isinstance(item, ast.AST):
                            self.node(item, guards)
            elif isinstance(value, ast.AST):
                self.node(value, guards)


def scan_source(source: str, file: str = "<string>") -> list[Use]:
    """Every TensorRT attribute use in `source`, with its guards."""
    scanner = _Scanner(file)
    scanner.block(ast.parse(source, filename=file).body, ())
    return scanner.uses


def scan_package() -> list[Use]:
    uses: list[Use] = []
    for f in scanned_files():
        uses += scan_source(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE.parent)))
    return uses


class ApiSurface:
    """One TensorRT version's recorded API (an entry of ../shared/trt_api/trt_api_members_index.json)."""

    def __init__(self, version: str, entry: dict) -> None:
        self.version = version
        self.classes = {k: set(v) for k, v in entry.get("classes", {}).items()}
        self.module_attrs = set(self.classes) | set(entry.get("functions", [])) | set(entry.get("constants", []))
        self.module_attrs |= set(entry.get("module_attrs", []))

    def has(self, path: str) -> bool:
        if "." not in path:
            return path in self.module_attrs
        owner, member = path.split(".", 1)
        return member in self.classes.get(owner, ())

    def reaches(self, use: Use) -> bool:
        """True when every guard of `use` holds in this version, i.e. the code path runs here."""
        return all(self.has(path) == must_exist for path, must_exist in use.guards)


def load_surfaces(index_file: str | Path) -> dict[str, ApiSurface]:
    data = json.loads(Path(index_file).read_text(encoding="utf-8"))
    return {version: ApiSurface(version, entry) for version, entry in data.items()}


def missing_uses(uses: Iterable[Use], surface: ApiSurface) -> list[str]:
    """The uses that this version's code paths reach but its API lacks, as readable lines."""
    return [
        f"{u.where()}: tensorrt {u.path} is used where TensorRT {surface.version} runs that code, but it does not exist there"
        + (f" (guards: {', '.join(('' if ok else 'not ') + p for p, ok in u.guards)})" if u.guards else "")
        for u in uses
        if surface.reaches(u) and not surface.has(u.path)
    ]
