"""Downstream training on reviewed labels: auto-labels vs human labels.

- :mod:`.export`: kept labels (accepted, optionally green) in YOLO format
- :mod:`.yolo`: ultralytics training, testing and predictions, offline and
  with weights-only checkpoint loading
- :mod:`.compare`: the same detector trained on each label source, tested
  on held-out human labels, with labels used, review time and cost
- :mod:`.operators`: the App layer
"""

from .compare import compare_auto_vs_human, format_report, review_effort, split_views
from .export import export_training_set, write_data_yaml
from .yolo import evaluate_yolo, predict_to_field, train_yolo

__all__ = [
    "compare_auto_vs_human",
    "evaluate_yolo",
    "export_training_set",
    "format_report",
    "predict_to_field",
    "review_effort",
    "split_views",
    "train_yolo",
    "write_data_yaml",
]
