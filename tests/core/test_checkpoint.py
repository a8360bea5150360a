"""Checkpoint loading: every upstream 8.x layout, the restricted unpickler, and clear errors."""

from __future__ import annotations

import collections
import hashlib
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import IMAGES, MODELS, REFERENCE
from ultralytics.nn.checkpoint import CheckpointError, checkpoint_imgsz, load_checkpoint
from ultralytics.nn.modules import SPPF, Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import IterableSimpleNamespace

SHAPES_NAMES = {0: "circle", 1: "square", 2: "triangle", 3: "star"}


@pytest.fixture(scope="module")
def small_model() -> DetectionModel:
    """A fresh 4-class YOLOv8n to craft checkpoints around."""
    torch.manual_seed(0)
    return DetectionModel("yolov8n.yaml", nc=4)


@pytest.fixture(scope="module")
def reference_input() -> torch.Tensor:
    return torch.from_numpy(np.load(REFERENCE / "shapes_raw_320.npz")["input_0"])


def _rewrite_globals(src: Path, dst: Path, replacements: dict[bytes, bytes]) -> None:
    """Copy a torch zip checkpoint, renaming pickle globals (protocol-2 GLOBAL opcodes are
    'c<module>\\n<name>\\n'), to reproduce the module paths older releases wrote."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                for old, new in replacements.items():
                    assert old in data, f"{old!r} not in {src.name}"
                    data = data.replace(old, new)
            zout.writestr(info.filename, data)


def _output(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# --- upstream layouts ------------------------------------------------------------------------------


def test_both_upstream_releases_load_and_agree(reference_input):
    new_model, new_ckpt = load_checkpoint(MODELS / "shapes_yolov8n.pt")
    old_model, old_ckpt = load_checkpoint(MODELS / "shapes_yolov8n_v8.1.44.pt")
    for model, ckpt in ((new_model, new_ckpt), (old_model, old_ckpt)):
        assert isinstance(model, DetectionModel)
        assert model.names == SHAPES_NAMES and model.nc == 4 and model.task == "detect"
        assert not model.training and model.is_fused()
        assert all(p.dtype == torch.float32 for p in model.parameters())  # stored as FP16
        assert checkpoint_imgsz(ckpt) == 320
        assert model.args["imgsz"] == 320
    assert new_ckpt["version"] == "8.4.190" and old_ckpt["version"] == "8.1.44"
    assert "n" not in vars(old_model.model[9]) and isinstance(old_model.model[9], SPPF)  # pre-8.3 SPPF
    torch.testing.assert_close(_output(new_model, reference_input), _output(old_model, reference_input), rtol=0, atol=0)


def test_random_80_class_checkpoint_without_train_args():
    model, ckpt = load_checkpoint(MODELS / "yolov8n_random_upstream.pt")
    assert "train_args" not in ckpt and checkpoint_imgsz(ckpt) is None
    assert model.names == {i: str(i) for i in range(80)}
    assert sum(p.numel() for p in model.parameters()) < 3_157_200  # fused: BatchNorm folded away


def test_loading_never_modifies_the_file():
    path = MODELS / "shapes_yolov8n.pt"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    load_checkpoint(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_8_0_single_module_paths(tmp_path, reference_input):
    """8.0.x pickled layers as ultralytics.nn.modules.<Class>; those must resolve to our classes."""
    old_style = tmp_path / "v8.0.pt"
    _rewrite_globals(
        MODELS / "shapes_yolov8n_v8.1.44.pt",
        old_style,
        {
            b"cultralytics.nn.modules.conv\nConv\n": b"cultralytics.nn.modules\nConv\n",
            b"cultralytics.nn.modules.block\nC2f\n": b"cultralytics.nn.modules\nC2f\n",
            b"cultralytics.nn.modules.head\nDetect\n": b"cultralytics.nn.modules\nDetect\n",
        },
    )
    model, _ = load_checkpoint(old_style)
    reference, _ = load_checkpoint(MODELS / "shapes_yolov8n_v8.1.44.pt")
    torch.testing.assert_close(_output(model, reference_input), _output(reference, reference_input), rtol=0, atol=0)


def test_yolo_utils_alias_windows_paths_and_namespace_train_args(tmp_path, small_model):
    saved = tmp_path / "saved.pt"
    train_args = IterableSimpleNamespace(imgsz=416, data="coco.yaml", save_dir=Path("runs/detect/train"))
    torch.save({"model": small_model, "train_args": train_args, "unknown_future_key": 1}, saved)
    renamed = tmp_path / "old_paths.pt"
    _rewrite_globals(
        saved,
        renamed,
        {
            b"cultralytics.utils\nIterableSimpleNamespace\n": b"cultralytics.yolo.utils\nIterableSimpleNamespace\n",
            b"cpathlib\nPosixPath\n": b"cpathlib\nWindowsPath\n",
        },
    )
    model, ckpt = load_checkpoint(renamed)
    assert checkpoint_imgsz(ckpt) == 416 and model.args["imgsz"] == 416 and model.args["data"] == "coco.yaml"
    assert isinstance(ckpt["train_args"].save_dir, Path)


def test_bare_model_pickle_and_missing_attributes(tmp_path, small_model, reference_input):
    """A checkpoint that is just the model, from a release that lacked some attributes."""
    model = DetectionModel("yolov8n.yaml", nc=4)
    model.load_state_dict(small_model.state_dict())
    expected = _output(model.eval(), reference_input)
    head = model.model[-1]
    assert isinstance(head, Detect)
    del head.reg_max, model.names, model.nc  # class-level defaults / loader must fill these in
    path = tmp_path / "bare.pt"
    torch.save(model, path)
    loaded, ckpt = load_checkpoint(path)
    assert loaded.names == {i: f"class{i}" for i in range(4)} and loaded.nc == 4
    assert checkpoint_imgsz(ckpt) is None
    torch.testing.assert_close(_output(loaded, reference_input), expected, rtol=1e-4, atol=1e-3)


def test_legacy_serialization_and_fp16(tmp_path, small_model, reference_input):
    """torch.save's pre-1.6 (non-zip) format, FP16 weights, string class keys, a different protocol."""
    model = DetectionModel("yolov8n.yaml", nc=4)
    model.load_state_dict(small_model.state_dict())
    expected = _output(model.eval(), reference_input)
    model.names = {"0": "a", "1": "b", "2": "c", "3": "d"}
    path = tmp_path / "legacy.pt"
    torch.save({"model": model.half(), "ema": None}, path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    loaded, _ = load_checkpoint(path)
    assert loaded.names == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ours = _output(loaded, reference_input)
    torch.testing.assert_close(ours[:, :4], expected[:, :4], rtol=0, atol=0.5)  # pixels; weights rounded to FP16
    torch.testing.assert_close(ours[:, 4:], expected[:, 4:], rtol=0, atol=2e-3)  # scores


# --- the restricted unpickler ----------------------------------------------------------------------


def test_foreign_global_is_refused_and_trust_loads_it(tmp_path, small_model, reference_input):
    path = tmp_path / "with_counter.pt"
    torch.save({"model": small_model, "counts": collections.Counter(cats=2)}, path)
    with pytest.raises(CheckpointError, match=r"collections\.Counter.*trust=True"):
        load_checkpoint(path)
    model, ckpt = load_checkpoint(path, trust=True)
    assert ckpt["counts"]["cats"] == 2
    assert _output(model, reference_input).shape == (1, 8, 2100)


class _RunsCommand:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_execution_is_blocked(tmp_path, small_model):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": small_model, "payload": _RunsCommand(marker)}, path)
    with pytest.raises(CheckpointError, match=rf"{os.system.__module__}\.system"):
        load_checkpoint(path)
    assert not marker.exists()


# --- clear errors -----------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", ["random", "empty", "text", "image"])
def test_files_that_are_not_checkpoints(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "text":
        path.write_text("this is not a model\n")
    else:
        path.write_bytes((IMAGES / "astronaut.png").read_bytes())
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_state_dict_and_other_containers(tmp_path, small_model):
    state = tmp_path / "state.pt"
    torch.save(small_model.state_dict(), state)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_checkpoint(state)

    no_model = tmp_path / "no_model.pt"
    torch.save({"epoch": 3, "best_fitness": 0.5}, no_model)
    with pytest.raises(CheckpointError, match="no 'model' or 'ema'"):
        load_checkpoint(no_model)

    other_module = tmp_path / "sequential.pt"
    torch.save({"model": torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))}, other_module)
    with pytest.raises(CheckpointError, match="not a YOLO DetectionModel"):
        load_checkpoint(other_module)

    a_list = tmp_path / "list.pt"
    torch.save([1, 2, 3], a_list)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(a_list)


def test_yolov5_checkpoint_is_named(tmp_path, monkeypatch):
    """YOLOv5 pickles reference its own `models.yolo` package; say so instead of a bare import error."""
    yolo_module = types.ModuleType("models.yolo")

    class Model(torch.nn.Module):
        pass

    Model.__module__, Model.__qualname__ = "models.yolo", "Model"
    yolo_module.Model = Model
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.yolo", yolo_module)
    path = tmp_path / "yolov5s.pt"
    torch.save({"model": Model(), "epoch": -1}, path)
    monkeypatch.delitem(sys.modules, "models.yolo")
    monkeypatch.delitem(sys.modules, "models")
    with pytest.raises(CheckpointError, match="YOLOv5"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="YOLOv5"):
        load_checkpoint(path, trust=True)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_file_is_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.jit.script(torch.nn.Conv2d(3, 3, 1)).save(str(path))
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_checkpoint(path)
