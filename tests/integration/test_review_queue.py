"""The review surface without a browser: signal effects (pure), the
question sources and what a question holds (real FiftyOne, the digits
example triaged), and the panel's methods called with a real
``ExecutionContext`` as the App server builds it: answers, undo and
conflicts land in the review core (stored on the label and in the audit
log) under the reviewer's name.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from digitskit import triaged_digits
from fiftyone.operators.executor import ExecutionContext, Executor

from stoplight.plugins.panels.shared import count_cache, queue_stats
from stoplight.plugins.panels.review_queue import ReviewQueue, view_key
from stoplight.plugins.panels.review_queue import questions as qs
from stoplight.plugins.common import audit
from stoplight.plugins.review.decisions import review_labels
from stoplight.plugins.triage import explain, model, workflow

FIELD = "autolabels"


# -- signal effects (pure) ----------------------------------------------------------


def _calibration(rng, n=600, d=3, classes=("a", "b")):
    x = rng.normal(size=(n, d))
    labels = rng.choice(classes, size=n)
    cidx = np.array([classes.index(c) for c in labels])
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * (cidx == 1)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    sids = [f"s{i}" for i in range(n)]
    folds = model.fold_of(sids, 3)
    _, models = model.cross_fit(x, y, cidx, len(classes), folds, 3, shrinkage=1.0)
    cal = dict(classes=list(classes), signals=[f"x{j}" for j in range(d)], folds=3, models=models)
    return cal, x, labels, folds, cidx


def test_signal_effects_are_the_terms_of_the_logit():
    rng = np.random.default_rng(0)
    cal, x, labels, folds, cidx = _calibration(rng)
    effects = explain.signal_effects(cal, x, labels, folds)
    p = model.predict_cross_fit(cal["models"], x, cidx, folds)
    base = np.array([cal["models"][f]["intercept"] + cal["models"][f]["class_intercepts"][c] for f, c in zip(folds, cidx)])
    np.testing.assert_allclose(np.log(p / (1 - p)), base + effects.sum(axis=1), atol=1e-6)
    # the signal that lowers P(correct) (x1, weight < 0) pulls down where x1 is high
    high = x[:, 1] > 1.5
    assert (effects[high, 1] < 0).all()


def test_unknown_class_gets_the_shared_weights_and_flags_follow_each_signals_meaning():
    rng = np.random.default_rng(1)
    cal, x, labels, folds, _ = _calibration(rng)
    eff = explain.signal_effects(cal, x[:5], ["zzz"] * 5, folds[:5])
    for i, f in enumerate(folds[:5]):
        params = cal["models"][f]
        z = model.Standardizer.from_dict(params["standardizer"])(x[i : i + 1])[0]
        np.testing.assert_allclose(eff[i], z * np.asarray(params["coef_global"]))
    rows = explain.explain(["knn_agreement", "rer", "margin", "x"], np.array([[0.3, 0.8, np.nan, 5.0]]),
                           np.array([[0.4, -0.1, 0.2, -2.0]]))[0]
    # flagged by their own meaning first (kNN agreement 0.3 < 0.5), then by effect
    assert [r["name"] for r in rows] == ["knn_agreement", "x", "rer", "margin"]
    assert [r["flagged"] for r in rows] == [True, False, False, False]
    assert "most similar labels have another class" in rows[0]["reason"] and rows[3]["value"] is None
    assert explain.flag("rer", 1.2).startswith("rer 1.20 > 1") and explain.flag("rer", 0.9) is None


# -- questions on a real dataset ----------------------------------------------------------


@pytest.fixture(scope="module")
def digits(tmp_root):
    # per class: the digits are easy, and a green certified as a whole would
    # leave too few yellow labels to review
    ds, _ = triaged_digits(tmp_root / "digits-review-queue", seed=2, scope="class")
    yield ds
    ds.delete()


@pytest.fixture()
def fresh(digits):
    clone = digits.clone()
    yield clone
    count_cache.forget_counts(clone)
    clone.delete()


def _open_yellow(view):
    ids, queue, review, rank, p = view.values(
        [f"{FIELD}.detections.{a}" for a in ("id", "queue", "review", "review_rank", "p_correct")], unwind=True
    )
    rows = [(r, i, pc) for i, q, rv, r, pc in zip(ids, queue, review, rank, p)
            if q == "yellow" and rv not in ("accepted", "rejected") and r is not None]
    return sorted(rows)


def _busiest_yellow_class(view) -> str:
    """The class with the most open yellow labels (drill-downs need some)."""
    import collections

    labels_of = dict(zip(*view.values([f"{FIELD}.detections.id", f"{FIELD}.detections.label"], unwind=True)))
    counts = collections.Counter(labels_of[i] for _, i, _ in _open_yellow(view))
    cls, n = counts.most_common(1)[0]
    assert n >= 5
    return cls


def test_questions_come_in_review_rank_order_and_leave_out_what_the_surface_holds(fresh):
    truth = [i for _, i, _ in _open_yellow(fresh)]
    assert len(truth) > 30
    rows = qs.next_questions(fresh, FIELD, limit=10)
    assert [r["label_id"] for r in rows] == truth[:10]
    assert {r["source"] for r in rows} == {"yellow"}
    rows = qs.next_questions(fresh, FIELD, limit=10, exclude=truth[:3] + truth[5:7])
    assert [r["label_id"] for r in rows] == truth[3:5] + truth[7:15]
    # a drill-down: only that class's labels, in the same order
    cls = _busiest_yellow_class(fresh)
    view = queue_stats.drilldown_view(fresh, FIELD, label=cls)
    labels_of = dict(zip(*fresh.values([f"{FIELD}.detections.id", f"{FIELD}.detections.label"], unwind=True)))
    got = [r["label_id"] for r in qs.next_questions(view, FIELD, limit=5)]
    assert len(got) == 5 and got == [i for i in truth if labels_of[i] == cls][:5]


def test_an_earlier_source_comes_first_and_no_label_is_asked_twice(fresh):
    truth = [i for _, i, _ in _open_yellow(fresh)]
    pairs = {}
    for sid, lids in zip(fresh.values("id"), fresh.values(f"{FIELD}.detections.id")):
        for lid in lids or []:
            pairs[lid] = sid
    picked = [truth[7], truth[2]]

    def audit_first(view, label_field, limit, exclude=()):
        return [dict(label_id=i, sample_id=pairs[i]) for i in picked if i not in exclude][:limit]

    audit_first.name = "audit"
    rows = qs.next_questions(fresh, FIELD, limit=6, sources=(audit_first, qs.yellow_by_review_rank))
    assert [r["label_id"] for r in rows] == picked + [i for i in truth if i not in picked][:4]
    assert [r["source"] for r in rows] == ["audit"] * 2 + ["yellow"] * 4
    assert qs.SOURCES == (qs.audit_questions, qs.yellow_by_review_rank)


def test_a_running_audit_is_asked_first_and_its_answers_certify(fresh):
    """The real audit source: a running audit's questions come before the
    yellow labels, in the audit's order; answering them through the panel
    (the reviewer's name, the review core) moves the audit, and the answer
    that completes it applies the certificate."""
    from stoplight.plugins.triage import green_audit

    truth = dict(zip(*fresh.values([f"{FIELD}.detections.id", f"{FIELD}.detections.label"], unwind=True)))
    audit0 = green_audit.audit_green(fresh, FIELD, max_checks=60, seed=4)
    assert audit0["status"] == "needs_answers"
    pending = [p["label_id"] for p in audit0["pending"]]
    rows = qs.next_questions(fresh, FIELD, limit=len(pending) + 3)
    assert [r["label_id"] for r in rows[: len(pending)]] == pending
    assert {r["source"] for r in rows[: len(pending)]} == {"audit"} and rows[-1]["source"] == "yellow"
    panel = ReviewQueue()
    for lid in pending:  # every answer "right": the smallest set passes
        ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=lid, action="accept",
                       expected="pending")
        assert ans["conflict"] is None
    state = green_audit.peek_audit(fresh, "audit")
    assert state["status"] == "certified" and truth
    # the panel's last answer applied it: the certified labels are green now
    cfg = fresh.get_run_info("audit").config
    assert cfg.status == "certified" and cfg.certified_labels == state["candidates"]
    assert not qs.audit_questions(fresh, FIELD, 10)


def test_a_question_holds_the_label_as_stored_and_why_it_is_asked(fresh):
    rows = qs.next_questions(fresh, FIELD, limit=5)
    calibration = workflow.load_calibration(fresh, "triage")
    got = qs.question_details(fresh, FIELD, rows, calibration)
    assert [q["label_id"] for q in got] == [r["label_id"] for r in rows]
    sample = fresh[got[0]["sample_id"]]
    det = next(d for d in sample[FIELD].detections if d.id == got[0]["label_id"])
    assert got[0]["filepath"] == sample.filepath
    assert got[0]["label"] == det.label and got[0]["bounding_box"] == pytest.approx(det.bounding_box)
    assert got[0]["p_correct"] == pytest.approx(det.p_correct) and got[0]["review_rank"] == det.review_rank
    assert got[0]["queue"] == "yellow" and got[0]["review"] == "pending"
    names = {s["name"] for s in got[0]["signals"]}
    assert names == set(calibration["signals"])
    # the signals' effects add up to the label's log-odds (less the intercepts)
    for q in got:
        flagged = [s["flagged"] for s in q["signals"]]
        assert flagged == sorted(flagged, reverse=True)
        assert all(s["flagged"] == (explain.flag(s["name"], s["value"]) is not None) for s in q["signals"])
    # a label deleted meanwhile is dropped; no calibration: no signals
    fresh.delete_labels(ids=[rows[1]["label_id"]])
    again = qs.question_details(fresh, FIELD, rows, None)
    assert [q["label_id"] for q in again] == [r["label_id"] for i, r in enumerate(rows) if i != 1]
    assert all(q["signals"] == [] for q in again)


def test_review_stats_count_what_is_left_and_the_expected_wrong(fresh):
    rows = _open_yellow(fresh)
    stats = qs.review_stats(fresh, FIELD)
    assert stats["open_yellow"] == len(rows)
    assert stats["expected_wrong"] == pytest.approx(sum(1 - p for _, _, p in rows), abs=0.01)
    review_labels(fresh, FIELD, "reject", label_ids=[rows[0][1]], user="ada")
    after = qs.review_stats(fresh, FIELD)
    assert after["open_yellow"] == len(rows) - 1 and after["decided"] == stats["decided"] + 1


@pytest.mark.parametrize("limit, exclude", [(0, []), (qs.MAX_LIMIT + 1, []), (True, []), (5, "abc"), (5, [1, 2]),
                                            (5, ["x"] * (qs.MAX_EXCLUDE + 1))])
def test_requests_are_checked(fresh, limit, exclude):
    with pytest.raises(ValueError, match="limit|exclude"):
        qs.next_questions(fresh, FIELD, limit=limit, exclude=exclude)


# -- the panel's methods ----------------------------------------------------------------------


def _call(panel, dataset, method, view=None, user=None, **params):
    """A panel method as the App server runs it; returns its result."""
    if user is not None:
        params["user"] = user
    request = dict(
        dataset_name=dataset.name,
        view=(view if view is not None else dataset.view())._serialize(),
        params=dict(panel_id="panel-1", panel_state={}, **params),
    )
    ctx = ExecutionContext(request_params=request, executor=Executor())
    out = getattr(panel, method)(ctx)
    panel.render(ctx).to_json()
    return out, ctx


def test_panel_loads_answers_and_undoes_through_the_review_core(fresh):
    panel = ReviewQueue()
    out, _ = _call(panel, fresh, "load", limit=5)
    assert out["label_field"] == FIELD and out["reviewer"] is None and out["error"] is None
    assert out["classes"] == [str(i) for i in range(10)]
    assert len(out["questions"]) == 5 and out["stats"]["open_yellow"] == len(_open_yellow(fresh))
    first = out["questions"][0]["label_id"]

    # no name, no answer: nothing is written under the server's OS user
    # (errors come back as {"error"}: the App would replace the panel with a traceback)
    out_err, _ = _call(panel, fresh, "answer", label_field=FIELD, label_id=first, action="accept", expected="pending")
    assert "Who is reviewing" in out_err["error"]
    ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=first, action="reject",
                   expected="pending")
    assert ans["conflict"] is None and ans["num_labels"] == 1 and ans["user"] == "Ada"
    review, by = fresh.select_labels(ids=[first]).values([f"{FIELD}.detections.review", f"{FIELD}.detections.reviewed_by"], unwind=True)
    assert review == ["rejected"] and by == ["Ada"]
    log = audit.read_log(fresh, label_ids=[first])
    assert [(e["action"], e["user"], e["after"]["review"]) for e in log] == [("reject", "Ada", "rejected")]

    # the next batch leaves the answered label out by itself
    more, _ = _call(panel, fresh, "questions", label_field=FIELD, limit=5, exclude=[])
    assert first not in [q["label_id"] for q in more["questions"]]
    assert more["stats"]["open_yellow"] == out["stats"]["open_yellow"] - 1

    undone, _ = _call(panel, fresh, "undo", user="Ada", label_field=FIELD)
    assert undone["undone_action_id"] == ans["action_id"] and undone["num_labels"] == 1
    review = fresh.select_labels(ids=[first]).values(f"{FIELD}.detections.review", unwind=True)
    assert review[0] in (None, "pending")
    assert [e["action"] for e in audit.read_log(fresh, label_ids=[first])] == ["reject", "undo"]


def test_a_label_someone_else_decided_meanwhile_is_left_alone(fresh):
    panel = ReviewQueue()
    out, _ = _call(panel, fresh, "load", limit=2, user="Ada")
    lid = out["questions"][0]["label_id"]
    review_labels(fresh, FIELD, "accept", label_ids=[lid], user="Bob")
    ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=lid, action="reject",
                   expected="pending")
    assert ans["conflict"] == {"review": "accepted", "reviewed_by": "Bob"}
    assert fresh.select_labels(ids=[lid]).values(f"{FIELD}.detections.review", unwind=True) == ["accepted"]
    # the reviewer changing their own earlier answer is no conflict
    _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=lid, action="reject", expected=None)
    ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=lid, action="accept",
                   expected="rejected")
    assert ans["conflict"] is None
    assert fresh.select_labels(ids=[lid]).values(f"{FIELD}.detections.review", unwind=True) == ["accepted"]


def test_panel_rejects_bad_requests_and_follows_the_view(fresh):
    panel = ReviewQueue()
    out, _ = _call(panel, fresh, "load", limit=2)
    lid = out["questions"][0]["label_id"]
    for params, match in [
        (dict(label_field=FIELD, label_id=lid, action="undo"), "action"),
        (dict(label_field=FIELD, label_id=5, action="accept"), "label_id"),
        (dict(label_field="", label_id=lid, action="accept"), "label_field"),
    ]:
        err, _ = _call(panel, fresh, "answer", user="Ada", **params)
        assert match in err["error"]
    err, _ = _call(panel, fresh, "questions", label_field=FIELD, limit=10_000)
    assert "limit" in err["error"]
    # an unexpected failure of the core too, logged
    err, _ = _call(panel, fresh, "answer", user="Ada", label_field="no_such_field", label_id=lid, action="accept")
    assert "no_such_field" in err["error"]
    # a drill-down view: the questions and counts are the view's
    cls = _busiest_yellow_class(fresh)
    view = queue_stats.drilldown_view(fresh, FIELD, label=cls)
    out3, _ = _call(panel, fresh, "load", view=view, limit=50)
    assert {q["label"] for q in out3["questions"]} == {cls}
    assert out3["stats"]["open_yellow"] == len(_open_yellow(view))
    # the panel state's view key changes with the view only
    _, ctx = _call(panel, fresh, "on_load")
    assert ctx.panel.state.view_key == view_key(fresh.view())
    assert view_key(view) != view_key(fresh.view()) and view_key(view) == view_key(view.view())


def test_panel_is_registered_and_renders_its_component():
    from fiftyone.operators.registry import OperatorRegistry

    reg = OperatorRegistry()
    panels = {op.uri: op for op in reg.list_operators(builtin=False, type="panel")}
    assert "@stoplight/autolabel/review_queue" in panels
    view = panels["@stoplight/autolabel/review_queue"].render(None).view.to_json()
    assert view["component"] == "StoplightReviewQueue" and view["composite_view"]
    for method in ("load", "questions", "answer", "undo", "correct"):
        assert view[method] == f"@stoplight/autolabel/review_queue#{method}"


HAS_GROUPS = importlib.util.find_spec("stoplight.plugins.review.propagation") is not None


def test_without_groups_in_the_core_nothing_is_offered(fresh):
    panel = ReviewQueue()
    out, _ = _call(panel, fresh, "load", limit=2, user="Ada")
    assert out["can_group"] is HAS_GROUPS
    if HAS_GROUPS:
        return  # the next test covers it
    ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=out["questions"][0]["label_id"],
                   action="accept", expected="pending")
    assert ans["similar"] is None
    err, _ = _call(panel, fresh, "accept_group", user="Ada", label_field=FIELD, label_ids=["x"])
    assert "not available" in err["error"]


@pytest.mark.skipif(not HAS_GROUPS, reason="the review core has no groups of similar labels (review.propagation) yet")
def test_a_run_of_accepts_offers_the_cluster_as_one_bulk_question(fresh):
    from stoplight.plugins.review.propagation import MIN_ACCEPTS, find_similar_group

    # the review graph is stored per dataset by the triage: a clone has none
    workflow.assign_queues(fresh, FIELD)
    # a tight cluster of open yellow labels, big enough to accept a few of it
    cluster = None
    for _, lid, _ in _open_yellow(fresh):
        found = find_similar_group(fresh, FIELD, lid, min_accepts=0)["label_ids"]
        if len(found) >= MIN_ACCEPTS + 2:
            cluster = found
            break
    assert cluster, "no tight cluster in the digits' yellow labels"
    panel = ReviewQueue()
    offer = None
    for lid in cluster[:MIN_ACCEPTS]:
        ans, _ = _call(panel, fresh, "answer", user="Ada", label_field=FIELD, label_id=lid, action="accept",
                       expected="pending")
        offer = ans["similar"]
    assert offer is not None, f"{MIN_ACCEPTS} accepts in a tight cluster offered no group"
    ids = [m["label_id"] for m in offer["members"]]
    assert offer["anchor_id"] == lid and ids and all(m["filepath"] and len(m["bounding_box"]) == 4 for m in offer["members"])
    # one of them decided by someone else meanwhile: left alone
    review_labels(fresh, FIELD, "reject", label_ids=[ids[0]], user="Bob")
    got, _ = _call(panel, fresh, "accept_group", user="Ada", label_field=FIELD, label_ids=ids, anchor_id=lid)
    assert got["num_labels"] == len(ids) - 1 and got["num_skipped"] == 1
    review, bulk = fresh.select_labels(ids=ids).values(
        [f"{FIELD}.detections.review", f"{FIELD}.detections.review_bulk"], unwind=True)
    state = dict(zip(fresh.select_labels(ids=ids).values(f"{FIELD}.detections.id", unwind=True), zip(review, bulk)))
    assert state[ids[0]][0] == "rejected"
    assert all(state[i] == ("accepted", True) for i in ids[1:])
    undone, _ = _call(panel, fresh, "undo", user="Ada", label_field=FIELD)
    assert undone["undone_action_id"] == got["action_id"] and undone["num_labels"] == len(ids) - 1
