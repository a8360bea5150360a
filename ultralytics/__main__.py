"""`python -m ultralytics ...` runs the `yolo` command (useful where the console script is not on PATH)."""

from ultralytics.engine.cli import entrypoint

entrypoint()
