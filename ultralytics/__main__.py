"""`python -m ultralytics ...` runs the `yolo` command (useful where the console script is not on PATH)."""

from ultralytics.cfg import entrypoint

entrypoint()
