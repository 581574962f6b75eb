"""Review decisions: accept / reject / reset / undo, the audit log, the
operator through the SDK, and two concurrent reviewer processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService

from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions as D

URI = "@stoplight/autolabel/review_labels"
CLASSES = ("car", "person", "dog")
QUEUES = ("green", "yellow", "red", None)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _labeled(dataset, per_sample=6):
    """Puts ``per_sample`` detections with classes, queues and a score on
    every sample; returns ``{label_id: (sample_id, label, queue)}``."""
    values, truth = [], {}
    for s, sid in enumerate(dataset.values("id")):
        dets = []
        for j in range(per_sample):
            k = s * per_sample + j
            d = fo.Detection(
                label=CLASSES[k % 3],
                bounding_box=[0.1, 0.1, 0.2, 0.3],
                confidence=0.5 + 0.01 * j,
                hardness=0.25,
            )
            queue = QUEUES[(k // 3) % 4]
            if queue is not None:  # some labels have no queue yet
                d["queue"] = queue
            dets.append(d)
            truth[d.id] = (sid, d.label, queue)
        values.append(fo.Detections(detections=dets))
    dataset.set_values("autolabels", values)
    return truth


def _states(dataset, field="autolabels"):
    """``{label_id: dict of every attribute}`` read back through FiftyOne."""
    dataset.reload()
    out = {}
    for sample in dataset.select_fields(field):
        for d in sample[field].detections if sample[field] else []:
            out[d.id] = {k: d[k] for k in d.field_names if k != "id"}
    return out


@pytest.fixture()
def labeled(dataset):
    return dataset, _labeled(dataset)


def test_accept_label_ids_writes_review_attrs_and_audit(labeled):
    dataset, truth = labeled
    before = _states(dataset)
    ids = list(truth)[:5]
    t0 = D.now_ms()
    summary = D.review_labels(dataset, "autolabels", "accept", label_ids=ids, user="alice")
    assert summary["num_labels"] == 5 and summary["num_changed"] == 5
    assert summary["action_id"] >= 1 and summary["user"] == "alice"
    after = _states(dataset)
    for lid, state in after.items():
        if lid in ids:
            assert state["review"] == "accepted"
            assert state["reviewed_by"] == "alice"
            assert t0 <= state["reviewed_at"] <= D.now_ms()
            assert state["review_action"] == summary["action_id"]
            # nothing else on the label changed (scores, queue, box)
            rest = {k: v for k, v in state.items() if k not in D.REVIEW_ATTRS}
            assert rest == {k: v for k, v in before[lid].items() if k not in D.REVIEW_ATTRS}
        else:
            assert state == before[lid]
    # the review attributes are declared on the schema
    schema = dataset.get_field_schema(flat=True)
    assert isinstance(schema["autolabels.detections.review"], fo.StringField)
    assert isinstance(schema["autolabels.detections.reviewed_at"], fo.DateTimeField)

    log = audit.read_log(dataset)
    assert [e["label_id"] for e in log] == ids
    for e in log:
        assert e["user"] == "alice" and e["action"] == "accept" and e["field"] == "autolabels"
        assert e["sample_id"] == truth[e["label_id"]][0]
        assert e["before"]["review"] is None
        assert e["after"]["review"] == "accepted" and e["after"]["reviewed_at"] == e["at"]


def test_reject_by_sample_ids_covers_all_their_labels_only(labeled):
    dataset, truth = labeled
    sids = dataset.values("id")[:2]
    summary = D.review_labels(dataset, "autolabels", "reject", sample_ids=sids, user="bob")
    expected = {lid for lid, (sid, _, _) in truth.items() if sid in sids}
    assert summary["num_labels"] == len(expected) and summary["num_samples"] == 2
    states = _states(dataset)
    assert {lid for lid, s in states.items() if s.get("review") == "rejected"} == expected


def test_queue_and_class_within_the_view(labeled):
    dataset, truth = labeled
    view = dataset.skip(1).limit(3)
    in_view = set(view.values("id"))
    summary = D.review_labels(view, "autolabels", "accept", queue="green", label="car", user="carol")
    expected = {lid for lid, (sid, lab, q) in truth.items() if sid in in_view and q == "green" and lab == "car"}
    assert expected and summary["num_labels"] == len(expected)
    states = _states(dataset)
    assert {lid for lid, s in states.items() if s.get("review") == "accepted"} == expected

    # a filtered view: only the labels it shows are reviewed
    conf = dataset.filter_labels("autolabels", fo.ViewField("confidence") > 0.52)
    summary = D.review_labels(conf, "autolabels", "reject", queue="red", user="carol")
    shown = {i for ids in conf.values("autolabels.detections.id") for i in ids or []}
    rejected = {lid for lid, s in _states(dataset).items() if s.get("review") == "rejected"}
    assert rejected == {lid for lid in shown if truth[lid][2] == "red"}
    # labels with no queue yet are never in a queue
    assert all(truth[lid][2] is not None for lid in rejected | expected)


def test_patches_view(labeled):
    dataset, truth = labeled
    patches = dataset.to_patches("autolabels")
    summary = D.review_labels(patches, "autolabels", "reject", queue="red", label="dog", user="pat")
    expected = {lid for lid, (_, lab, q) in truth.items() if q == "red" and lab == "dog"}
    assert expected and summary["num_labels"] == len(expected)
    # selected patches (the App's selection in a patches view are patch ids)
    patch_ids = patches.limit(2).values("id")
    summary = D.review_labels(patches, "autolabels", "accept", sample_ids=patch_ids, user="pat")
    accepted = set(patches.limit(2).values("autolabels.id"))
    assert summary["num_labels"] == 2
    # written to the source dataset, and read back through the patches view
    states = _states(dataset)
    assert {lid for lid, s in states.items() if s.get("review") == "accepted"} == accepted
    assert set(D.decided_label_ids(dataset.to_patches("autolabels"), "autolabels")) == expected | accepted


def test_reset_and_decided_label_ids(labeled):
    dataset, truth = labeled
    ids = list(truth)
    D.review_labels(dataset, "autolabels", "accept", label_ids=ids[:4], user="alice")
    D.review_labels(dataset, "autolabels", "reject", label_ids=ids[4:6], user="alice")
    assert sorted(D.decided_label_ids(dataset, "autolabels")) == sorted(ids[:6])
    summary = D.review_labels(dataset, "autolabels", "reset", label_ids=ids[:2], user="bob")
    assert summary["num_changed"] == 2
    states = _states(dataset)
    assert [states[i]["review"] for i in ids[:2]] == ["pending", "pending"]
    assert states[ids[0]]["reviewed_by"] == "bob"
    assert sorted(D.decided_label_ids(dataset, "autolabels")) == sorted(ids[2:6])
    assert D.is_decided(["accepted", "rejected", "pending", None]).tolist() == [True, True, False, False]
    assert D.HUMAN_DECISIONS == ("accepted", "rejected", "corrected")


def test_undo_reverts_exactly_the_users_last_action(labeled):
    dataset, truth = labeled
    ids = list(truth)
    a1 = D.review_labels(dataset, "autolabels", "accept", label_ids=ids[:6], user="alice")
    s1 = _states(dataset)
    D.review_labels(dataset, "autolabels", "reject", label_ids=ids[10:12], user="bob")
    a2 = D.review_labels(dataset, "autolabels", "reject", label_ids=ids[3:9], user="alice")

    undo = D.undo_last(dataset, user="alice")
    assert undo["undone_action_id"] == a2["action_id"] and undo["num_labels"] == 6
    states = _states(dataset)
    for lid in ids[3:6]:  # back to alice's first decision, with its time
        assert {k: states[lid][k] for k in ("review", "reviewed_by", "reviewed_at")} == {
            k: s1[lid][k] for k in ("review", "reviewed_by", "reviewed_at")
        }
    for lid in ids[6:9]:  # back to never reviewed
        assert states[lid]["review"] is None and states[lid]["reviewed_by"] is None
    for lid in ids[10:12]:  # bob's action is untouched
        assert states[lid]["review"] == "rejected" and states[lid]["reviewed_by"] == "bob"
    # the undo is itself logged, with before and after
    entries = [e for e in audit.read_log(dataset) if e["action"] == "undo"]
    assert len(entries) == 6 and all(e["undoes"] == a2["action_id"] for e in entries)
    assert {e["before"]["review"] for e in entries} == {"rejected"}

    # a second undo walks back to alice's first action
    undo2 = D.undo_last(dataset, user="alice")
    assert undo2["undone_action_id"] == a1["action_id"]
    states = _states(dataset)
    assert all(states[lid]["review"] is None for lid in ids[:9])
    with pytest.raises(ValueError, match="Nothing to undo for user 'alice'"):
        D.undo_last(dataset, user="alice")
    # bob can still undo his own
    assert D.undo_last(dataset, user="bob")["num_labels"] == 2
    assert all(_states(dataset)[lid]["review"] is None for lid in ids[10:12])


def test_undo_never_overwrites_a_later_decision_of_someone_else(labeled):
    dataset, truth = labeled
    ids = list(truth)
    D.review_labels(dataset, "autolabels", "accept", label_ids=ids[:4], user="alice")
    D.review_labels(dataset, "autolabels", "reject", label_ids=ids[:1], user="bob")
    undo = D.undo_last(dataset, user="alice")
    assert undo["num_labels"] == 3 and undo["num_conflicts"] == 1
    states = _states(dataset)
    assert states[ids[0]]["review"] == "rejected" and states[ids[0]]["reviewed_by"] == "bob"
    assert all(states[i]["review"] is None for i in ids[1:4])
    # bob undoes his: the label goes back to alice's accept (its state before bob)
    D.undo_last(dataset, user="bob")
    state = _states(dataset)[ids[0]]
    assert state["review"] == "accepted" and state["reviewed_by"] == "alice"


def test_a_decision_that_loses_a_race_is_logged_and_not_applied(labeled, monkeypatch):
    dataset, truth = labeled
    lid = list(truth)[0]
    append = audit.append
    raced = []

    def append_then_race(*args):
        # alice has read the label and taken her action id; before her
        # write lands, bob decides the same label (a later id) and writes
        append(*args)
        if not raced:
            raced.append(None)  # bob's own append must not race again
            raced[0] = D.review_labels(dataset, "autolabels", "reject", label_ids=[lid], user="bob")

    monkeypatch.setattr(audit, "append", append_then_race)
    alice = D.review_labels(dataset, "autolabels", "accept", label_ids=[lid], user="alice")
    monkeypatch.setattr(audit, "append", append)
    bob = raced[0]
    assert alice["action_id"] < bob["action_id"]
    # alice never saw bob's decision: hers is not written over it, and she is told
    state = _states(dataset)[lid]
    assert (state["review"], state["reviewed_by"], state["review_action"]) == ("rejected", "bob", bob["action_id"])
    assert (alice["num_labels"], alice["num_conflicts"], alice["conflicts"]) == (0, 1, [lid])
    log = audit.read_log(dataset)
    assert [(e["user"], e["after"]["review"], e.get("conflict")) for e in log] == [
        ("alice", "accepted", True), ("bob", "rejected", None)]
    # undoing bob restores the state before him (alice's was never applied)
    D.undo_last(dataset, user="bob")
    state = _states(dataset)[lid]
    assert (state["review"], state["reviewed_by"]) == (None, None)
    # and alice has nothing of hers to undo on that label
    assert D.undo_last(dataset, user="alice")["num_labels"] == 0


def test_clear_errors(labeled):
    dataset, truth = labeled
    ids = list(truth)
    with pytest.raises(ValueError, match="Unknown label field 'nope'"):
        D.review_labels(dataset, "nope", "accept", label_ids=ids[:1])
    with pytest.raises(ValueError, match="'filepath' is not a label list field"):
        D.review_labels(dataset, "filepath", "accept", label_ids=ids[:1])
    with pytest.raises(ValueError, match="Parameter 'action'.*'approve'"):
        D.review_labels(dataset, "autolabels", "approve", label_ids=ids[:1])
    with pytest.raises(ValueError, match="Nothing selected"):
        D.review_labels(dataset, "autolabels", "accept")
    with pytest.raises(ValueError, match="Nothing selected"):
        D.review_labels(dataset, "autolabels", "accept", label_ids=[])
    with pytest.raises(ValueError, match="Parameter 'queue'"):
        D.review_labels(dataset, "autolabels", "accept", queue="blue")
    missing = str(fo.Detection().id)
    with pytest.raises(ValueError, match=f"1 label id.*{missing}"):
        D.review_labels(dataset, "autolabels", "accept", label_ids=[ids[0], missing])
    with pytest.raises(ValueError, match="Invalid label id 'xyz'"):
        D.review_labels(dataset, "autolabels", "accept", label_ids=["xyz"])
    other = dataset.values("id")[0]
    with pytest.raises(ValueError, match=f"sample id.*not in the view.*{other}"):
        D.review_labels(dataset.skip(1), "autolabels", "accept", sample_ids=[other])
    # nothing was written or logged by the failed calls
    assert not audit.read_log(dataset)
    assert D.decided_label_ids(dataset, "autolabels") == []


def test_no_matching_label_writes_and_logs_nothing(labeled):
    dataset, _ = labeled
    summary = D.review_labels(dataset, "autolabels", "accept", label="zebra", user="alice")
    assert summary["num_labels"] == 0 and summary["action_id"] is None
    assert not audit.read_log(dataset)
    with pytest.raises(ValueError, match="Nothing to undo"):
        D.undo_last(dataset, user="alice")


# ---------------------------------------------------------------------------
# The operator through the SDK
# ---------------------------------------------------------------------------


def _selected(dataset, ids, truth, field="autolabels"):
    return [dict(label_id=i, sample_id=truth[i][0], field=field, frame_number=None) for i in ids]


def test_operator_on_selected_labels_samples_and_queue(labeled):
    dataset, truth = labeled
    ids = list(truth)
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(),
             "selected_labels": _selected(dataset, ids[:3], truth),
             "params": {"action": "reject", "user": "dora"}},
    )
    assert result.error is None, result.error
    assert result.result["num_labels"] == 3 and result.result["user"] == "dora"
    assert sorted(D.decided_label_ids(dataset, "autolabels")) == sorted(ids[:3])

    sid = dataset.values("id")[-1]
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(), "selected": [sid],
             "params": {"action": "accept", "label_field": "autolabels", "user": "dora"}},
    )
    assert result.result["num_labels"] == sum(1 for s, _, _ in truth.values() if s == sid)

    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(),
             "params": {"action": "accept", "queue": "yellow", "label": "dog", "user": "dora"}},
    )
    expected = {i for i, (_, lab, q) in truth.items() if q == "yellow" and lab == "dog"}
    assert result.result["num_labels"] == len(expected) > 0

    # undo through the operator: the last action (queue=yellow, class=dog)
    result = foo.execute_operator(URI, ctx={"dataset": dataset, "params": {"action": "undo", "user": "dora"}})
    assert result.result["undone_action"] == "accept" and result.result["num_labels"] == len(expected)
    states = _states(dataset)
    assert all(states[i]["review"] is None for i in expected if truth[i][0] != sid)


def test_operator_defaults_to_the_os_user(labeled):
    import getpass

    dataset, truth = labeled
    ids = list(truth)
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "selected_labels": _selected(dataset, ids[:1], truth),
             "params": {"action": "accept"}},
    )
    assert result.result["user"] == getpass.getuser()
    assert _states(dataset)[ids[0]]["reviewed_by"] == getpass.getuser()


def test_operator_errors(labeled):
    dataset, truth = labeled
    ids = list(truth)
    with pytest.raises(Exception, match="Nothing selected"):
        foo.execute_operator(URI, ctx={"dataset": dataset, "params": {"action": "accept"}})
    # the form's enum validation names the parameter
    with pytest.raises(Exception, match="action.*Invalid enum value"):
        foo.execute_operator(
            URI, ctx={"dataset": dataset, "selected_labels": _selected(dataset, ids[:1], truth),
                      "params": {"action": "approve"}},
        )
    with pytest.raises(Exception, match="Unknown label field 'nope'"):
        foo.execute_operator(
            URI, ctx={"dataset": dataset, "params": {"action": "accept", "label_field": "nope", "queue": "red"}},
        )
    with pytest.raises(Exception, match="several fields"):
        sel = _selected(dataset, ids[:1], truth) + _selected(dataset, ids[1:2], truth, field="other")
        foo.execute_operator(URI, ctx={"dataset": dataset, "selected_labels": sel, "params": {"action": "accept"}})
    with pytest.raises(Exception, match="Nothing selected: select samples"):
        foo.execute_operator(
            URI, ctx={"dataset": dataset, "params": {"action": "accept", "target": "SELECTED_SAMPLES"}},
        )
    assert not audit.read_log(dataset)


def test_operator_delegated(labeled):
    dataset, truth = labeled
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(),
             "params": {"action": "accept", "queue": "green", "user": "eve", "delegate": True}},
        request_delegation=True,
    )
    assert result.delegated
    assert not audit.read_log(dataset)  # queued, not run
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    expected = {i for i, (_, _, q) in truth.items() if q == "green"}
    assert set(D.decided_label_ids(dataset, "autolabels")) == expected
    assert {e["user"] for e in audit.read_log(dataset)} == {"eve"}


# ---------------------------------------------------------------------------
# Two reviewer processes at once
# ---------------------------------------------------------------------------

_REVIEWER = textwrap.dedent(
    """
    import json, os, random, sys, time
    sys.path.insert(0, {examples!r})
    from stoplight_import import import_stoplight
    import_stoplight()
    import fiftyone as fo
    from stoplight.plugins.common import audit
    from stoplight.plugins.review import decisions as D

    user, seed, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    dataset = fo.load_dataset({name!r})
    pool = dataset.values("autolabels.detections.id", unwind=True)
    rng = random.Random(seed)

    # a slow reviewer: a random pause between taking an action id and
    # writing the labels, so the two processes' writes really cross
    append = audit.append
    def slow_append(*args):
        time.sleep(rng.uniform(0.0, 0.01))
        append(*args)
    audit.append = slow_append
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
    out = []
    for i in range(n):
        if i % 40 == 39:
            try:
                out.append(D.undo_last(dataset, user=user))
            except ValueError:
                pass
            continue
        # step i of both reviewers decides label i (they run in step, so
        # these decisions race), plus a few random others
        ids = list(dict.fromkeys([pool[i % len(pool)], *rng.sample(pool, rng.randint(0, 2))]))
        action = rng.choice(["accept", "reject", "reset"])
        out.append(D.review_labels(dataset, "autolabels", action, label_ids=ids, user=user))
    print(json.dumps(out), flush=True)
    """
)


def test_two_concurrent_reviewers(image_dir, tmp_path):
    name = f"stoplight-review-concurrency-{uuid.uuid4().hex[:8]}"
    dataset = fo.Dataset(name, persistent=True)  # other processes load it
    try:
        dataset.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.*"))[:6]])
        _labeled(dataset, per_sample=50)
        pool = dataset.values("autolabels.detections.id", unwind=True)
        go = tmp_path / "go"
        script = _REVIEWER.format(examples=str(EXAMPLES), name=name)
        n = 500  # review actions each (1-3 labels each; every 40th an undo), on 300 shared labels
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, user, str(seed), str(n), str(go)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            )
            for user, seed in (("rev1", 1), ("rev2", 2))
        ]
        for p in procs:  # both ready (fiftyone imported, dataset loaded)
            line = p.stdout.readline()
            assert line.strip() == "ready", p.stderr.read()
        go.touch()
        results = {}
        for user, p in zip(("rev1", "rev2"), procs):
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
            results[user] = json.loads(out.strip().splitlines()[-1])

        log = audit.read_log(dataset)
        # every decision is in the log (those that lost a race marked
        # `conflict`), applied counts match per user and action
        applied = [e for e in log if not e.get("conflict")]
        for user, summaries in results.items():
            assert sum(s["num_labels"] for s in summaries) == sum(e["user"] == user for e in applied)
            for s in summaries:
                got = [e for e in applied if e["action_id"] == s["action_id"]]
                assert len(got) == s["num_labels"] and {e["user"] for e in got} <= {user}
                lost = [e for e in log if e["action_id"] == s["action_id"] and e.get("conflict")]
                assert len(lost) <= s["num_conflicts"]
        ids1 = [s["action_id"] for s in results["rev1"]]
        ids2 = [s["action_id"] for s in results["rev2"]]
        assert not set(ids1) & set(ids2)
        # the two really ran at the same time: their action ids interleave
        assert min(ids1) < max(ids2) and min(ids2) < max(ids1)

        # each label's stored state is its last applied logged decision
        last = {}
        for e in applied:
            last[e["label_id"]] = e  # log is sorted by action_id
        assert set(last) <= set(pool) and len(last) > 0.9 * len(pool)
        states = _states(dataset)
        for lid, e in last.items():
            assert {k: states[lid].get(k) for k in audit.STATE_KEYS} == e["after"], lid
    finally:
        audit.delete_log(dataset)
        dataset.delete()


def test_form_follows_the_selection(labeled):
    import asyncio

    from fiftyone.operators.executor import resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    dataset, truth = labeled
    ids = list(truth)

    def form(params, **extra):
        request = dict(dataset_name=dataset.name, params=params, view=[], selected=[], selected_labels=[])
        request.update(extra)
        prop = asyncio.run(resolve_type(OperatorRegistry(), URI, request))
        return prop.to_json()["type"]["properties"]

    props = form({"action": "accept"}, selected_labels=_selected(dataset, ids[:2], truth, field="autolabels"))
    assert props["target"]["default"] == "SELECTED_LABELS"
    assert props["label_field"]["default"] == "autolabels"
    assert props["queue"]["type"]["values"] == ["green", "yellow", "red"]
    props = form({"action": "accept"}, selected=dataset.values("id")[:1])
    assert props["target"]["default"] == "SELECTED_SAMPLES"
    assert form({"action": "accept"})["target"]["default"] == "VIEW"
    # undo needs nothing but the action
    assert set(form({"action": "undo"})) == {"action"}


def test_output_form_shows_the_summary(labeled):
    import asyncio

    from fiftyone.operators.executor import resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    dataset, _ = labeled
    request = dict(dataset_name=dataset.name, params={"action": "accept"}, view=[], target="outputs",
                   results={"action": "accept", "num_labels": 3})
    props = asyncio.run(resolve_type(OperatorRegistry(), URI, request)).to_json()["type"]["properties"]
    assert props["num_labels"]["type"]["name"] == "Number" and props["action"]["type"]["name"] == "String"


def test_logs_of_deleted_datasets_are_dropped_by_the_next_action(image_dir):
    """A deleted dataset's audit log (FiftyOne has no deletion hook) is
    dropped by the next review action anywhere; a live dataset's is kept."""
    import fiftyone.core.odm.database as fod

    def make(name):
        ds = fo.Dataset(name)
        ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.*"))[:2]])
        return ds, list(_labeled(ds))

    gone, gone_ids = make(f"audit-gone-{uuid.uuid4().hex[:6]}")
    kept, kept_ids = make(f"audit-kept-{uuid.uuid4().hex[:6]}")
    D.review_labels(gone, "autolabels", "accept", label_ids=gone_ids[:2], user="u")
    D.review_labels(kept, "autolabels", "accept", label_ids=kept_ids[:2], user="u")
    owner = gone._sample_collection_name
    db = fod.get_db_conn()
    assert f"stoplight_review.{owner}.entries" in db.list_collection_names()
    gone.delete()
    try:
        D.review_labels(kept, "autolabels", "reject", label_ids=kept_ids[2:3], user="u")
        names = db.list_collection_names()
        assert f"stoplight_review.{owner}.entries" not in names
        assert f"stoplight_review.{owner}.actions" not in names
        assert db["stoplight_review.counters"].find_one({"_id": owner}) is None
        # the live dataset's log is whole
        assert [e["action"] for e in audit.read_log(kept)].count("accept") == 2
        assert [e["action"] for e in audit.read_log(kept)].count("reject") == 1
    finally:
        kept.delete()
