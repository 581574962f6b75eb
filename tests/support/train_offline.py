"""Runs ``train_on_accepted`` on an existing dataset; prints one JSON line.

Started by tests/integration/test_training.py in a subprocess whose network is blocked
(tests/support/netblock/sitecustomize.py) and whose ``YOLO_OFFLINE`` is unset, so
that any download or phone-home that ultralytics would attempt while
training, testing or predicting is recorded and fails. The database and
plugin directory come from the environment (the test session's).

Usage: ``python train_offline.py JOB_JSON`` with ``dataset`` and ``params``.
"""

from __future__ import annotations

import json
import sys


def main(job: dict) -> dict:
    import fiftyone as fo
    import fiftyone.operators as foo

    ds = fo.load_dataset(job["dataset"])
    result = foo.execute_operator(
        "@stoplight/autolabel/train_on_accepted",
        ctx={"dataset": ds, "view": ds.view(), "params": job["params"]},
    )
    return {"error": result.error}


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    # the control: the block is in force in this process
    from sitecustomize import control

    out["control"] = control()
    print("RESULT " + json.dumps(out), flush=True)
