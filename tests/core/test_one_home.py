"""One definition each of the input geometry, in data/augment.py: letterbox placement, the grey pad
level, imgsz normalisation and image → tensor. A second copy drifts (a one-pixel shift changes boxes),
so this walks the package's source with `ast` and fails where one reappears outside the home.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch

import ultralytics
from ultralytics.data.augment import PAD_VALUE, LetterBox, images_to_tensor, imgsz_pair, tensor_to_bgr

ROOT = Path(ultralytics.__file__).parent
HOME = ROOT / "data" / "augment.py"
# Triton's JIT cannot read a Python global inside the kernel: its grey is a literal, checked against
# PAD_VALUE by tests/gpu/test_letterbox_triton.py's pixel comparison with the CPU letterbox.
PAD_LITERAL_ALLOWED = {HOME, ROOT / "gpu" / "letterbox_triton.py"}
# cfg validates the user's imgsz value (text, int or list) and keeps its form; it does not normalise to (h, w).
IMGSZ_CHECK_ALLOWED = {("cfg/__init__.py", "check_imgsz_value")}


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text()) for p in sorted(ROOT.rglob("*.py"))}


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_pad_value_is_defined_once():
    found = [
        _where(p, n)
        for p, tree in _sources().items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and type(n.value) is int
        and n.value == PAD_VALUE
        and p not in PAD_LITERAL_ALLOWED
    ]
    assert found == [], f"use data.augment.PAD_VALUE instead of a literal {PAD_VALUE}: {found}"


def _is_centre_split(node: ast.AST) -> bool:
    """`round(x - 0.1)` / `round(x + 0.1)`: upstream's rule for splitting an odd padding."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "round" and node.args):
        return False
    arg = node.args[0]
    return isinstance(arg, ast.BinOp) and isinstance(arg.right, ast.Constant) and arg.right.value == 0.1


def test_letterbox_geometry_is_computed_once():
    found = [
        _where(p, n)
        for p, tree in _sources().items()
        if p != HOME
        for n in ast.walk(tree)
        if _is_centre_split(n)
        or (isinstance(n, ast.FunctionDef) and "letterbox" in n.name and any(k in n.name for k in ("param", "geom")))
    ]
    assert found == [], f"letterbox geometry outside data/augment.letterbox_params: {found}"


def _normalises_imgsz(fn: ast.FunctionDef) -> bool:
    """A function that branches on `isinstance(<its imgsz-like argument>, int)`: an imgsz normaliser."""
    names = {a.arg for a in fn.args.args + fn.args.kwonlyargs if "imgsz" in a.arg or a.arg == "new_shape"}
    for n in ast.walk(fn):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "isinstance" and n.args:
            if isinstance(n.args[0], ast.Name) and n.args[0].id in names:
                return True
    return False


def test_imgsz_is_normalised_once():
    found = [
        f"{_where(p, n)} {n.name}"
        for p, tree in _sources().items()
        if p != HOME
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef)
        and _normalises_imgsz(n)
        and (str(p.relative_to(ROOT)), n.name) not in IMGSZ_CHECK_ALLOWED
    ]
    assert found == [], f"normalise imgsz with data.augment.imgsz_pair: {found}"


def _is_chw_transpose(node: ast.AST) -> bool:
    """`.transpose(0, 3, 1, 2)` / `.transpose(2, 0, 1)` on images: the HWC → CHW step of image → tensor."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "transpose"):
        return False
    args = [a.value for a in node.args if isinstance(a, ast.Constant)]
    return args in ([0, 3, 1, 2], [2, 0, 1])


def test_image_to_tensor_is_written_once():
    found = [
        _where(p, n) for p, tree in _sources().items() if p != HOME for n in ast.walk(tree) if _is_chw_transpose(n)
    ]
    assert found == [], f"use data.augment.images_to_tensor: {found}"


def test_walkers_see_what_they_look_for():
    """Each rule does find the one definition it guards, in the home."""
    home = ast.parse(HOME.read_text())
    assert any(_is_centre_split(n) for n in ast.walk(home))
    assert any(_is_chw_transpose(n) for n in ast.walk(home))
    assert any(isinstance(n, ast.FunctionDef) and _normalises_imgsz(n) for n in ast.walk(home))
    assert any(isinstance(n, ast.Constant) and n.value == PAD_VALUE for n in ast.walk(home))


def test_image_tensor_round_trip_on_a_real_image():
    """images_to_tensor and tensor_to_bgr invert each other on a fixture photo, pad included."""
    import cv2

    photo = next((ROOT.parents[1] / "shared" / "fixtures").rglob("*.jpg"), None) or next(
        (ROOT / "assets").glob("*.jpg")
    )
    image = cv2.imread(str(photo))
    boxed = LetterBox(imgsz_pair(320))(image=image)
    tensor = images_to_tensor([boxed], "cpu")
    assert tensor.shape == (1, 3, 320, 320) and tensor.dtype == torch.float32
    assert np.array_equal(tensor_to_bgr(tensor)[0], boxed)
    assert imgsz_pair([640]) == (640, 640) and imgsz_pair(None, default=640) == (640, 640)


def test_image_suffixes_and_split_listing_are_defined_once():
    """One list of image suffixes (data/loaders.IMG_FORMATS) and one reader of a dataset split's images
    (data/dataset.split_images): calibration used to keep its own copies of both."""
    suffix_sets = [
        _where(p, n)
        for p, tree in _sources().items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Set | ast.Call | ast.Tuple)
        and {"jpg", "png", "webp"}
        <= {c.value.lstrip(".") for c in ast.walk(n) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    ]
    assert len({s.split(":")[0] for s in suffix_sets}) == 1 and suffix_sets[0].startswith("data/loaders.py"), (
        suffix_sets
    )
    listers = [
        _where(p, n)
        for p, tree in _sources().items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "rglob"
        and not (n.args and isinstance(n.args[0], ast.Constant) and str(n.args[0].value).endswith(".yaml"))
        and p.relative_to(ROOT).as_posix() not in ("data/dataset.py", "data/loaders.py")
    ]
    assert listers == [], f"list a split's images with data.dataset.split_images / images_in: {listers}"
