"""ONNX Runtime sessions shared by build checks and execution, cached by model content (small LRU)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

_MAX_SESSIONS = 16
_SESSIONS: OrderedDict[str, Any] = OrderedDict()
_ERRORS: dict[str, str] = {}


def session(model_bytes: bytes):
    """An InferenceSession for the model (raises ONNX Runtime's error if it cannot load it)."""
    key = hashlib.sha1(model_bytes).hexdigest()
    if key in _SESSIONS:
        _SESSIONS.move_to_end(key)
        return _SESSIONS[key]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # the test machines share two cores between many processes
    created = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    _SESSIONS[key] = created
    if len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return created


def load_error(model_bytes: bytes) -> str | None:
    """None if ONNX Runtime can load the model, else its error message."""
    key = hashlib.sha1(model_bytes).hexdigest()
    if key in _ERRORS:
        return _ERRORS[key]
    try:
        session(model_bytes)
    except Exception as e:  # ORT raises several exception types for invalid graphs
        _ERRORS[key] = str(e).strip()
        return _ERRORS[key]
    return None
