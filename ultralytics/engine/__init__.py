"""The user-facing engine: YOLO model wrapper, predictor, exporter, validator and Results."""
