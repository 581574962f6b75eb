"""Threat: an App user (or a run racing a person) overwrites the attributes
that carry a label's meaning.

``compute_label_embeddings(embeddings_attr="review", overwrite=True)`` used
to write a vector into every label's ``review`` (or ``bounding_box``,
``label``, a score...), decided labels included. One list of protected
attributes (:mod:`stoplight.plugins.common.label_attrs`) is enforced by
every writer: a caller-chosen attribute may not be one of them, and a
writer may only write the protected attributes it owns. And
``assign_queues`` must not write ``queue`` / ``p_correct`` / ``review_rank``
on a label a person decided while it ran: MongoDB checks the review state
in the same update.
"""

from __future__ import annotations

import uuid

import fiftyone as fo
import numpy as np
import pytest

from securitykit import db_changes, db_snapshot, http_execute, sdk_execute

pytest_plugins = ["appkit"]

EMBED = "@stoplight/autolabel/compute_label_embeddings"
SCORE = "@stoplight/autolabel/score_labels"
PROTECTED = ["review", "reviewed_by", "bounding_box", "label", "queue", "hardness", "class_scores", "_id"]


@pytest.fixture(scope="module")
def clip(tmp_root):
    from stoplight.plugins.scoring import embeddings as E

    return E.build_random_clip(str(tmp_root / "checkpoints" / "clip-protected"))


@pytest.fixture()
def labeled(image_dir):
    ds = fo.Dataset(f"stoplight-attrs-{uuid.uuid4().hex[:8]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.jpg"))[:3]])
    for i, s in enumerate(ds):
        det = fo.Detection(label="person", bounding_box=[0.1, 0.1, 0.4, 0.4], confidence=0.8,
                           review="accepted" if i == 0 else None, reviewed_by="alice" if i == 0 else None)
        s["autolabels"] = fo.Detections(detections=[det])
        s.save()
    yield ds
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)


def _embed_params(clip, attr):
    name, ckpt = clip
    return dict(label_field="autolabels", model_name=name, pretrained=ckpt, device="cpu",
                embeddings_attr=attr, overwrite=True)


@pytest.mark.parametrize("attr", PROTECTED)
def test_embeddings_never_overwrite_a_protected_attribute_sdk(labeled, clip, attr):
    before = db_snapshot()
    error = sdk_execute(EMBED, {"dataset": labeled, "params": _embed_params(clip, attr)})
    assert error is not None and "embeddings_attr" in error, "it ran"
    assert db_changes(before, db_snapshot()) == []


@pytest.mark.parametrize("attr", ["review", "bounding_box", "queue"])
def test_embeddings_never_overwrite_a_protected_attribute_http(app_server, labeled, clip, attr):
    before = db_snapshot()
    status, text = http_execute(app_server, EMBED, labeled.name, _embed_params(clip, attr), generator=True)
    assert "embeddings_attr" in text and (status >= 400 or '"variant": "error"' in text), text[-1500:]
    assert db_changes(before, db_snapshot()) == []


def test_python_api_has_the_same_list(labeled, clip):
    from stoplight.plugins.scoring.embeddings import compute_label_embeddings
    from stoplight.plugins.scoring.scores import score_labels

    before = db_snapshot()
    for attr in PROTECTED:
        with pytest.raises(ValueError, match="embeddings_attr"):
            compute_label_embeddings(labeled, model_name=clip[0], pretrained=clip[1], device="cpu",
                                     embeddings_attr=attr, overwrite=True, progress=False)
        with pytest.raises(ValueError, match="embeddings_attr"):
            score_labels(labeled, embeddings_attr=attr, rer=False, progress=False)
    assert db_changes(before, db_snapshot()) == []


def test_score_labels_refuses_a_protected_embeddings_attr_sdk(labeled):
    before = db_snapshot()
    error = sdk_execute(SCORE, {"dataset": labeled, "params": dict(embeddings_attr="review", rer=False)})
    assert error is not None and "embeddings_attr" in error
    assert db_changes(before, db_snapshot()) == []


def test_a_free_attribute_is_still_written(labeled, clip):
    assert sdk_execute(EMBED, {"dataset": labeled, "params": _embed_params(clip, "my_vectors")}) is None
    assert sum(d["my_vectors"] is not None for s in labeled for d in s.autolabels.detections) == 3
    assert labeled.values("autolabels.detections.review", unwind=True).count("accepted") == 1


def test_every_writer_refuses_protected_attributes_it_does_not_own(labeled):
    from stoplight.plugins.common import bulk

    sid = labeled.first().id
    lid = labeled.first().autolabels.detections[0].id
    before = db_snapshot()
    for attr in ("review", "label", "queue", "hardness", "_cls"):
        with pytest.raises(ValueError, match="protected label attribute"):
            bulk.write_label_attrs(labeled, "autolabels.detections", [sid], [lid], {attr: ["x"]})
    assert db_changes(before, db_snapshot()) == []
    # its own attribute, declared as owned, is written
    bulk.write_label_attrs(labeled, "autolabels.detections", [sid], [lid], {"queue": ["red"]}, owned=["queue"])
    labeled.reload()
    assert labeled.first().autolabels.detections[0].queue == "red"


@pytest.fixture()
def digits(tmp_root):
    from digits_dataset import build_digits_dataset

    ds, _ = build_digits_dataset(seed=1, copies=1, out_dir=str(tmp_root / "digits-race"))
    ds.persistent = False
    ids = ds.values("id")
    verified = np.random.default_rng(1).choice(ids, size=len(ids) // 2, replace=False)
    ds.select(verified).tag_samples("verified")
    yield ds
    ds.delete()


def test_assign_queues_leaves_alone_labels_decided_while_it_ran(digits, monkeypatch):
    from stoplight.plugins.common import provenance
    from stoplight.plugins.review.decisions import review_labels
    from stoplight.plugins.triage import workflow

    ds = digits
    workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth", calibration_key="cal",
                              target_precision=0.9)
    ids = ds.values("autolabels.detections.id", unwind=True)
    during = ids[:5]
    real_start = provenance.start_run
    decided = []

    def start_run(dataset, run_key, method, **params):
        # assign_queues has read the labels (all undecided) and computed
        # their queues; a person decides five of them right now
        if method == "assign_queues" and not decided:
            decided.append(review_labels(ds, "autolabels", "reject", label_ids=during, user="alice"))
        return real_start(dataset, run_key, method, **params)

    monkeypatch.setattr(provenance, "start_run", start_run)
    workflow.assign_queues(ds, "autolabels", calibration_key="cal", progress=False)
    assert decided, "the decision was not injected"
    values = dict(zip(ids, zip(*[ds.values(f"autolabels.detections.{a}", unwind=True)
                               for a in ("queue", "p_correct", "review_rank", "review")])))
    for lid in during:
        queue, p, rank, review = values[lid]
        assert review == "rejected"
        assert (queue, p, rank) == (None, None, None), "triage wrote on a label a person decided meanwhile"
    others = [values[i] for i in ids if i not in during]
    assert all(v[0] in ("green", "yellow", "red") for v in others)
