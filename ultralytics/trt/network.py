"""Network-creation flags: the one call whose meaning changed in every major release.

- 8.x: networks are implicit-batch unless `EXPLICIT_BATCH` is set, and the ONNX parser needs explicit.
- 10.0 removed implicit batch; `EXPLICIT_BATCH` still exists but is ignored, so 0 is the right flag.
- 11.0 removed `EXPLICIT_BATCH` and is always strongly typed (`STRONGLY_TYPED` is ignored).
A hard-coded `create_network(1)` would mean EXPLICIT_BATCH on 10.x but STRONGLY_TYPED on 11.x, which
is why we compute the flags instead.
"""

from __future__ import annotations

from types import ModuleType


def network_flags(trt: ModuleType) -> int:
    """The `Builder.create_network` flags for an ONNX-parsed, weakly or implicitly typed network."""
    # 8.x: `Builder.max_batch_size` is the implicit-batch API; while it exists, ask for explicit batch.
    if hasattr(trt.Builder, "max_batch_size"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0  # 10.0+: explicit batch always; 11.0+: strongly typed always


def always_strongly_typed(trt: ModuleType) -> bool:
    """True on 11.0+, where the ONNX model's own types decide each layer's precision.

    The precision builder flags were removed in 11.0, and their absence is the capability we test.
    """
    return not hasattr(trt.BuilderFlag, "FP16")
