"""Zero-shot auto-labeling: backends, the labeling pipeline, its operator."""

from .pipeline import iter_zero_shot_detect, zero_shot_detect

__all__ = ["iter_zero_shot_detect", "zero_shot_detect"]
