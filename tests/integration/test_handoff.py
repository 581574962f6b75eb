"""Hand-off of the yellow queue to Label Studio and its answers back.

Against a real Label Studio server (``labelstudiokit``) started on
127.0.0.1 for this module, real photos, real FiftyOne and MongoDB. The
tests play the annotator through Label Studio's REST API: they submit the
kinds of answers a person gives in its editor (keep, delete, relabel, move,
draw, skip) and check what comes back as Stoplight decisions.
"""

from __future__ import annotations

import uuid

import fiftyone as fo
import fiftyone.operators as foo
import pytest
import requests

import labelstudiokit as lsk
from stoplight.plugins.common.identity import Identity
from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions, handoff
from stoplight.plugins.review.handoff import load_review_answers, send_for_review

PHOTOS = ("bus.jpg", "zidane.jpg", "zidane_upright.png")
CLASSES = ("person", "bus", "car", "tie")
FIELD = "autolabels"


@pytest.fixture(scope="module")
def label_studio(tmp_root):
    with lsk.running_label_studio(tmp_root / f"label-studio-{uuid.uuid4().hex[:6]}") as server:
        yield server


@pytest.fixture()
def queued(image_dir):
    """Three photos, four auto-labels each: three yellow (ranked), one
    green. Returns ``(dataset, {name: label_id})``, names ``a0``..``c3``."""
    ds = fo.Dataset(f"stoplight-handoff-{uuid.uuid4().hex[:8]}")
    ds.add_samples([fo.Sample(filepath=str(image_dir / p)) for p in PHOTOS])
    names, values = {}, []
    for s, sid in enumerate(ds.values("id")):
        dets = []
        for j in range(4):
            d = fo.Detection(
                label=CLASSES[(s + j) % len(CLASSES)],
                bounding_box=[0.05 + 0.2 * j, 0.1 + 0.05 * s, 0.15, 0.3],
                confidence=0.4 + 0.1 * j,
                queue="yellow" if j < 3 else "green",
            )
            if j < 3:
                d["review_rank"] = 1 + j * 3 + s  # the first of each sample rank 1-3
            names[f"{'abc'[s]}{j}"] = d.id
            dets.append(d)
        values.append(fo.Detections(detections=dets))
    ds.set_values(FIELD, values)
    yield ds, names
    if fo.dataset_exists(ds.name):
        ds.delete()


def _attr(label, name):
    return label[name] if label.has_field(name) else None


def _labels(ds) -> dict[str, fo.Detection]:
    ds.reload()
    return {d.id: d for dets in ds.values(f"{FIELD}.detections") for d in dets or []}


def _project_tasks(ds, server, anno_key) -> dict[str, dict]:
    """``{sample_id: task}`` of the hand-off's Label Studio project."""
    results = ds.load_annotation_results(anno_key, url=server.url, api_key=server.api_key)
    return {results.uploaded_tasks[t["id"]]: t for t in lsk.tasks(server, results.project_id)}


def _predicted(task) -> list[dict]:
    (prediction,) = task["predictions"]
    return prediction["result"]


def test_round_trip_decisions_corrections_conflicts_and_reload(queued, label_studio):
    ds, n = queued
    server = label_studio
    sid = ds.values("id")
    # a label decided before the hand-off is not sent
    decisions.review_labels(ds, FIELD, "accept", label_ids=[n["a0"]], user="ana")

    sent = send_for_review(ds, FIELD, "rt", url=server.url, api_key=server.api_key)
    assert sent["num_labels"] == 8 and sent["num_samples"] == 3
    assert set(sent["classes"]) == set(CLASSES)
    assert "rt" in ds.list_annotation_runs()
    tasks = _project_tasks(ds, server, "rt")
    assert set(tasks) == set(sid)
    project_id = ds.load_annotation_results("rt", url=server.url, api_key=server.api_key).project_id
    project = requests.get(f"{server.url}/api/projects/{project_id}", headers=server.headers, timeout=30).json()
    assert project["title"] == f"stoplight_{ds.name}_rt"
    sent_ids = {r["id"] for t in tasks.values() for r in _predicted(t)}
    yellow_undecided = {n[k] for k in ("a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2")}
    assert sent_ids == yellow_undecided  # not a0 (decided), no green label

    # meanwhile, in Stoplight, ana rejects a label the annotator will keep
    decisions.review_labels(ds, FIELD, "reject", label_ids=[n["a1"]], user="ana")

    # the annotator: photo a keeps a1, deletes a2; photo b relabels b0,
    # moves b1, keeps b2 and draws a new box; photo c is not answered
    a = [r for r in _predicted(tasks[sid[0]]) if r["id"] == n["a1"]]
    lsk.submit(server, tasks[sid[0]]["id"], a)
    b = []
    for r in _predicted(tasks[sid[1]]):
        r = dict(r, value=dict(r["value"]))
        if r["id"] == n["b0"]:
            r["value"]["rectanglelabels"] = ["car" if r["value"]["rectanglelabels"] != ["car"] else "bus"]
        if r["id"] == n["b1"]:
            r["value"]["x"] += 10.0  # percent of the width
        b.append(r)
    drawn = dict(b[0], id="drawn1", value=dict(x=70.0, y=70.0, width=10.0, height=10.0, rotation=0,
                                               rectanglelabels=["tie"]))
    lsk.submit(server, tasks[sid[1]]["id"], b + [drawn])
    before = _labels(ds)

    out = load_review_answers(ds, "rt", url=server.url, api_key=server.api_key)

    assert out["user"] == "labelstudio:rt"
    assert (out["num_accepted"], out["num_rejected"], out["num_corrected"], out["num_added"]) == (1, 3, 2, 1)
    assert (out["num_unanswered"], out["num_conflicts"], out["num_answered_samples"]) == (3, 1, 2)
    assert out["conflicts"] == [
        dict(label_id=n["a1"], sample_id=sid[0], answer="accept", review="rejected", reviewed_by="ana")
    ]
    labels = _labels(ds)
    review = {k: _attr(labels[n[k]], "review") for k in n}
    assert review["a0"] == "accepted" and review["a1"] == "rejected"  # ana's decisions stand
    assert labels[n["a1"]].reviewed_by == "ana"
    assert review["b2"] == "accepted"
    assert review["a2"] == review["b0"] == review["b1"] == "rejected"
    for k in ("c0", "c1", "c2", "a3", "b3", "c3"):  # unanswered / never sent
        assert review[k] is None
    for k in ("a2", "b0", "b1", "b2"):
        assert labels[n[k]].reviewed_by == "labelstudio:rt"
        assert labels[n[k]].reviewed_at is not None
    # the auto-labels themselves are never edited
    for lid, d in before.items():
        assert (labels[lid].label, labels[lid].bounding_box) == (d.label, d.bounding_box)
    # corrections: new labels with provenance
    corr = {_attr(d, "source_id"): d for d in ds.values(f"{FIELD}_corrections.detections")[1]}
    assert set(corr) == {n["b0"], n["b1"], None}
    assert corr[n["b0"]].change == "relabel" and corr[n["b0"]].label != before[n["b0"]].label
    assert corr[n["b1"]].change == "move" and corr[n["b1"]].label == before[n["b1"]].label
    assert corr[n["b1"]].bounding_box[0] == pytest.approx(before[n["b1"]].bounding_box[0] + 0.1)
    assert corr[None].change == "added" and corr[None].label == "tie"
    assert corr[None].bounding_box == pytest.approx([0.7, 0.7, 0.1, 0.1])
    for d in corr.values():
        assert (d.anno_key, d.source_field, d.review, d.reviewed_by) == ("rt", FIELD, "accepted", "labelstudio:rt")
    # audit log with the hand-off's provenance; no temporary field left
    log = audit.read_log(ds, user="labelstudio:rt")
    assert {e["label_id"] for e in log} == {n[k] for k in ("a2", "b0", "b1", "b2")}
    assert all(e["source"] == dict(backend="labelstudio", anno_key="rt", url=server.url) for e in log)
    assert not [f for f in ds.get_field_schema() if f.startswith("stoplight_answers")]
    record = ds.get_run_info("handoff_rt").config
    assert (record.anno_key, record.backend, record.num_loads, record.last_num_accepted) == ("rt", "labelstudio", 1, 1)
    assert set(ds.load_run_results("handoff_rt").sent) == yellow_undecided

    # a skipped task stays unanswered; loading again changes nothing
    lsk.submit(server, tasks[sid[2]]["id"], [], cancelled=True)
    corr_ids = ds.values(f"{FIELD}_corrections.detections.id")
    again = load_review_answers(ds, "rt", url=server.url, api_key=server.api_key, dest_field="raw")
    assert (again["num_accepted"], again["num_rejected"], again["num_unchanged"]) == (0, 0, 4)
    # dest_field keeps the raw answers of the answered samples
    raw = dict(zip(sid, ds.values("raw.detections")))
    assert {d.id for d in raw[sid[0]]} == {n["a1"]}
    assert len(raw[sid[1]]) == 4 and {n["b0"], n["b1"], n["b2"]} < {d.id for d in raw[sid[1]]}
    assert (again["num_unanswered"], again["num_conflicts"]) == (3, 1)
    assert again["accept_action_id"] is None and again["reject_action_id"] is None
    assert len(audit.read_log(ds, user="labelstudio:rt")) == len(log)
    assert ds.values(f"{FIELD}_corrections.detections.id") == corr_ids

    # photo c answered later (all kept), then undone like any decision
    lsk.submit(server, tasks[sid[2]]["id"], _predicted(tasks[sid[2]]))
    late = load_review_answers(ds, "rt", url=server.url, api_key=server.api_key, dest_field="raw")
    assert (late["num_accepted"], late["num_unchanged"], late["num_unanswered"]) == (3, 4, 0)
    assert all(_labels(ds)[n[k]].review == "accepted" for k in ("c0", "c1", "c2"))
    # undo is per identity: the tool's decisions are the annotation tool's
    undone = decisions.undo_last(ds, user=Identity("labelstudio:rt", "annotation-tool"))
    assert undone["undone_action_id"] == late["accept_action_id"] and undone["num_labels"] == 3
    assert all(_attr(_labels(ds)[n[k]], "review") is None for k in ("c0", "c1", "c2"))
    assert ds.get_run_info("handoff_rt").config.num_loads == 3
    assert len(ds.values("raw.detections")[2]) == 3  # replaced on every load

    # the key is taken now
    with pytest.raises(ValueError, match="already used"):
        send_for_review(ds, FIELD, "rt", url=server.url, api_key=server.api_key)


def test_limit_by_review_rank_through_the_operators(queued, label_studio, monkeypatch):
    ds, n = queued
    server = label_studio
    # the operators take the tool's URL and key from the server's plugin
    # secrets (environment variables in open-source FiftyOne), never from
    # the request (tests/app/test_security_handoff.py)
    monkeypatch.setenv("FIFTYONE_LABELSTUDIO_URL", server.url)
    monkeypatch.setenv("FIFTYONE_LABELSTUDIO_API_KEY", server.api_key)
    result = foo.execute_operator(
        "@stoplight/autolabel/send_for_review",
        ctx={"dataset": ds, "view": ds.view(),
             "params": {"label_field": FIELD, "anno_key": "top3", "limit": 3}},
    ).result
    assert result["num_labels"] == 3
    tasks = _project_tasks(ds, server, "top3")
    assert {r["id"] for t in tasks.values() for r in _predicted(t)} == {n["a0"], n["b0"], n["c0"]}  # ranks 1-3
    for t in tasks.values():
        lsk.submit(server, t["id"], [])  # every box deleted
    out = foo.execute_operator(
        "@stoplight/autolabel/load_review_answers",
        ctx={"dataset": ds, "params": {"anno_key": "top3"}},
    ).result
    assert (out["num_rejected"], out["num_accepted"], out["num_answered_samples"]) == (3, 0, 3)
    assert {k for k, lid in n.items() if _attr(_labels(ds)[lid], "review") == "rejected"} == {"a0", "b0", "c0"}


def test_bad_parameters_are_named_and_write_nothing(queued, tmp_path):
    ds, _ = queued
    fields = set(ds.get_field_schema())
    cases = [
        (dict(label_field="nope", anno_key="k"), "nope"),
        (dict(label_field=FIELD, anno_key="not a key"), "anno_key"),
        (dict(label_field=FIELD, anno_key="k", queue="blue"), "queue"),
        (dict(label_field=FIELD, anno_key="k", limit=0), "limit"),
        (dict(label_field=FIELD, anno_key="k", classes="car"), "classes"),
        (dict(label_field=FIELD, anno_key="k", queue="red"), "No undecided labels in queue 'red'"),
        (dict(label_field="filepath", anno_key="k"), "filepath"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            send_for_review(ds, **kwargs, url="http://127.0.0.1:9", api_key="x")
    # an unreachable server: the error comes from the upload, no run is left
    with pytest.raises(Exception):
        send_for_review(ds, FIELD, "down", url="http://127.0.0.1:9", api_key="x")
    with pytest.raises(ValueError, match="Unknown annotation key 'down'"):
        load_review_answers(ds, "down")
    assert ds.list_annotation_runs() == [] and ds.list_runs() == []
    assert set(ds.get_field_schema()) == fields
    assert all(_attr(d, "review") is None for d in _labels(ds).values())
    with pytest.raises(Exception, match="anno_key"):  # the form's own validation
        foo.execute_operator("@stoplight/autolabel/load_review_answers", ctx={"dataset": ds, "params": {}})


def test_load_refuses_bad_fields_before_contacting_the_tool(queued, label_studio):
    ds, n = queued
    server = label_studio
    send_for_review(ds, FIELD, "f", limit=1, url=server.url, api_key=server.api_key)
    for kwargs, match in [
        (dict(corrections_field=FIELD), "corrections_field"),
        (dict(corrections_field="filepath"), "filepath"),
        (dict(dest_field="filepath"), "filepath"),
        (dict(move_tolerance=-1), "move_tolerance"),
        (dict(dest_field="x", corrections_field="x"), "must differ"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_review_answers(ds, "f", url=server.url, api_key=server.api_key, **kwargs)
    assert all(_attr(d, "review") is None for d in _labels(ds).values())
    # an annotation run not made by send_for_review is named as such
    ds.select_labels(ids=[n["b1"]], fields=FIELD).annotate(
        "plain", backend="labelstudio", label_field=FIELD, url=server.url, api_key=server.api_key,
        attributes=False,
    )
    with pytest.raises(ValueError, match="not sent by send_for_review"):
        load_review_answers(ds, "plain", url=server.url, api_key=server.api_key)
    assert handoff.handoff_run_key("f") in ds.list_runs()
