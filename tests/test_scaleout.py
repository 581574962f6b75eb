"""Scale-out (issue 6, item 3): labeling split over several worker processes.

Workers are separate processes (:mod:`shard_worker`) sharing the test
session's mongod, as workers on several machines share one
``FIFTYONE_DATABASE_URI``. Checked: every sample is labeled exactly once,
the workers claimed disjoint chunks, the merged run record sums the
workers' records; and a worker killed with SIGKILL mid-chunk is replaced
by another that finishes its chunk once the lease has expired, labeling
only what was missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fiftyone as fo
import pytest

from stoplight.plugins.common import workqueue

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
BACKEND = "owlv2"
CLASSES = ["person", "bus"]


class Worker:
    def __init__(self, job: dict):
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "shard_worker.py"), json.dumps(job)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.done = 0
        self.summary = None

    def wait_for(self, pred, timeout=300.0):
        """Reads lines until ``pred(line)``; returns the line (None at EOF)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.startswith("progress"):
                self.done = int(line.split()[1])
            elif line.startswith("done "):
                self.summary = json.loads(line[5:])
            if pred(line):
                return line
        raise AssertionError("worker timed out")

    def finish(self, timeout=300.0) -> dict:
        self.wait_for(lambda line: line.startswith("done "), timeout)
        rc = self.proc.wait(60)
        err = self.proc.stderr.read()
        assert rc == 0 and self.summary is not None, err[-3000:]
        return self.summary


@pytest.fixture()
def big(image_dir):
    paths = sorted(str(p) for p in image_dir.glob("*.*"))
    ds = fo.Dataset(f"stoplight-scaleout-{uuid.uuid4().hex[:8]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=p) for p in (paths * 3)[:24]])
    yield ds
    ds.delete()


def _job(ds, tiny_checkpoint, group, worker, **kw):
    return dict(dict(dataset=ds.name, group=group, worker=worker, backend=BACKEND,
                     checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES, chunk_size=3,
                     lease_s=30, predict_delay=0.05), **kw)


def _labels(ds):
    ds.reload()
    return {sid: [d.id for d in dets.detections] if dets else None
            for sid, dets in zip(*ds.values(["id", "autolabels"]))}


def test_two_workers_label_each_sample_once(big, tiny_checkpoint, tmp_path):
    group = "scale_" + uuid.uuid4().hex[:6]
    go = tmp_path / "go"
    workers = [Worker(_job(big, tiny_checkpoint, group, w, go=str(go))) for w in ("w1", "w2")]
    for w in workers:
        assert w.wait_for(lambda line: line.startswith("ready")), w.proc.stderr.read()[-3000:]
    go.touch()
    summaries = [w.finish() for w in workers]

    n = len(big)
    labels = _labels(big)
    assert all(v is not None for v in labels.values()), "a sample was left unlabeled"
    # each worker labeled its chunks; none was labeled twice
    chunks = [set(s["chunk_ids"]) if "chunk_ids" in s else set(s["chunks"]) for s in summaries]
    assert chunks[0] and chunks[1], f"one worker got no chunk: {chunks}"
    assert not chunks[0] & chunks[1]
    assert chunks[0] | chunks[1] == set(range(8))
    assert sum(s["num_processed_samples"] for s in summaries) == n
    assert sum(s["num_skipped_samples"] for s in summaries) == 0
    all_ids = [i for ids in labels.values() for i in ids]
    assert len(all_ids) == len(set(all_ids))
    assert sum(s["num_labels"] for s in summaries) == len(all_ids)

    # one record per worker, and the merged one
    for s in summaries:
        cfg = big.get_run_info(s["run_key"]).config
        assert cfg.status == "completed" and cfg.num_processed_samples == s["num_processed_samples"]
    merged = big.get_run_info(group).config
    assert merged.status == "completed"
    assert merged.num_processed_samples == merged.num_labeled_samples == merged.num_target_samples == n
    assert merged.num_labels == merged.num_labels_in_field == len(all_ids)
    assert sorted(w["worker"] for w in merged.workers) == ["w1", "w2"]
    state = workqueue.progress(big, group)
    assert state["done"] == state["chunks"] == 8
    workqueue.delete(big, group)


def test_killed_worker_is_replaced_after_its_lease(big, tiny_checkpoint):
    group = "scale_" + uuid.uuid4().hex[:6]
    n = len(big)
    a = Worker(_job(big, tiny_checkpoint, group, "a", lease_s=3, chunk_size=6,
                    predict_delay=0.3, write_every=1))
    # kill it in the middle of its second chunk, after some of it was written
    a.wait_for(lambda line: line.startswith("progress") and 8 <= int(line.split()[1]) < 12)
    a.proc.kill()
    a.proc.wait(60)
    before = _labels(big)
    labeled_before = {sid: ids for sid, ids in before.items() if ids is not None}
    assert 6 < len(labeled_before) < n, len(labeled_before)
    held = [c for c in workqueue.chunks(big, group) if c["status"] == "claimed"]
    assert [c["worker"] for c in held] == ["a"]

    b = Worker(_job(big, tiny_checkpoint, group, "b", lease_s=3, chunk_size=6))
    s = b.finish()
    after = _labels(big)
    assert all(v is not None for v in after.values())
    # what the killed worker wrote was kept, not redone
    assert all(after[sid] == ids for sid, ids in labeled_before.items())
    assert s["num_processed_samples"] == n - len(labeled_before)
    assert held[0]["chunk"] in s["chunks"]
    all_ids = [i for ids in after.values() for i in ids]
    assert len(all_ids) == len(set(all_ids))

    # worker b's run noticed that worker a's process is gone
    assert big.get_run_info(f"{group}_a").config.status == "killed"
    merged = big.get_run_info(group).config
    assert merged.status == "completed"
    assert merged.num_labeled_samples == merged.num_target_samples == n
    assert merged.num_labels_in_field == len(all_ids)
    assert sorted(w["worker"] for w in merged.workers) == ["a", "b"]
    workqueue.delete(big, group)


def test_delegated_operations_with_a_shard_group(dataset, tiny_checkpoint):
    """The operator's ``shard_group``: two queued delegated operations with
    the same params cooperate (here run one after the other by one
    ``execute_queued_operations``; ``fiftyone delegated launch`` on each
    machine runs them side by side)."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    group = "scale_" + uuid.uuid4().hex[:6]
    params = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES,
                  confidence_threshold=0.0, device="cpu", batch_size=2, delegate=True,
                  shard_group=group, chunk_size=3)
    for _ in range(2):
        result = foo.execute_operator("@stoplight/autolabel/zero_shot_detect",
                                      ctx={"dataset": dataset, "params": params},
                                      request_delegation=True)
        assert result.delegated
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    assert dataset.exists("autolabels").count() == len(dataset)
    merged = dataset.get_run_info(group).config
    assert merged.status == "completed"
    assert len(merged.workers) == 2
    assert merged.num_processed_samples == merged.num_labeled_samples == len(dataset)
    workqueue.delete(dataset, group)
