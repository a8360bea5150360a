"""Generate a `tensorrt` module surface from a recorded API JSON (../shared/trt_api).

The surface is the contract: exactly the recorded classes, methods, properties, enum members and
module-level names exist, with the recorded pybind11 signatures enforced at call time. Behaviour is
plugged in from implementation classes (see `registry`); recorded members with no behaviour raise
NotImplementedError so a test never silently relies on something the stand-in does not model.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import inspect
import json
import os
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TRT_API_DIR_ENV = "ULTRALYTICS_SHARED"


def trt_api_dir() -> Path:
    """Where the recorded surfaces live: <repo>/../shared/trt_api unless ULTRALYTICS_SHARED says otherwise."""
    repo = Path(__file__).resolve().parents[2]
    shared = Path(os.environ.get(TRT_API_DIR_ENV, repo.parent / "shared"))
    return shared / "trt_api"


@functools.cache
def load_api(version: str) -> dict:
    """The recorded surface of `version` (cached: treat it as read-only)."""
    path = trt_api_dir() / f"trt_api_{version}.json"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("trt_api_") for p in trt_api_dir().glob("trt_api_*.json"))
        raise ValueError(f"no recorded TensorRT surface for version {version!r} at {path}; known: {known}")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------------
# pybind11 signature strings → parameters


@dataclass
class Param:
    name: str
    type: str | None  # None for Python-level functions without annotations
    has_default: bool
    kind: str = "normal"  # "normal", "varargs", "varkw"

    @property
    def positional_only(self) -> bool:
        # pybind11 names unnamed arguments arg0, arg1...; they cannot be passed by keyword.
        return self.name.startswith("arg") and self.name[3:].isdigit()


@dataclass
class Signature:
    text: str
    params: list[Param] = field(default_factory=list)


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return [p.strip() for p in parts]


@functools.cache
def parse_signature(text: str) -> Signature:
    """Parse 'name(self: T, x: int = 0) -> R' (pybind11 docstring form) into parameters."""
    start = text.index("(")
    depth, end = 0, start
    for i in range(start, len(text)):
        if text[i] in "([<{":
            depth += 1
        elif text[i] in ")]>}":
            depth -= 1
            if depth == 0:
                end = i
                break
    sig = Signature(text)
    for raw in _split_top_level(text[start + 1 : end]):
        if raw in ("/", "*"):
            continue
        kind = "normal"
        if raw.startswith("**"):
            kind, raw = "varkw", raw[2:]
        elif raw.startswith("*"):
            kind, raw = "varargs", raw[1:]
        name_type, _, default = raw.partition("=")
        name, _, type_text = name_type.partition(":")
        sig.params.append(Param(name.strip(), type_text.strip() or None, bool(default.strip()), kind))
    return sig


# --------------------------------------------------------------------------------------------------
# argument matching


class _NoMatch(Exception):
    pass


def _strip_module(type_text: str) -> str:
    return type_text.replace("tensorrt.tensorrt.", "")


def _is_buffer(value: Any) -> bool:
    try:
        memoryview(value)
        return True
    except TypeError:
        return False


class TypeChecker:
    """A light version of pybind11's argument casters: enough to reject obviously wrong calls."""

    def __init__(self, classes: dict[str, type]):
        self.classes = classes

    def fits(self, type_text: str | None, value: Any) -> bool:
        if type_text is None:
            return True
        t = type_text.strip()
        if t in ("int", "typing.SupportsInt"):
            return not isinstance(value, (str, bytes, float)) and hasattr(value, "__index__")
        if t in ("float", "typing.SupportsFloat"):
            return not isinstance(value, (str, bytes)) and hasattr(value, "__float__")
        if t == "bool":
            # pybind11 converts anything with nb_bool (ints, numpy bools, None) but not str or sequences.
            return value is None or isinstance(value, (bool, int, float, np.generic))
        if t == "str":
            return isinstance(value, (str, bytes))
        if t in ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer"):
            return _is_buffer(value)
        if t == "tuple":
            return isinstance(value, tuple)
        if t == "list":
            return isinstance(value, list)
        if t.startswith(("List[", "list[", "collections.abc.Sequence[", "Sequence[", "typing.Sequence[")):
            return isinstance(value, (list, tuple)) or type(value).__name__ == "Dims"
        name = _strip_module(t)
        if t.startswith("tensorrt.tensorrt.") and name in self.classes:
            cls = self.classes[name]
            if getattr(cls, "_is_enum", False):
                return isinstance(value, cls)
            if name in ("Dims", "Dims2", "Dims3", "Dims4", "DimsHW", "Permutation"):
                return isinstance(value, self.classes["Dims"]) or (
                    isinstance(value, (list, tuple)) and all(hasattr(v, "__index__") for v in value)
                )
            if name == "Weights":
                return isinstance(value, (cls, np.ndarray)) or value is None
            # Raw-pointer arguments accept None in pybind11.
            return value is None or isinstance(value, cls)
        return True  # C++-only names (nvinfer1::...), capsules, object: accept

    def bind(self, sig: Signature, args: tuple, kwargs: dict) -> None:
        """Raise _NoMatch unless (args, kwargs) fit `sig` (self already stripped from args)."""
        params = sig.params[1:] if sig.params and sig.params[0].name in ("self", "this") else sig.params
        if any(p.kind != "normal" for p in params):
            return
        if len(args) > len(params):
            raise _NoMatch
        remaining = dict(kwargs)
        for i, p in enumerate(params):
            if i < len(args):
                if p.name in remaining:
                    raise _NoMatch
                value = args[i]
            elif p.name in remaining and not p.positional_only:
                value = remaining.pop(p.name)
            elif p.has_default:
                continue
            else:
                raise _NoMatch
            if not self.fits(p.type, value):
                raise _NoMatch
        if remaining:
            raise _NoMatch


def _describe_call(args: tuple, kwargs: dict) -> str:
    parts = [type(a).__name__ for a in args] + [f"{k}={type(v).__name__}" for k, v in kwargs.items()]
    return ", ".join(parts)


def checked(
    owner: str, member: str, signatures: list[Signature], impl: Callable, checker: TypeChecker, is_method: bool
) -> Callable:
    """Wrap `impl` so a call fitting none of `signatures` raises TypeError like pybind11 does."""

    def call(*args, **kwargs):
        user_args = args[1:] if is_method else args
        if signatures:
            for sig in signatures:
                try:
                    checker.bind(sig, user_args, kwargs)
                    break
                except _NoMatch:
                    continue
            else:
                listing = "\n".join(f"    {i + 1}. {s.text}" for i, s in enumerate(signatures))
                raise TypeError(
                    f"{member}(): incompatible function arguments. The following argument types are supported:\n"
                    f"{listing}\n\nInvoked with: ({_describe_call(user_args, kwargs)})"
                )
        return impl(*args, **kwargs)

    call.__name__ = member
    call.__qualname__ = f"{owner}.{member}"
    call.__doc__ = "\n".join(s.text for s in signatures) or None
    call.__wrapped__ = impl
    return call


def _not_modelled(owner: str, member: str, version: str) -> Callable:
    def call(*args, **kwargs):
        raise NotImplementedError(
            f"tensorrt stand-in {version}: {owner}.{member} exists in real TensorRT {version} but the "
            f"stand-in does not model it; add behaviour in tests/trt_standin if a test needs it"
        )

    call.not_modelled = True
    return call


# --------------------------------------------------------------------------------------------------
# enums


_ITEMSIZE_BITS = {"FLOAT": 32, "HALF": 16, "BF16": 16, "INT8": 8, "UINT8": 8, "BOOL": 8, "FP8": 8, "E8M0": 8}
_ITEMSIZE_BITS |= {"INT32": 32, "INT64": 64, "INT4": 4, "FP4": 4}


def _itemsize(member) -> float:
    """DataType.itemsize: bytes per element (sub-byte types give fractions, as in TensorRT)."""
    return _ITEMSIZE_BITS[member._name] / 8 if _ITEMSIZE_BITS[member._name] % 8 else _ITEMSIZE_BITS[member._name] // 8


def _make_enum(name: str, spec: dict, ctx: Any) -> type:
    """A pybind11-style enum: members are instances with .name/.value, int(), hash, ordering."""
    members: dict[str, int] = dict(spec.get("enum_values") or {})
    arithmetic = "__lt__" in spec["methods"]  # py::arithmetic() enums compare with plain ints
    short = name.split(".")[-1]

    def _init(self, value):
        value = int(value)
        for member, v in members.items():
            if v == value:
                object.__setattr__(self, "_name", member)
                break
        else:
            object.__setattr__(self, "_name", "???")
        object.__setattr__(self, "_value", value)

    def _eq(self, other):
        if isinstance(other, type(self)):
            return self._value == other._value
        if arithmetic and isinstance(other, int) and not isinstance(other, bool):
            return self._value == other
        return False

    def _cmp(op):
        def compare(self, other):
            if not arithmetic and not isinstance(other, type(self)):
                return NotImplemented
            return op(self._value, int(other))

        return compare

    def _setattr(self, key, value):
        raise AttributeError(f"'{short}' object attribute '{key}' is read-only")

    ns: dict[str, Any] = {
        "_is_enum": True,
        "_ctx": ctx,
        "__init__": _init,
        "__eq__": _eq,
        "__ne__": lambda self, other: not _eq(self, other),
        "__hash__": lambda self: hash(self._value),
        "__int__": lambda self: self._value,
        "__index__": lambda self: self._value,
        "__repr__": lambda self: f"<{short}.{self._name}: {self._value}>",
        "__str__": lambda self: f"{short}.{self._name}",
        "__getstate__": lambda self: self._value,
        "__setstate__": lambda self, state: _init(self, state),
        "__setattr__": _setattr,
        "__reduce__": lambda self: (type(self), (self._value,)),
        "name": property(lambda self: self._name),
        "value": property(lambda self: self._value),
    }
    if "itemsize" in spec["properties"]:
        ns["itemsize"] = property(_itemsize)
    if arithmetic:
        import operator

        for dunder, op in (
            ("__lt__", operator.lt),
            ("__le__", operator.le),
            ("__gt__", operator.gt),
            ("__ge__", operator.ge),
        ):
            ns[dunder] = _cmp(op)
    for dunder in ("__and__", "__or__", "__xor__", "__rand__", "__ror__", "__rxor__", "__invert__"):
        if dunder in spec["methods"]:
            import operator

            ns[dunder] = (
                (lambda self: ~self._value)
                if dunder == "__invert__"
                else (lambda f: lambda self, other: f(self._value, int(other)))(
                    getattr(operator, dunder.strip("_r").strip("_") + "_")
                )
            )
    cls = type(short, (), ns)
    cls.__qualname__ = name
    cls.__module__ = "tensorrt.tensorrt"
    for member, value in members.items():
        instance = object.__new__(cls)
        _init(instance, value)
        type.__setattr__(cls, member, instance)
    type.__setattr__(cls, "__members__", {m: getattr(cls, m) for m in members})
    return cls


# --------------------------------------------------------------------------------------------------
# classes


def _recorded_members(spec: dict) -> set[str]:
    names = set(spec["methods"]) | set(spec["properties"]) | set(spec.get("class_attrs", {}))
    names |= set(spec.get("nested_types") or [])
    names |= set(spec.get("enum_members") or [])
    return names


def _make_property(cls_name: str, prop: str, details: dict, impl: Any, version: str) -> property:
    """Recorded property: implemented if the behaviour class has it, else a plain stored value."""
    implemented = getattr(impl, prop, None) if impl is not None else None
    readonly = details.get("readonly", False)
    if isinstance(implemented, property):
        fset = implemented.fset
        if readonly:
            fset = None
        elif fset is None:

            def fset(self, value, _prop=prop):
                self.__dict__.setdefault("_stored", {})[_prop] = value

        return property(implemented.fget, fset)

    def fget(self, _prop=prop):
        stored = self.__dict__.get("_stored", {})
        if _prop in stored:
            return stored[_prop]
        raise NotImplementedError(
            f"tensorrt stand-in {version}: property {cls_name}.{_prop} is recorded but has no modelled value"
        )

    def fset(self, value, _prop=prop):
        self.__dict__.setdefault("_stored", {})[_prop] = value

    fget.not_modelled = True
    return property(fget, None if readonly else fset)


def _guarded_setattr(self, key, value):
    """Real pybind11 objects have no __dict__: assigning an unknown public attribute fails."""
    cls = type(self)
    if key.startswith("_") or getattr(cls, "_user_subclass", True) or isinstance(getattr(cls, key, None), property):
        object.__setattr__(self, key, value)
        return
    raise AttributeError(f"'{cls.__name__}' object has no attribute '{key}'")


def _init_subclass(cls, **kwargs):
    # Classes users derive from (ILogger, IInt8EntropyCalibrator2, IProfiler...) behave like normal
    # Python objects again: their own attributes are theirs. Generated classes carry their own _ctx.
    if "_ctx" not in cls.__dict__:
        cls._user_subclass = True


class Context:
    """What behaviour code needs from the generated module: version, classes, object creation."""

    def __init__(self, version: str, api: dict):
        self.version = version
        self.api = api
        self.classes: dict[str, type] = {}
        self.module: types.ModuleType | None = None

    def has(self, cls_name: str, member: str | None = None) -> bool:
        spec = self.api["classes"].get(cls_name)
        if spec is None:
            return False
        return member is None or member in _recorded_members(spec)

    def new(self, cls_name: str, *args, **kwargs) -> Any:
        """Create an object the library hands out (no public constructor in pybind11)."""
        cls = self.classes[cls_name]
        obj = cls.__new__(cls)
        obj._setup(*args, **kwargs)
        return obj

    def __getattr__(self, name: str) -> Any:
        classes = self.__dict__.get("classes", {})
        if name in classes:
            return classes[name]
        raise AttributeError(name)


def _class_order(classes: dict) -> list[str]:
    """Bases before derived classes; nested enums (ILogger.Severity) before their owners."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str):
        if name in seen or name not in classes:
            return
        seen.add(name)
        for base in classes[name].get("bases", []):
            visit(base)
        order.append(name)

    for name in sorted(classes, key=lambda n: (classes[n]["kind"] != "enum", n)):
        visit(name)
    return order


_ENUM_REPR = "<{}.{}: {}>"


def _resolve_repr(ctx: Context, entry: dict) -> Any:
    """Turn a recorded repr ('<DataType.HALF: 1>', 'tensorrt.tensorrt.X', "'8.6.1'") into a value."""
    text, kind = entry["repr"], entry["type"]
    if text.startswith("<") and text.endswith(">") and ": " in text:
        enum_name, member = text[1:-1].split(":")[0].split(".")[-2:]
        candidates = [
            c for n, c in ctx.classes.items() if n.split(".")[-1] == enum_name and getattr(c, "_is_enum", False)
        ]
        if candidates:
            return getattr(candidates[0], member)
    if kind in ("type", "type-alias") and text.startswith("tensorrt.tensorrt."):
        return ctx.classes.get(_strip_module(text))
    if kind == "module":
        return {"ctypes": ctypes, "os": os, "sys": sys, "warnings": warnings}.get(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def build_module(version: str, registry: dict[str, type], functions: dict[str, Callable]) -> types.ModuleType:
    """Create the `tensorrt` module for `version` from its JSON plus the behaviour registry."""
    api = load_api(version)
    ctx = Context(version, api)
    classes_spec = api["classes"]
    checker = TypeChecker(ctx.classes)

    for name in _class_order(classes_spec):
        spec = classes_spec[name]
        if spec["kind"] == "enum":
            ctx.classes[name] = _make_enum(name, spec, ctx)
            continue
        impl = registry.get(name)
        if impl is None:
            for base in spec.get("mro", [])[1:]:
                impl = registry.get(base)
                if impl is not None:
                    break
        bases = tuple(ctx.classes[b] for b in spec.get("bases", []) if b in ctx.classes) or (object,)
        ns: dict[str, Any] = {
            "_ctx": ctx,
            "_user_subclass": False,
            "_recorded": frozenset(_recorded_members(spec)),
            "__setattr__": _guarded_setattr,
            "__init_subclass__": classmethod(_init_subclass),
            "__module__": "tensorrt.tensorrt",
        }
        # Private helpers of the behaviour class (names starting with one underscore).
        if impl is not None:
            for klass in reversed(impl.__mro__[:-1]):
                for attr, value in vars(klass).items():
                    if attr.startswith("_") and not attr.startswith("__"):
                        ns[attr] = value
        for method, sig_texts in spec["methods"].items():
            if method in ("__str__", "__getstate__", "__setstate__") and not sig_texts:
                continue
            sigs = [parse_signature(t) for t in sig_texts if "(" in t]
            behaviour = getattr(impl, method, None) if impl is not None else None
            if method in ("__enter__", "__exit__") and behaviour is None:
                behaviour = (lambda self: self) if method == "__enter__" else (lambda self, *exc: None)
            if method == "__init__":
                if spec.get("constructor") is None:
                    behaviour = _no_constructor(name)
                elif behaviour is None or behaviour is object.__init__:
                    behaviour = _no_op_init
            if behaviour is None or behaviour is getattr(object, method, None):
                if method.startswith("__") and method not in (
                    "__init__",
                    "__getitem__",
                    "__len__",
                    "__bool__",
                    "__call__",
                ):
                    continue  # dunder hooks without behaviour: leave Python's default
                behaviour = _not_modelled(name, method, version)
            ns[method] = checked(name, method, sigs, behaviour, checker, is_method=True)
        if "__init__" not in ns:
            ctor = spec.get("constructor")
            if ctor is None:
                ns["__init__"] = _no_constructor(name)
            else:
                behaviour = getattr(impl, "__init__", None) if impl is not None else None
                if behaviour is None or behaviour is object.__init__:
                    behaviour = lambda self, *a, **k: None  # noqa: E731
                ns["__init__"] = checked(name, "__init__", [parse_signature(t) for t in ctor], behaviour, checker, True)
        for extra in ("__iter__", "__bool__", "__buffer__", "__repr__", "__str__", "__eq__", "__hash__"):
            behaviour = getattr(impl, extra, None) if impl is not None else None
            if behaviour is not None and behaviour is not getattr(object, extra, None) and extra not in ns:
                if extra in spec["methods"] or extra in ("__iter__", "__buffer__", "__hash__"):
                    ns[extra] = behaviour
        for prop in spec["properties"]:
            ns[prop] = _make_property(name, prop, spec["property_details"].get(prop, {}), impl, version)
        cls = type(name.split(".")[-1], bases, ns)
        cls.__qualname__ = name
        ctx.classes[name] = cls

    # Nested types and class attributes (ILogger.Severity, Logger.WARNING, Dims.__hash__ = None...)
    for name, spec in classes_spec.items():
        cls = ctx.classes[name]
        for nested in spec.get("nested_types") or []:
            type.__setattr__(cls, nested, ctx.classes.get(f"{name}.{nested}"))
        for attr, entry in spec.get("class_attrs", {}).items():
            if attr == "__hash__" and entry["repr"] == "None":
                continue  # unhashable in pybind11 terms; keep Python's default so dict keys still work
            type.__setattr__(cls, attr, _resolve_repr(ctx, entry))

    module = types.ModuleType("tensorrt", f"TensorRT {version} test stand-in (see tests/trt_standin).")
    module.__file__ = str(Path(__file__).with_name("__init__.py"))
    for name in api["module_attrs"]:
        if name in classes_spec:
            setattr(module, name, ctx.classes[name])
    for name, entry in api["constants"].items():
        setattr(module, name, _resolve_repr(ctx, entry))
    for name, spec in api["functions"].items():
        sigs = [parse_signature(t) for t in spec["signatures"] if "(" in t]
        behaviour = functions.get(name) or _not_modelled("tensorrt", name, version)
        setattr(module, name, checked("tensorrt", name, sigs, _bind_ctx(behaviour, ctx), checker, is_method=False))
    if "tensorrt" in api["module_attrs"]:
        module.tensorrt = module  # the real package re-exports its extension module `tensorrt.tensorrt`
    module._standin = ctx
    ctx.module = module
    return module


def is_modelled(owner: type, member: str) -> bool:
    """True if `owner.member` has stand-in behaviour (not a NotImplementedError placeholder)."""
    attr = inspect.getattr_static(owner, member)
    if isinstance(attr, property):
        return not getattr(attr.fget, "not_modelled", False)
    return not getattr(getattr(attr, "__wrapped__", attr), "not_modelled", False)


def _bind_ctx(fn: Callable, ctx: Context) -> Callable:
    if getattr(fn, "_wants_ctx", False):
        return lambda *a, **k: fn(ctx, *a, **k)
    return fn


def wants_ctx(fn: Callable) -> Callable:
    """Mark a module function implementation that takes the Context as first argument."""
    fn._wants_ctx = True
    return fn


def _no_op_init(self, *args, **kwargs) -> None:
    """Constructor of interface classes users derive from (ILogger, calibrators, IProfiler...)."""


def _no_constructor(name: str) -> Callable:
    def init(self, *args, **kwargs):
        raise TypeError(f"tensorrt.tensorrt.{name}: No constructor defined!")

    return init
