"""score_labels on hand-built labels in a real MongoDB (no models involved).

Every expected value below follows from the constructed boxes, classes,
class scores and embeddings, so the tests pin the definitions documented in
``plugins/scoring/scores.py``.
"""

import math
import uuid

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from stoplight.plugins.scoring import scores as S
from stoplight.plugins.scoring import signals

LABELS = "autolabels"
URI = "@stoplight/autolabel/score_labels"


@pytest.fixture()
def ds():
    d = fo.Dataset(f"stoplight-scores-{uuid.uuid4().hex[:8]}")
    yield d
    if fo.dataset_exists(d.name):
        d.delete()


def _det(label, box, conf=None, scores=None, **attrs):
    d = fo.Detection(label=label, bounding_box=box, confidence=conf, **attrs)
    if scores is not None:
        d["class_scores"] = scores
    return d


def _by_name(ds, attr, field=LABELS):
    """``{label name attr: value}`` of every label (names are unique here)."""
    out = {}
    for dets in ds.values(field):
        for d in dets.detections if dets else []:
            out[d["name"]] = d[attr] if d.has_field(attr) else None
    return out


# Box geometry: a 0.4 x 0.4 box and a shifted copy with IoU exactly 0.8:
# shifting x by s gives inter = (0.4 - s) * 0.4, union = 0.32 - inter,
# IoU = 0.8 <=> s = 0.4 / 9.
BOX = [0.1, 0.1, 0.4, 0.4]
SHIFT = 0.4 / 9
BOX_08 = [0.1 + SHIFT, 0.1, 0.4, 0.4]


@pytest.fixture()
def constructed(ds):
    """3 samples; the expected matches are listed next to each label."""
    ds.add_samples([
        fo.Sample(
            filepath="/nonexistent/a.jpg",
            autolabels=fo.Detections(detections=[
                # same class, IoU 0.8 -> mistakenness 0, loc 0.2
                _det("cat", BOX_08, 0.9, [0.8, 0.2], name="same"),
                # other class, IoU 1 -> mistakenness 1, loc 0
                _det("cat", [0.6, 0.6, 0.3, 0.3], 0.7, [0.5, 0.5], name="cross"),
            ]),
            ground_truth=fo.Detections(detections=[
                _det("cat", BOX), _det("dog", [0.6, 0.6, 0.3, 0.3]),
            ]),
        ),
        fo.Sample(
            filepath="/nonexistent/b.jpg",
            autolabels=fo.Detections(detections=[
                # unmatched, confident -> mistakenness 1, spurious
                _det("dog", [0.0, 0.0, 0.1, 0.1], 0.97, [0.0, 1.0], name="spur"),
                # unmatched, not confident enough -> mistakenness 1, not spurious
                _det("dog", [0.5, 0.0, 0.1, 0.1], 0.5, [0.25, 0.75], name="weak"),
                # unmatched, no class scores -> hardness/margin unset
                _det("cat", [0.0, 0.5, 0.1, 0.1], 0.96, name="noscores"),
            ]),
            # two reference labels nothing matches -> possible_missing 2
            ground_truth=fo.Detections(detections=[
                _det("dog", [0.7, 0.7, 0.2, 0.2]), _det("cat", [0.3, 0.7, 0.1, 0.1]),
            ]),
        ),
        fo.Sample(filepath="/nonexistent/c.jpg"),  # no labels at all
    ])
    return ds


def test_reference_mistakenness_hardness_and_counts(constructed):
    ds = constructed
    summary = S.score_labels(ds, LABELS, reference_field="ground_truth", progress=False)

    mist = _by_name(ds, "mistakenness")
    assert mist == {"same": 0.0, "cross": 1.0, "spur": 1.0, "weak": 1.0, "noscores": 1.0}
    loc = _by_name(ds, "mistakenness_loc")
    assert loc["same"] == pytest.approx(0.2, abs=1e-6)
    assert loc["cross"] == pytest.approx(0.0, abs=1e-6)
    assert loc["spur"] is None and loc["weak"] is None and loc["noscores"] is None

    a, b, c = ds.values(S.possible_missing_field(LABELS))
    assert (a, b) == (0, 2) and c == 0
    assert ds.values(S.possible_spurious_field(LABELS)) == [0, 2, 0]  # spur + noscores

    hard, marg = _by_name(ds, "hardness"), _by_name(ds, "margin")
    h = lambda p: -sum(x * math.log(x) for x in p if x > 0) / math.log(2)  # noqa: E731
    assert hard["same"] == pytest.approx(h([0.8, 0.2]))
    assert hard["cross"] == pytest.approx(1.0)
    assert hard["spur"] == pytest.approx(0.0)
    assert hard["weak"] == pytest.approx(h([0.25, 0.75]))
    assert hard["noscores"] is None and marg["noscores"] is None
    assert marg["same"] == pytest.approx(0.6)
    assert marg["cross"] == pytest.approx(0.0)
    assert marg["spur"] == pytest.approx(1.0)
    assert marg["weak"] == pytest.approx(0.5)

    # uncertainty: log-odds pool of hardness (weight 1/4) and 1 - confidence
    # (weight 1), no other signals; too few labels to adapt the weights
    unc = _by_name(ds, "uncertainty")
    lo = lambda t: math.log(t / (1 - t))  # noqa: E731
    pooled = (0.25 * lo(h([0.8, 0.2])) + lo(0.1)) / 1.25
    assert unc["same"] == pytest.approx(1 / (1 + math.exp(-pooled)))
    assert unc["noscores"] == pytest.approx(0.04)

    # nothing of the temporary evaluation is left behind
    assert ds.list_evaluations() == []
    schema = ds.get_field_schema(flat=True)
    assert not [p for p in schema if "stoplight_tmp" in p]
    assert all(isinstance(schema[f"{LABELS}.detections.{a}"], fo.FloatField)
               for a in ("hardness", "margin", "mistakenness", "mistakenness_loc", "uncertainty"))

    # the run record
    assert summary["num_matched_same_class"] == 1
    assert summary["num_matched_other_class"] == 1
    assert summary["num_unmatched"] == 3
    assert summary["num_possible_missing"] == 2
    assert summary["num_possible_spurious"] == 2
    key = summary["run_key"]
    cfg = ds.get_run_info(key).config
    assert cfg.stoplight_method == "score_labels" and cfg.status == "completed"
    assert cfg.reference_field == "ground_truth" and cfg.spurious_confidence == 0.95
    assert cfg.num_scored_labels == 5
    results = ds.load_run_results(key)
    assert results.per_class["cat"]["count"] == 3
    assert results.per_class["dog"]["mean_mistakenness"] == 1.0
    assert any("knn_agreement" in n for n in summary["notes"])  # no embeddings


def test_spurious_confidence_is_a_parameter(constructed):
    S.score_labels(constructed, LABELS, reference_field="ground_truth",
                   spurious_confidence=0.5, progress=False)
    assert constructed.values(S.possible_spurious_field(LABELS)) == [0, 3, 0]


def _cluster_dataset(ds, rng):
    """Two classes in two tight 16-d clusters; label "odd" is an A inside B."""
    centers = np.eye(16)[:2] * 3.0
    samples = []
    for i in range(24):
        cls = "A" if i % 2 == 0 else "B"
        emb = centers[i % 2] + 0.05 * rng.standard_normal(16)
        name = f"{cls}{i}"
        if i == 1:  # a B-located embedding labeled A
            cls, name = "A", "odd"
        samples.append(fo.Sample(
            filepath=f"/nonexistent/{i}.jpg",
            autolabels=fo.Detections(detections=[
                _det(cls, [0.1, 0.1, 0.3, 0.3], 0.8, name=name, embedding=emb.tolist()),
            ]),
        ))
    ds.add_samples(samples)
    return ds


def test_embedding_signals_flag_the_label_inside_the_other_cluster(ds):
    _cluster_dataset(ds, np.random.default_rng(0))
    summary = S.score_labels(ds, LABELS, k=5, progress=False)
    knn = _by_name(ds, "knn_agreement")
    rer = _by_name(ds, "rer")
    assert knn["odd"] < 0.2
    assert rer["odd"] > 1.0
    others = [v for n, v in knn.items() if n != "odd"]
    assert np.median(others) > 0.8
    assert np.median([v for n, v in rer.items() if n != "odd"]) < 1.0
    unc = _by_name(ds, "uncertainty")
    assert unc["odd"] == max(unc.values())
    assert summary["num_embedded_labels"] == 24
    assert summary["difficulty"] is not None and set(summary["per_class_rer"]) == {"A", "B"}
    results = ds.load_run_results(summary["run_key"])
    assert results.difficulty == pytest.approx(summary["difficulty"])
    # no compute_label_embeddings run -> no clip signals, said so
    assert any("clip_agreement" in n for n in summary["notes"])
    assert _by_name(ds, "clip_agreement") == {n: None for n in knn}


def test_clip_agreement_and_clip_hardness_from_an_embeddings_run(ds):
    """A recorded compute_label_embeddings run with class-name prompts."""
    from stoplight.plugins.common import provenance

    _cluster_dataset(ds, np.random.default_rng(1))
    txt = np.eye(16)[:2].astype(np.float32)  # "A" -> cluster A, "B" -> cluster B
    key = "emb_run"
    record = provenance.start_run(ds, key, method="compute_label_embeddings",
                                  label_field=LABELS, embeddings_attr="embedding")
    provenance.finish_run(ds, key, record, dict(status="completed", prompts=["A", "B"],
                                                text_embeddings=txt.tolist()))
    summary = S.score_labels(ds, LABELS, rer=False, progress=False)
    assert summary["embeddings_run_key"] == key
    ca = _by_name(ds, "clip_agreement")
    assert ca["odd"] < -0.5 and ca["A0"] > 0.5 and ca["B3"] > 0.5
    # no class_scores: hardness from softmax(100 cos) over the prompts
    hard = _by_name(ds, "hardness")
    emb = np.asarray(ds.values(f"{LABELS}.detections.embedding"))[:, 0]
    expect = signals.hardness(S.clip_scores(emb, txt))
    assert [hard[d["name"]] for dets in ds.values(LABELS) for d in dets.detections] == \
        pytest.approx(expect.tolist())
    assert summary["num_hardness_from_clip"] == 24
    assert _by_name(ds, "rer") == {n: None for n in hard}


def test_consensus_with_a_second_field(ds):
    ds.add_samples([
        fo.Sample(
            filepath="/nonexistent/a.jpg",
            autolabels=fo.Detections(detections=[
                _det("cat", BOX, 0.9, name="agreed"),
                _det("dog", [0.6, 0.6, 0.3, 0.3], 0.9, name="otherclass"),
                _det("cat", [0.0, 0.0, 0.05, 0.05], 0.9, name="alone"),
            ]),
            other=fo.Detections(detections=[
                _det("cat", BOX_08, 0.6), _det("cat", [0.6, 0.6, 0.3, 0.3], 0.8),
            ]),
            third=fo.Detections(detections=[_det("cat", BOX, None)]),
        ),
    ])
    S.score_labels(ds, LABELS, consensus_fields=["other"], progress=False)
    assert _by_name(ds, "consensus") == pytest.approx(
        {"agreed": 0.6, "otherclass": 0.0, "alone": 0.0})
    # a missing confidence is a full vote; two models average
    S.score_labels(ds, LABELS, consensus_fields="other,third", progress=False)
    assert _by_name(ds, "consensus") == pytest.approx(
        {"agreed": 0.8, "otherclass": 0.0, "alone": 0.0})
    assert ds.list_evaluations() == []


def test_operator_scores_the_dataset(constructed):
    result = foo.execute_operator(
        URI, ctx={"dataset": constructed},
        params={"label_field": LABELS, "reference_field": "ground_truth",
                "spurious_confidence": 0.9},
    )
    assert result.error is None, result.error
    assert _by_name(constructed, "mistakenness")["same"] == 0.0
    assert constructed.values(S.possible_spurious_field(LABELS)) == [0, 2, 0]
    (key,) = constructed.list_runs()
    cfg = constructed.get_run_info(key).config
    assert cfg.stoplight_method == "score_labels" and cfg.spurious_confidence == 0.9


def test_operator_delegated(constructed):
    from fiftyone.operators.delegated import DelegatedOperationService

    result = foo.execute_operator(
        URI, ctx={"dataset": constructed},
        params={"label_field": LABELS, "reference_field": "ground_truth", "delegate": True},
        request_delegation=True,
    )
    assert result.delegated
    assert not constructed.list_runs()  # queued, not run
    DelegatedOperationService().execute_queued_operations(dataset_name=constructed.name)
    constructed.reload()
    assert _by_name(constructed, "mistakenness")["same"] == 0.0
    (key,) = constructed.list_runs()
    assert constructed.get_run_info(key).config.status == "completed"


def test_sdk_progress_bar_default(constructed):
    summary = S.score_labels(constructed, LABELS, reference_field="ground_truth")
    assert summary["status"] == "completed"


def test_review_attributes_untouched_and_rerun_idempotent(ds):
    _cluster_dataset(ds, np.random.default_rng(2))
    # a human reviewed some labels
    sids, lids = ds.values(["id", f"{LABELS}.detections.id"])
    reviewed = {lids[i][0]: ("accepted" if i % 2 else "rejected") for i in range(0, 24, 3)}
    ds.set_label_values(f"{LABELS}.detections.review", reviewed)
    ds.set_label_values(f"{LABELS}.detections.reviewed_by", {k: "alice" for k in reviewed})
    before = ds.values([f"{LABELS}.detections.review", f"{LABELS}.detections.reviewed_by"])

    S.score_labels(ds, LABELS, k=5, progress=False)
    first = {a: _by_name(ds, a) for a in S.SCORE_ATTRS}
    S.score_labels(ds, LABELS, k=5, progress=False)
    second = {a: _by_name(ds, a) for a in S.SCORE_ATTRS}

    after = ds.values([f"{LABELS}.detections.review", f"{LABELS}.detections.reviewed_by"])
    assert after == before
    assert first == second
    assert first["knn_agreement"]["odd"] is not None
    assert len(ds.list_runs()) == 2


def test_invalid_inputs(constructed):
    with pytest.raises(ValueError, match="label_field"):
        S.score_labels(constructed, "nope", progress=False)
    with pytest.raises(ValueError, match="reference_field"):
        S.score_labels(constructed, LABELS, reference_field="nope", progress=False)
    with pytest.raises(ValueError, match="spurious_confidence"):
        S.score_labels(constructed, LABELS, spurious_confidence=2, progress=False)
    with pytest.raises(ValueError, match="consensus_fields"):
        S.score_labels(constructed, LABELS, consensus_fields=["nope"], progress=False)
    assert constructed.list_runs() == []


def test_mistakenness_from_matches_pure():
    mist, loc = S.mistakenness_from_matches(
        ["a", "a", "b"], ["a", "b", None], np.array([0.9, 0.5, np.nan]))
    assert mist.tolist() == [0.0, 1.0, 1.0]
    assert loc[:2] == pytest.approx([0.1, 0.5]) and np.isnan(loc[2])


def test_scoring_a_view_touches_only_its_labels(constructed):
    view = constructed.limit(1)
    summary = S.score_labels(view, LABELS, reference_field="ground_truth", progress=False)
    assert summary["num_scored_labels"] == 2
    mist = _by_name(constructed, "mistakenness")
    assert mist == {"same": 0.0, "cross": 1.0, "spur": None, "weak": None, "noscores": None}
    assert constructed.values(S.possible_missing_field(LABELS)) == [0, None, None]
    assert constructed.list_evaluations() == []


# ----------------------------------------------------- run recording


def test_recorded_run_records_every_ending(ds):
    """completed / failed (error re-raised) / interrupted (generator closed) /
    flush failure after a successful body (raised, recorded as failed)."""
    from stoplight.plugins.common import provenance

    def start(key):
        return provenance.start_run(ds, key, method="test")

    def summary(key):
        return lambda status: {"run_key": key, "status": status, "num_things": 3}

    rec = start("ok")
    with provenance.recorded_run(ds, "ok", rec, summary("ok")) as run:
        pass
    assert run.summary["status"] == "completed"
    assert ds.get_run_info("ok").config.status == "completed"
    assert ds.get_run_info("ok").config.num_things == 3

    rec = start("boom")
    flushed = []
    with pytest.raises(ZeroDivisionError):
        with provenance.recorded_run(ds, "boom", rec, summary("boom"),
                                     flush=lambda: flushed.append(1)):
            1 / 0
    assert flushed == [1]  # what was computed is still written
    assert ds.get_run_info("boom").config.status == "failed"

    def gen():
        rec = start("gen")
        with provenance.recorded_run(ds, "gen", rec, summary("gen")):
            yield 1
            yield 2

    g = gen()
    next(g)
    g.close()
    assert ds.get_run_info("gen").config.status == "interrupted"

    def bad_flush():
        raise OSError("disk full")

    rec = start("late")
    with pytest.raises(OSError, match="disk full"):
        with provenance.recorded_run(ds, "late", rec, summary("late"), flush=bad_flush):
            pass
    assert ds.get_run_info("late").config.status == "failed"

    # a flush failure after the body's own error is logged, not raised over it
    rec = start("both")
    with pytest.raises(KeyError):
        with provenance.recorded_run(ds, "both", rec, summary("both"), flush=bad_flush):
            raise KeyError("first")
    assert ds.get_run_info("both").config.status == "failed"


def test_class_scores_of_different_lengths_in_one_field(ds):
    """Runs with different class lists can share a field: each label's
    hardness comes from its own vector (the raw read falls back to
    ``values()``), and labels without scores get none."""
    ds.add_samples([
        fo.Sample(filepath="/nonexistent/r1.jpg", **{LABELS: fo.Detections(detections=[
            _det("a", BOX, 0.5, [0.5, 0.5], name="two_uniform"),
            _det("b", BOX, 0.9, [1.0, 0.0, 0.0], name="three_certain"),
        ])}),
        fo.Sample(filepath="/nonexistent/r2.jpg", **{LABELS: fo.Detections(detections=[
            _det("c", BOX, 0.4, [0.2, 0.3, 0.5], name="three_mixed"),
            _det("a", BOX, 0.4, name="none"),
        ])}),
    ])
    S.score_labels(ds, LABELS, rer=False, progress=False)
    hard, marg = _by_name(ds, "hardness"), _by_name(ds, "margin")
    assert hard["two_uniform"] == pytest.approx(1.0)
    assert hard["three_certain"] == pytest.approx(0.0, abs=1e-9)
    p = np.array([0.2, 0.3, 0.5])
    assert hard["three_mixed"] == pytest.approx(float(-(p * np.log(p)).sum() / np.log(3)))
    assert marg["three_mixed"] == pytest.approx(0.2)
    assert hard["none"] is None and marg["none"] is None


def test_class_scores_read_in_bulk_match_the_definition(ds):
    """Same-length vectors (the bulk path): hardness equals the definition on
    the stored vector for every label, and a label without scores has none."""
    rng = np.random.default_rng(3)
    vecs = rng.dirichlet(np.ones(4), size=12)
    dets = [_det("x", BOX, 0.5, v.tolist(), name=f"l{i}") for i, v in enumerate(vecs)]
    dets.append(_det("x", BOX, 0.5, name="none"))
    ds.add_samples([fo.Sample(filepath=f"/nonexistent/b{i}.jpg",
                              **{LABELS: fo.Detections(detections=dets[i::3])}) for i in range(3)])
    S.score_labels(ds, LABELS, rer=False, progress=False)
    hard = _by_name(ds, "hardness")
    expected = signals.hardness(vecs)
    for i in range(len(vecs)):
        assert hard[f"l{i}"] == pytest.approx(float(expected[i]), abs=1e-6)
    assert hard["none"] is None


def test_forms_offer_scale_out_only_where_it_runs(constructed):
    """The embedding operator runs on Ray, score_labels does not: its form
    must not offer a field its execution would ignore."""
    import asyncio

    from fiftyone.operators.executor import resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    def props(uri):
        request = dict(dataset_name=constructed.name, params={}, view=[], selected=[],
                       selected_labels=[])
        return asyncio.run(resolve_type(OperatorRegistry(), uri, request)).to_json()["type"]["properties"]

    assert "executor" not in props(URI)
    assert "executor" in props("@stoplight/autolabel/compute_label_embeddings")


# --------------------------------------------------- your own predictions


def _imported(ds, attr, rows, conf=None):
    """One sample whose labels keep their score vectors under ``attr``."""
    dets = []
    for i, row in enumerate(rows):
        d = fo.Detection(label="A" if i % 2 == 0 else "B", bounding_box=BOX, name=f"l{i}",
                         confidence=None if conf is None else conf[i])
        if row is not None:
            d[attr] = row
        dets.append(d)
    ds.add_sample(fo.Sample(filepath="/nonexistent/imported.jpg", predictions=fo.Detections(detections=dets)))


def test_imported_field_with_scores_gets_hardness_and_margin(ds):
    rows = [[0.9, 0.1], [0.5, 0.5], [0.2, 0.6]]
    _imported(ds, "scores", rows, conf=[0.9, 0.5, 0.6])
    # control: the default attribute finds nothing and says so
    summary = S.score_labels(ds, "predictions", rer=False, progress=False)
    assert set(_by_name(ds, "hardness", "predictions").values()) == {None}
    assert any("'class_scores'" in n and "hardness/margin not set" in n for n in summary["notes"])
    S.score_labels(ds, "predictions", scores_attr="scores", rer=False, progress=False)
    hard = _by_name(ds, "hardness", "predictions")
    marg = _by_name(ds, "margin", "predictions")
    expected = signals.hardness(np.asarray(rows))
    for i in range(3):
        assert hard[f"l{i}"] == pytest.approx(expected[i])
    assert marg["l0"] == pytest.approx(0.8) and marg["l1"] == pytest.approx(0.0)
    assert marg["l2"] == pytest.approx(0.5)  # [0.25, 0.75] after normalizing


def test_logits_get_a_softmax(ds):
    logits = [[2.0, -1.0], [0.0, 0.0], [-3.0, 1.0]]
    _imported(ds, "logits", logits, conf=[0.9, 0.5, 0.6])
    summary = S.score_labels(ds, "predictions", scores_attr="logits", rer=False, progress=False)
    soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    hard = _by_name(ds, "hardness", "predictions")
    for i in range(3):
        assert hard[f"l{i}"] == pytest.approx(signals.hardness(soft)[i])
    assert any("read as logits" in n for n in summary["notes"])
    # read as probabilities (negatives clipped to 0) the values differ: the control
    S.score_labels(ds, "predictions", scores_attr="logits", scores_kind="probabilities", rer=False,
                   progress=False)
    assert _by_name(ds, "hardness", "predictions")["l0"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="scores_kind"):
        S.score_labels(ds, "predictions", scores_kind="odds", progress=False)
    with pytest.raises(ValueError, match="scores_attr"):
        S.score_labels(ds, "predictions", scores_attr="no such", progress=False)


def test_without_confidence_or_scores_it_says_what_it_can_compute(ds, caplog):
    _imported(ds, "scores", [None, None, None])
    with caplog.at_level("WARNING"):
        summary = S.score_labels(ds, "predictions", progress=False)
    note = [n for n in summary["notes"] if "no confidence and no per-class scores" in n]
    assert len(note) == 1 and "'scores_attr'" in note[0]
    assert "can still be computed: none" in note[0] and "compute label embeddings" in note[0]
    assert summary["signals_available"] == []
    assert {"hardness", "margin", "confidence", "knn_agreement"} <= set(summary["signals_unavailable"])
    assert any("no confidence and no per-class scores" in r.message for r in caplog.records)
    # with embeddings the kNN and RER signals are listed as still computable
    ds2 = fo.Dataset(f"stoplight-scores-{uuid.uuid4().hex[:8]}")
    try:
        rng = np.random.default_rng(0)
        dets = [fo.Detection(label="AB"[i % 2], bounding_box=BOX, embedding=rng.normal(size=8).tolist())
                for i in range(12)]
        ds2.add_sample(fo.Sample(filepath="/nonexistent/e.jpg", predictions=fo.Detections(detections=dets)))
        s2 = S.score_labels(ds2, "predictions", k=3, rer=False, progress=False)
        assert "knn_agreement" in s2["signals_available"] and "rer" not in s2["signals_available"]
        assert any("can still be computed: knn_agreement" in n for n in s2["notes"])
        assert all(v is not None for v in _by_name_any(ds2, "knn_agreement"))
    finally:
        ds2.delete()
    # a field with confidence is not warned about
    ds.clear()
    _imported(ds, "scores", [None, None], conf=[0.4, 0.8])
    summary = S.score_labels(ds, "predictions", rer=False, progress=False)
    assert not [n for n in summary["notes"] if "no confidence and no per-class scores" in n]
    assert "confidence" in summary["signals_available"]


def _by_name_any(ds, attr, field="predictions"):
    return [d[attr] for dets in ds.values(field) for d in (dets.detections if dets else [])]


def test_operator_form_defaults_come_from_the_core_function():
    import inspect

    from stoplight.plugins.scoring import operators as O

    sig = inspect.signature(S.score_labels).parameters
    defaults = O.score_defaults()
    assert defaults["scores_attr"] == sig["scores_attr"].default == "class_scores"
    assert defaults["k"] == sig["k"].default
    assert set(defaults) == {n for n, p in sig.items() if p.default is not inspect.Parameter.empty}


def test_operator_takes_the_scores_attribute(ds):
    _imported(ds, "scores", [[0.9, 0.1], [0.5, 0.5]], conf=[0.9, 0.5])
    result = foo.execute_operator(
        URI, ctx={"dataset": ds},
        params={"label_field": "predictions", "scores_attr": "scores", "rer": False},
    )
    assert result.error is None, result.error
    assert _by_name(ds, "margin", "predictions") == {"l0": pytest.approx(0.8), "l1": pytest.approx(0.0)}
    (key,) = ds.list_runs()
    assert ds.get_run_info(key).config.scores_attr == "scores"
