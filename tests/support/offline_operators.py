"""Runs the three operators on local checkpoints; prints one JSON line.

Started by tests/integration/test_security.py in a subprocess whose network is blocked
(tests/support/netblock/sitecustomize.py) and whose ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` / ``YOLO_OFFLINE`` are unset, so that any hidden
download or phone-home would be attempted, recorded and fail. The database
and plugin directory come from the environment (the test session's).

Usage: ``python offline_operators.py JOB_JSON`` with ``images``,
``checkpoints`` (backend -> local path), ``clip_model``, ``clip_checkpoint``.
"""

from __future__ import annotations

import json
import sys
import uuid


def main(job: dict) -> dict:
    import fiftyone as fo
    import fiftyone.operators as foo

    ds = fo.Dataset(f"offline-{uuid.uuid4().hex[:8]}")
    out = {}
    try:
        ds.add_samples([fo.Sample(filepath=p) for p in job["images"]])
        for backend, checkpoint in job["checkpoints"].items():
            field = "autolabels_" + backend.replace("-", "_")
            result = foo.execute_operator(
                "@stoplight/autolabel/zero_shot_detect",
                ctx={"dataset": ds, "view": ds.view()},
                params={"view_target": "DATASET", "backend": backend, "checkpoint": checkpoint,
                        "classes": ["person", "bus"], "label_field": field, "device": "cpu",
                        "confidence_threshold": 0.0},
            )
            out[f"zero_shot_detect[{backend}]"] = [result.error, ds.count(f"{field}.detections")]
        field = "autolabels_owlv2"
        result = foo.execute_operator(
            "@stoplight/autolabel/compute_label_embeddings",
            ctx={"dataset": ds, "view": ds.view()},
            params={"label_field": field, "model_name": job["clip_model"],
                    "pretrained": job["clip_checkpoint"], "device": "cpu"},
        )
        out["compute_label_embeddings"] = [result.error, ds.count(f"{field}.detections.embedding")]
        result = foo.execute_operator(
            "@stoplight/autolabel/score_labels",
            ctx={"dataset": ds, "view": ds.view()},
            params={"label_field": field, "device": "cpu", "rer": False},
        )
        out["score_labels"] = [result.error, ds.count(f"{field}.detections.uncertainty")]
    finally:
        ds.delete()
    return out


if __name__ == "__main__":
    results = main(json.loads(sys.argv[1]))
    # the control: the block is in force in this process
    from sitecustomize import control

    results["control"] = control()
    print("RESULT " + json.dumps(results), flush=True)
