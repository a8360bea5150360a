"""INT8 calibration for TensorRT 8.6-10.x (implicit quantization), and head layers kept out of INT8.

TensorRT <= 10 measures activation ranges itself by pulling batches from a calibrator object during
the build. TensorRT 11 removed the calibrator classes; there `export/quantize.py` writes the scales
into a Q/DQ ONNX instead, and nothing here runs.

The calibration cache (`<engine stem>...cache`, TensorRT's own bytes, usable by trtexec) gets a JSON
sidecar with the fingerprint of the images, imgsz, batch, method and model. A cache is only handed back
to TensorRT when the fingerprint matches, so a changed model or imgsz recalibrates instead of silently
reusing wrong scales; a matching cache skips calibration without reading a single image.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import ModuleType

import torch
from tqdm import tqdm

from ultralytics.export.calibration import CalibrationSet
from ultralytics.export.graph_walk import consumer_relation, downstream, reaches
from ultralytics.trt.device import host_memory_enabled
from ultralytics.utils import LOGGER
from ultralytics.utils.atomic_file import atomic_write

# TensorRT's calibrators, by our method name (the names `export/quantize.py` uses for the same statistic).
CALIBRATOR_CLASSES = {"minmax": "IInt8MinMaxCalibrator", "entropy": "IInt8EntropyCalibrator2"}
ALGORITHMS = {"minmax": "MINMAX_CALIBRATION", "entropy": "ENTROPY_CALIBRATION_2"}
DEFAULT_CALIBRATOR_METHOD = "minmax"  # see docs/int8.md: min-max beat entropy on our Q/DQ measurement
# Upstream's exporter names the head's prediction convs ".../cv2.0/cv2.0.2/Conv" and the DFL ".../dfl/...".
HEAD_LAYER_NAME = re.compile(r"/cv[23]\.\d+\.2/|/dfl/")


def make_int8_calibrator(
    trt: ModuleType,
    calib: CalibrationSet,
    cache_file: str | Path,
    method: str = DEFAULT_CALIBRATOR_METHOD,
    *,
    model: str | Path | None = None,
):
    """A calibrator object (subclass of this TensorRT's min-max or entropy-2 calibrator) feeding `calib`.

    `model`: the ONNX the engine is built from; its graph and weights go into the cache fingerprint.
    Without it the cache is written but never trusted (a changed model could not be detected).
    """
    if method == "percentile":
        raise ValueError(
            "calib_method='percentile' exists only for Q/DQ quantization (TensorRT 11, format='onnx'); "
            "TensorRT's calibrators offer 'minmax' and 'entropy'"
        )
    if method not in CALIBRATOR_CLASSES:
        raise ValueError(f"INT8 calibration method {method!r} is not valid here: use 'minmax' or 'entropy'")
    if not hasattr(trt, "CalibrationAlgoType"):  # 11.0 removed the calibrators with it
        raise RuntimeError(
            f"this TensorRT has no {CALIBRATOR_CLASSES[method]} (TensorRT 11 removed calibration): "
            "build from a Q/DQ ONNX made by ultralytics.export.quantize.quantize_onnx instead"
        )
    base = getattr(trt, CALIBRATOR_CLASSES[method])
    algorithm = getattr(trt.CalibrationAlgoType, ALGORITHMS[method])
    fingerprint = _fingerprint(calib, method, model)

    class Calibrator(base):
        """Feeds letterboxed batches to TensorRT and keeps its cache next to the engine."""

        def __init__(self) -> None:
            base.__init__(self)  # pybind11 needs the base initialised before TensorRT calls back
            self.calib = calib
            self.cache_file = Path(cache_file)
            self.sidecar = _sidecar(self.cache_file)
            self.fingerprint = fingerprint
            self.batches_served = 0
            self.cache_reused = False
            self._batches = None
            self._bar: tqdm | None = None
            self._current: torch.Tensor | None = None  # TensorRT reads the pointer after get_batch returns

        def get_algorithm(self):
            return algorithm

        def get_batch_size(self) -> int:
            return self.calib.batch

        def get_batch(self, names: list[str], *args) -> list[int] | None:
            if len(names) != 1:
                raise ValueError(f"INT8 calibration feeds one image input, but the network has inputs {names}")
            if self._batches is None:
                self._batches = self.calib.batches()
                total = self.calib.num_batches
                self._bar = tqdm(total=total, desc="INT8 calibration (TensorRT)", unit="batch", leave=False)
            array = next(self._batches, None)
            if array is None:
                self._current = None
                if self._bar is not None:
                    self._bar.close()
                return None
            if self._bar is not None:
                self._bar.update(1)
            tensor = torch.from_numpy(array)
            if not host_memory_enabled():
                tensor = tensor.cuda()
            self._current = tensor.contiguous()
            self.batches_served += 1
            return [int(self._current.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            cached = _read_cache(self.cache_file, self.sidecar, self.fingerprint)
            self.cache_reused = cached is not None
            if cached is not None:
                LOGGER.info(f"INT8: reusing calibration cache {self.cache_file} (same images, imgsz, model)")
            return cached

        def write_calibration_cache(self, cache) -> None:
            data = bytes(memoryview(cache))
            atomic_write(self.cache_file, data)
            record = {"fingerprint": self.fingerprint, "method": method, "images": len(self.calib)}
            record.update(imgsz=list(self.calib.imgsz), batch=self.calib.batch, trusted=model is not None)
            atomic_write(self.sidecar, json.dumps(record, indent=1).encode())
            LOGGER.info(f"INT8: calibration cache written to {self.cache_file}")

    return Calibrator()


def onnx_model_hash(path: str | Path) -> str:
    """Hash of an ONNX graph and weights, ignoring metadata (export dates change on every export)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    model.doc_string = ""
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def _fingerprint(calib: CalibrationSet, method: str, model: str | Path | None) -> str:
    model_part = onnx_model_hash(model) if model is not None else "unknown-model"
    return hashlib.sha256(f"{calib.fingerprint};{method};{model_part}".encode()).hexdigest()


def _sidecar(cache_file: Path) -> Path:
    return cache_file.with_name(cache_file.name + ".json")


def _read_cache(cache_file: Path, sidecar: Path, fingerprint: str) -> bytes | None:
    if not cache_file.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        LOGGER.warning(f"INT8: ignoring calibration cache {cache_file}: no readable {sidecar.name} says what made it")
        return None
    if not record.get("trusted"):
        LOGGER.warning(f"INT8: recalibrating: {cache_file} was made without a model fingerprint")
        return None
    if record.get("fingerprint") != fingerprint:
        LOGGER.info(f"INT8: recalibrating: {cache_file} was made for other images, imgsz, method or model")
        return None
    return cache_file.read_bytes() or None


# -- precision constraints --------------------------------------------------------------------------


def constrain_sensitive_layers(trt: ModuleType, network, config) -> list[str]:
    """Keep the head's prediction convs (and the box/class decode after them) out of INT8.

    Returns the names of the layers pinned. The prediction convs go to FP16 when FP16 is enabled
    (FP32 otherwise) and everything downstream of them to FP32: boxes in pixels up to imgsz and
    class scores near the 0.25 threshold lose the most from INT8's 255 steps (docs/int8.md measures
    it on the Q/DQ path). A no-op where TensorRT has no precision constraints (11.x, strongly typed).
    """
    flags = trt.BuilderFlag
    if not hasattr(flags, "OBEY_PRECISION_CONSTRAINTS") or not hasattr(trt.ILayer, "precision"):
        return []
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    heads = _head_layers(trt, layers)
    if not heads:
        LOGGER.warning("INT8: no detection-head layers recognised; every layer may run in INT8")
        return []
    head_precision = trt.DataType.HALF if hasattr(flags, "FP16") and config.get_flag(flags.FP16) else trt.DataType.FLOAT
    pinned = []
    for layer in layers:
        if layer.name in heads:
            _pin(layer, head_precision)
            pinned.append(layer.name)
    floating = (trt.DataType.FLOAT, trt.DataType.HALF)
    for layer in _downstream(layers, heads):
        dtypes = [getattr(layer.get_output(i), "dtype", None) for i in range(layer.num_outputs)]
        if any(dtype is not None and dtype not in floating for dtype in dtypes):
            continue  # shape arithmetic (dynamic models): not a precision choice
        _pin(layer, trt.DataType.FLOAT)
        pinned.append(layer.name)
    config.set_flag(flags.OBEY_PRECISION_CONSTRAINTS)
    LOGGER.info(
        f"INT8: {len(heads)} head prediction layers pinned to {head_precision.name}, {len(pinned) - len(heads)} decode layers to FLOAT"
    )
    return pinned


def _pin(layer, precision) -> None:
    layer.precision = precision
    for index in range(layer.num_outputs):
        layer.set_output_type(index, precision)


def _head_layers(trt: ModuleType, layers: list) -> set[str]:
    """Prediction convs: convs named like the head's last convs, or (any exporter's names) convs whose
    output feeds no activation *and* from which no activated (feature) conv can be reached.

    The second condition keeps activation-less convs in the body (projections, linear bottlenecks:
    everything after them is still features) out of the head set; the old rule took every
    activation-less conv for a head conv.
    """
    users = consumer_relation(layers, _input_names, _output_names)
    conv_type = getattr(trt.LayerType, "CONVOLUTION", None)
    activation_type = getattr(trt.LayerType, "ACTIVATION", None)

    def is_feature_conv(layer) -> bool:
        return (
            conv_type is not None and layer.type == conv_type and any(u.type == activation_type for u in users(layer))
        )

    reaches_feature = reaches(layers, users, is_feature_conv)
    heads = set()
    for layer, feeds_features in zip(layers, reaches_feature):
        if feeds_features:
            continue
        if HEAD_LAYER_NAME.search(layer.name) and layer.name.endswith("Conv"):
            heads.add(layer.name)
        elif conv_type is not None and layer.type == conv_type and users(layer) and not is_feature_conv(layer):
            heads.add(layer.name)
    return heads


def _downstream(layers: list, heads: set[str]) -> list:
    """Layers (in network order) that read, directly or not, an output of a head layer."""
    return downstream(layers, _input_names, _output_names, lambda layer: layer.name in heads)


# The TensorRT adapter of `graph_walk`: a layer's tensors by name (optional inputs may be None).
def _input_names(layer) -> list[str]:
    return [tensor.name for tensor in (layer.get_input(i) for i in range(layer.num_inputs)) if tensor is not None]


def _output_names(layer) -> list[str]:
    return [layer.get_output(i).name for i in range(layer.num_outputs)]
