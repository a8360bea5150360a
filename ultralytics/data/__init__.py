"""Input side of prediction: letterboxing (augment) and image/video/tensor sources (loaders)."""
