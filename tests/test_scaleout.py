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


# ------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def tiny_clip(tmp_root):
    from stoplight.plugins.scoring.embeddings import build_random_clip

    return build_random_clip(str(tmp_root / "checkpoints" / "clip-scaleout"))


@pytest.fixture()
def labeled_big(big, tiny_checkpoint):
    """``big`` labeled by the real pipeline, 2 labels per image."""
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    zero_shot_detect(big, backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES,
                     confidence_threshold=0.0, device="cpu", progress=False)
    dets = big.values("autolabels")
    for d in dets:
        d.detections = d.detections[:2]
    big.set_values("autolabels", dets)
    assert big.count("autolabels.detections") == 2 * len(big)
    return big


def _embed_job(ds, tiny_clip, group, worker, **kw):
    name, ckpt = tiny_clip
    return dict(dict(kind="embed", dataset=ds.name, group=group, worker=worker, model_name=name,
                     pretrained=ckpt, chunk_size=3, lease_s=30, predict_delay=0.05,
                     batch_size=2), **kw)


def _embeddings(ds):
    """``{label id: embedding or None}`` of every label."""
    ds.reload()
    out = {}
    for dets in ds.values("autolabels"):
        for d in dets.detections:
            out[d.id] = d.get_field("embedding") if d.has_field("embedding") else None
    return out


def test_two_workers_embed_each_label_once(labeled_big, tiny_clip, tmp_path):
    from stoplight.plugins.scoring.scores import latest_embeddings_run

    ds = labeled_big
    group = "emb_" + uuid.uuid4().hex[:6]
    go = tmp_path / "go"
    workers = [Worker(_embed_job(ds, tiny_clip, group, w, go=str(go))) for w in ("e1", "e2")]
    for w in workers:
        assert w.wait_for(lambda line: line.startswith("ready")), w.proc.stderr.read()[-3000:]
    go.touch()
    summaries = [w.finish() for w in workers]

    n = ds.count("autolabels.detections")
    emb = _embeddings(ds)
    assert len(emb) == n and all(v is not None for v in emb.values()), "a label was left unembedded"
    chunks = [set(s["chunks"]) for s in summaries]
    assert chunks[0] and chunks[1], f"one worker got no chunk: {chunks}"
    assert not chunks[0] & chunks[1]
    assert chunks[0] | chunks[1] == set(range(8))
    # each label embedded by exactly one worker: the counts add up to the labels
    assert sum(s["num_embedded_labels"] for s in summaries) == n
    assert sum(s["num_skipped_labels"] for s in summaries) == 0
    assert sum(s["num_failed_labels"] for s in summaries) == 0

    for s in summaries:
        cfg = ds.get_run_info(s["run_key"]).config
        assert cfg.status == "completed" and cfg.num_embedded_labels == s["num_embedded_labels"]
    merged = ds.get_run_info(group).config
    assert merged.status == "completed" and merged.stoplight_method == "compute_label_embeddings"
    assert merged.num_embedded_labels == merged.num_labels_with_embedding == merged.num_labels_in_field == n
    assert sorted(w["worker"] for w in merged.workers) == ["e1", "e2"]
    # score_labels finds the merged record, with one text embedding per class
    key, results = latest_embeddings_run(ds, "autolabels", "embedding")
    assert key == group
    assert sorted(results.prompts) == sorted(ds.distinct("autolabels.detections.label"))
    assert len(results.text_embeddings) == len(results.prompts)
    state = workqueue.progress(ds, group)
    assert state["done"] == state["chunks"] == 8
    workqueue.delete(ds, group)


def test_killed_embedding_worker_is_replaced_after_its_lease(labeled_big, tiny_clip):
    ds = labeled_big
    group = "emb_" + uuid.uuid4().hex[:6]
    n = ds.count("autolabels.detections")
    # chunks of 6 samples = 12 labels; one crop per forward, each written at once
    a = Worker(_embed_job(ds, tiny_clip, group, "a", lease_s=3, chunk_size=6, batch_size=1,
                          predict_delay=0.4, write_every=1))
    a.wait_for(lambda line: line.startswith("progress") and int(line.split()[1]) >= 6)
    # kill it once part of its second chunk is in the database
    deadline = time.time() + 120
    while sum(v is not None for v in _embeddings(ds).values()) < 14:
        assert time.time() < deadline, "worker a made no progress"
        time.sleep(0.1)
    a.proc.kill()
    a.proc.wait(60)
    before = {lid: v for lid, v in _embeddings(ds).items() if v is not None}
    assert 12 < len(before) < n, len(before)
    held = [c for c in workqueue.chunks(ds, group) if c["status"] == "claimed"]
    assert [c["worker"] for c in held] == ["a"]

    b = Worker(_embed_job(ds, tiny_clip, group, "b", lease_s=3, chunk_size=6))
    s = b.finish()
    after = _embeddings(ds)
    assert all(v is not None for v in after.values())
    # what the killed worker wrote was kept, not recomputed
    assert all(after[lid] == v for lid, v in before.items())
    assert s["num_embedded_labels"] == n - len(before)
    assert s["num_skipped_labels"] == len(before) - 12  # its chunk's labels a had embedded
    assert held[0]["chunk"] in s["chunks"]

    # worker b's run noticed that worker a's process is gone
    assert ds.get_run_info(f"{group}_a").config.status == "killed"
    merged = ds.get_run_info(group).config
    assert merged.status == "completed"
    assert merged.num_labels_with_embedding == merged.num_labels_in_field == n
    assert sorted(w["worker"] for w in merged.workers) == ["a", "b"]
    workqueue.delete(ds, group)


def test_delegated_embedding_operations_with_a_shard_group(labeled_big, tiny_clip):
    """``compute_label_embeddings`` with a ``shard_group``: two queued
    delegated operations with the same params share the work."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    ds = labeled_big
    name, ckpt = tiny_clip
    group = "emb_" + uuid.uuid4().hex[:6]
    params = dict(label_field="autolabels", model_name=name, pretrained=ckpt, device="cpu",
                  batch_size=4, delegate=True, shard_group=group, chunk_size=5)
    for _ in range(2):
        result = foo.execute_operator("@stoplight/autolabel/compute_label_embeddings",
                                      ctx={"dataset": ds, "params": params}, request_delegation=True)
        assert result.delegated
    DelegatedOperationService().execute_queued_operations(dataset_name=ds.name)
    emb = _embeddings(ds)
    assert emb and all(v is not None for v in emb.values())
    merged = ds.get_run_info(group).config
    assert merged.status == "completed" and len(merged.workers) == 2
    assert merged.num_embedded_labels == merged.num_labels_with_embedding == len(emb)
    workqueue.delete(ds, group)
