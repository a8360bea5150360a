"""The `yolo` command: parse (cfg/), then run a mode on a `YOLO` (the one place outside model.py that builds one).

It sits at the top of the import graph: cfg/ parses and validates, the engine runs, and nothing below
imports this module.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from ultralytics.cfg import (
    DEFAULT_CFG_DICT,
    EXPECTED_ERRORS,
    HELP,
    MODES,
    ConfigError,
    _wants_traceback,
    check_cfg,
    commands,
    load_cfg_file,
    one_line,
    parse_cli,
)
from ultralytics.engine.model import YOLO
from ultralytics.utils import ASSETS, LOGGER
from ultralytics.utils.atomic_file import atomic_copy


def entrypoint(argv: list[str] | None = None) -> None:
    """The `yolo` command: exit status 0 on success; one line on stderr and a non-zero status on failure."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        code = run_cli(argv)
    except KeyboardInterrupt:
        print("Interrupted (Ctrl-C): nothing was overwritten", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as e:
        if _wants_traceback(argv):
            traceback.print_exc()
        print(f"Error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2 if isinstance(e, EXPECTED_ERRORS) else 1) from None
    if code:
        raise SystemExit(code)


def run_cli(argv: list[str]) -> int:
    """Parse and run one command; returns the exit status (errors are raised)."""
    if argv[:2] == ["checks", "tensorrt"]:  # its own arguments, parsed by the check itself
        return commands.tensorrt_check(argv[2:])
    if argv[:1] in (["settings"], ["--settings"]):  # `yolo settings reset` etc.: answered by the command
        return commands.settings(argv[1:])
    mode, overrides = parse_cli(argv)
    if overrides.get("cfg"):  # cfg=my.yaml: its keys first, the command line's on top (upstream's order)
        overrides = {**load_cfg_file(overrides.pop("cfg")), **overrides}
    if mode is None and overrides:  # `yolo model=x.pt source=y`, or a cfg yaml that names its mode
        if overrides.get("mode"):
            mode = str(overrides["mode"])
        else:
            mode = str(DEFAULT_CFG_DICT["mode"])
            LOGGER.warning(f"WARNING 'mode' argument is missing; using mode={mode} (modes: {', '.join(MODES)})")
        if mode not in MODES:
            raise ConfigError(f"'mode={mode}' is not a mode; use one of {', '.join(MODES)}")
    overrides.pop("mode", None)
    if mode in (None, "help", "-h", "--help"):
        print(HELP)
        return 0
    if mode == "version":
        return commands.version()
    if mode == "checks":
        return commands.checks()
    if mode == "settings":
        return commands.settings([a for a in argv if a not in ("settings", "--settings")])
    if mode == "cfg":
        return commands.show_cfg()
    if mode == "copy-cfg":
        return commands.copy_cfg()
    check_cfg(dict(overrides))
    run_mode(mode, overrides)
    return 0


def default_model(mode: str = "predict") -> str:
    """The bundled shapes model; for export a copy in the current folder, so the exports land there
    (as upstream's downloaded default model does) and never inside the installed package."""
    bundled = ASSETS / "shapes_yolov8n.pt"
    if mode != "export":
        return str(bundled)
    local = Path.cwd() / bundled.name
    if not local.exists():
        atomic_copy(bundled, local)
    LOGGER.warning(f"WARNING model is missing: exporting the bundled shapes model from ./{local.name}")
    return str(local)


def run_mode(mode: str, overrides: dict[str, Any]) -> None:
    model_path = overrides.pop("model", None) or default_model(mode)
    overrides.pop("task", None)
    model = YOLO(model_path)
    if mode == "predict":
        overrides.setdefault("save", True)  # the CLI saves annotated images by default, like upstream
        if overrides.get("source") is None:
            overrides["source"] = str(ASSETS)
            LOGGER.warning(f"WARNING source is missing, using the bundled images in {ASSETS}")
        model.predict(**overrides)
    elif mode == "export":
        model.export(**overrides)
    elif mode == "val":
        model.val(**overrides)
    elif mode == "benchmark":
        model.benchmark(**overrides)
    elif mode == "compare":
        other = overrides.pop("other", None)
        if not other:
            raise ConfigError(
                "compare needs other=<second model>, e.g. yolo compare model=a.pt other=a.onnx source=img/"
            )
        model.compare(other, **overrides)
    else:
        raise ConfigError(f"unknown mode '{mode}'")


if __name__ == "__main__":
    entrypoint()
