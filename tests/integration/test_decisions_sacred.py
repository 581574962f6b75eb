"""Human decisions are never lost: random sequences of every operation.

Each sequence (fixed seed) runs a random mix of detect (overwrite=True),
embed (overwrite=True), score, calibrate, assign, review, undo and finalize
on real digit images with real auto-labels. Only review and undo are a
person's actions; after every other operation, every label a person
accepted or rejected must still exist with the same decision, reviewer,
time, class and box.
"""

from __future__ import annotations

import numpy as np
import pytest
from digits_dataset import build_digits_dataset

from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.review.decisions import review_labels, undo_last
from stoplight.plugins.review.finalize import finalize_labels
from stoplight.plugins.scoring import embeddings as E
from stoplight.plugins.scoring.scores import score_labels
from stoplight.plugins.triage import workflow

SEQUENCES = 6
STEPS = 10
FIELD = "autolabels"
OPS = ("detect", "embed", "score", "calibrate", "assign", "review", "review", "undo", "finalize")
USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def base(tmp_root):
    ds, _ = build_digits_dataset(seed=3, copies=1, out_dir=str(tmp_root / "digits-sacred"))
    ids = ds.values("id")
    ds.select(ids[: len(ids) // 2]).tag_samples("verified")
    yield ds
    ds.delete()


@pytest.fixture(scope="module")
def clip(tmp_root):
    return E.build_random_clip(str(tmp_root / "checkpoints" / "clip-sacred"))


def decided_state(ds) -> dict:
    """label id -> (review, reviewed_by, reviewed_at, label, box) of decided labels."""
    root = f"{FIELD}.detections"
    cols = ds.values([f"{root}.{a}" for a in ("id", "review", "reviewed_by", "reviewed_at", "label",
                                              "bounding_box")])
    return {
        lid: (r, by, at, lab, tuple(round(v, 6) for v in box))
        for per_sample in zip(*cols)
        for lid, r, by, at, lab, box in zip(*(c or [] for c in per_sample))
        if r in ("accepted", "rejected")
    }


def run_op(op, ds, rng, tiny_checkpoint, clip):
    if op == "detect":
        view = ds.take(4, seed=int(rng.integers(1 << 30)))
        zero_shot_detect(view, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"),
                         classes=[str(d) for d in range(10)], label_field=FIELD, overwrite=True,
                         confidence_threshold=float(rng.choice([0.0, 0.5])), device="cpu", progress=False,
                         # the digits' auto-labels come from another labeler: taken over explicitly
                         adopt_field=True)
    elif op == "embed":
        name, ckpt = clip
        E.compute_label_embeddings(ds.take(8, seed=int(rng.integers(1 << 30))), FIELD, model_name=name,
                                   pretrained=ckpt, device="cpu", overwrite=True, progress=False)
    elif op == "score":
        # (RER's autoencoders cost the most and write the same way; its
        # definition is tested in test_signals)
        score_labels(ds, FIELD, rer=False, progress=False)
    elif op == "calibrate":
        workflow.calibrate_triage(ds.match_tags("verified"), FIELD, "ground_truth", calibration_key="triage")
    elif op == "assign":
        if ds.has_run("triage"):
            workflow.assign_queues(ds, FIELD, calibration_key="triage")
    elif op == "finalize":
        finalize_labels(ds, FIELD, "final", include_green=bool(rng.integers(2)))
    elif op == "review":
        ids = ds.values(f"{FIELD}.detections.id", unwind=True)
        if ids:
            pick = rng.choice(ids, size=min(len(ids), int(rng.integers(1, 40))), replace=False).tolist()
            action = str(rng.choice(["accept", "reject", "reset"]))
            out = review_labels(ds, FIELD, action, label_ids=pick, user=str(rng.choice(USERS)))
            state = {"accept": "accepted", "reject": "rejected", "reset": "pending"}[action]
            reviews = dict(zip(*ds.values([f"{FIELD}.detections.id", f"{FIELD}.detections.review"],
                                          unwind=True)))
            assert all(reviews[i] == state for i in pick), "a person's decision was not stored"
            assert out["num_labels"] == len(pick)
    elif op == "undo":
        try:
            undo_last(ds, user=str(rng.choice(USERS)))
        except ValueError:
            pass  # nothing of that user's to undo
    else:
        raise AssertionError(op)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEQUENCES))
def test_random_operation_sequences_keep_decisions(base, seed, tiny_checkpoint, clip):
    ds = base.clone()
    try:
        rng = np.random.default_rng(seed)
        # every sequence starts with some decisions to protect
        run_op("review", ds, rng, tiny_checkpoint, clip)
        ops = [str(o) for o in rng.choice(OPS, size=STEPS)]
        for step, op in enumerate(ops):
            before = decided_state(ds)
            run_op(op, ds, rng, tiny_checkpoint, clip)
            after = decided_state(ds)
            if op in ("review", "undo"):
                continue  # a person's action may change decisions
            lost = {k: v for k, v in before.items() if after.get(k) != v}
            assert not lost, f"seq {seed} step {step} ({op}) changed {len(lost)} decisions, e.g. {next(iter(lost))}"
    finally:
        ds.delete()


def test_overwrite_keeps_decided_labels_and_drops_their_duplicates(base, tiny_checkpoint):
    ds = base.clone()
    try:
        sample = ds.first()
        dets = sample[FIELD].detections
        kept, dropped = dets[0], dets[1]
        review_labels(ds, FIELD, "accept", label_ids=[kept.id], user="alice")
        review_labels(ds, FIELD, "reject", label_ids=[dets[2].id], user="alice")
        summary = zero_shot_detect(ds.select(sample.id), backend="owlv2", checkpoint=tiny_checkpoint("owlv2"),
                                   classes=[str(d) for d in range(10)], label_field=FIELD, overwrite=True,
                                   confidence_threshold=0.0, device="cpu", progress=False, adopt_field=True)
        assert summary["num_kept_decisions"] == 2
        sample.reload()
        after = sample[FIELD].detections
        by_id = {d.id: d for d in after}
        assert by_id[kept.id].review == "accepted" and by_id[dets[2].id].review == "rejected"
        assert dropped.id not in by_id  # undecided: replaced by the new run's labels
        # no new label repeats a decided one
        from stoplight.plugins.autolabel.boxes import iou_xywh

        for d in after:
            if d.id in (kept.id, dets[2].id):
                continue
            for k in (kept, dets[2]):
                assert not (d.label == k.label and iou_xywh(d.bounding_box, k.bounding_box) >= 0.5)
        assert len(after) > 2
    finally:
        ds.delete()
