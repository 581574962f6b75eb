"""Loads ``shared/data/digitsdet-dev`` (a real detector's auto-labels with
real errors, see its README) as a Stoplight dataset, for benchmarks only.

The export's ``predictions`` become ``autolabels`` with the plugin's
conventions (per-class scores under ``class_scores``); each auto-label's
correctness comes from FiftyOne's ``evaluate_detections`` against
``ground_truth`` (IoU 0.5, same class), the same matching the triage uses.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "digitsdet-dev"


def load_digitsdet(path: str | Path = DEFAULT_DIR, score: bool = True):
    """The dataset (non-persistent) and each auto-label's correctness.

    Args:
        path: the export folder
        score: run ``score_labels`` (hardness, margin, kNN agreement, RER,
            uncertainty on the export's embeddings)

    Returns:
        ``(dataset, correct_of)``: ``correct_of`` maps label id -> bool
    """
    import fiftyone as fo

    path = Path(path)
    if not (path / "samples.json").exists():
        raise SystemExit(f"No digitsdet-dev export at {path} (pass --digitsdet-dir)")
    ds = fo.Dataset.from_dir(str(path), dataset_type=fo.types.FiftyOneDataset,
                             name=f"digitsdet-{uuid.uuid4().hex[:8]}")
    ds.persistent = False
    ds.clone_sample_field("predictions", "autolabels")
    ds.delete_sample_field("predictions")
    ds.set_values("autolabels.detections.class_scores", ds.values("autolabels.detections.scores"))
    if score:
        from stoplight.plugins.scoring.scores import score_labels

        score_labels(ds, "autolabels", progress=False)
    ds.evaluate_detections("autolabels", gt_field="ground_truth", eval_key="truth", iou=0.5, classwise=True,
                           progress=False)
    ids, verdicts = ds.values(["autolabels.detections.id", "autolabels.detections.truth"], unwind=True)
    correct_of = dict(zip(ids, np.asarray(verdicts, dtype=object) == "tp"))
    ds.delete_evaluation("truth")
    return ds, correct_of
