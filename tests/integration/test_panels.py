"""The two panels without a browser: their pure functions, and their methods
called with a real FiftyOne ``ExecutionContext`` (as the App server builds
it) on the digits dataset with real triage queues. What a method asks the
App to do (set the view, open a sample, patch panel state and data) is read
from the context's executor, the way the App receives it."""

from __future__ import annotations

import collections
import time

import fiftyone as fo
import numpy as np
import pytest
from digitskit import triaged_digits
from fiftyone.operators.executor import ExecutionContext, Executor

from stoplight.plugins.common import stored_results
from stoplight.plugins.panels.label_map import LabelMapPanel
from stoplight.plugins.panels.label_map import core as label_map
from stoplight.plugins.panels.shared import app_context, count_cache, queue_stats
from stoplight.plugins.panels.verification_queues import VerificationQueues, charts
from stoplight.plugins.review.decisions import review_labels, undo_last
from stoplight.plugins.triage import workflow

FIELD = "autolabels"


@pytest.fixture(scope="module")
def digits(tmp_root):
    # per class: green as a whole would leave too few yellow labels here
    ds, _ = triaged_digits(tmp_root / "digits-panels", seed=1, scope="class")
    yield ds
    ds.delete()


@pytest.fixture()
def fresh(digits):
    clone = digits.clone()
    yield clone
    clone.delete()


def _labels(view, *attrs):
    return view.values([f"{FIELD}.detections.{a}" for a in ("id", *attrs)], unwind=True)


def _truth_counts(view):
    ids, label, queue, review = _labels(view, "label", "queue", "review")
    out = collections.Counter()
    for c, q, r in zip(label, queue, review):
        out[(c, q if q in queue_stats.QUEUES else "unassigned", r if r in ("accepted", "rejected") else "pending")] += 1
    return out


# -- counts -------------------------------------------------------------------


def test_counts_match_the_labels_in_the_view(fresh):
    ids, queue = _labels(fresh, "queue")
    green = [i for i, q in zip(ids, queue) if q == "green"]
    yellow = [i for i, q in zip(ids, queue) if q == "yellow"]
    review_labels(fresh, FIELD, "accept", label_ids=green[:7], user="ann")
    review_labels(fresh, FIELD, "reject", label_ids=yellow[:3], user="ann")
    review_labels(fresh, FIELD, "reset", label_ids=yellow[3:5], user="ann")  # "pending" stored
    # two labels lose their queue: counted as unassigned
    fresh.set_label_values(f"{FIELD}.detections.queue", {i: None for i in green[-2:]})
    for view in (fresh, fresh.match_tags("verified"), fresh.filter_labels(FIELD, fo.ViewField("label") == "3")):
        rows = queue_stats.count_labels(view, FIELD)
        got = {(r["label"], r["queue"], r["review"]): r["count"] for r in rows}
        assert got == dict(_truth_counts(view))
    s = queue_stats.summarize_counts(queue_stats.count_labels(fresh, FIELD))
    assert (s["accepted"], s["rejected"], s["total"]) == (7, 3, len(ids))
    assert s["queues"]["unassigned"]["count"] == 2
    assert s["queues"]["yellow"]["rejected"] == 3 and s["yellow_open"] == s["queues"]["yellow"]["count"] - 3
    assert sum(c["total"] for c in s["by_class"].values()) == len(ids)
    assert s["progress"] == pytest.approx(10 / len(ids))


# -- stored counts (count_cache) ----------------------------------------------------

# the tests wait this long after a write before counting, so that the result
# is stored; a write right after a store is then later than its token
_SETTLE_S = 0.005


def _plain(view, field=FIELD):
    return sorted((str(r["label"]), r["queue"], r["review"], r["count"]) for r in queue_stats.count_labels(view, field))


def _cached(view, field=FIELD):
    time.sleep(2 * _SETTLE_S)
    rows = count_cache.count_labels_cached(view, field, settle_s=_SETTLE_S)
    return sorted((str(r["label"]), r["queue"], r["review"], r["count"]) for r in rows)


def _stored(ds, field=FIELD, what="cells"):
    return stored_results.collection(count_cache.COLLECTION).find_one({"_id": f"{ds._doc.id}/{field}/{what}"})


def test_stored_counts_equal_the_aggregation_through_writes(fresh, tmp_root):
    assert _cached(fresh) == _plain(fresh)
    assert _stored(fresh) is not None
    ids, queue = _labels(fresh, "queue")
    green = [i for i, q in zip(ids, queue) if q == "green"]
    yellow = [i for i, q in zip(ids, queue) if q == "yellow"]
    new = fo.Sample(filepath=str(tmp_root / "extra.png"),
                    autolabels=fo.Detections(detections=[fo.Detection(label="7", queue="red", bounding_box=[0, 0, 1, 1])]))
    steps = {
        "accept": lambda: review_labels(fresh, FIELD, "accept", label_ids=green[:5], user="ann"),
        "reject": lambda: review_labels(fresh, FIELD, "reject", label_ids=yellow[:2], user="bob"),
        "undo": lambda: undo_last(fresh, user="bob"),
        "queue removed": lambda: fresh.set_label_values(f"{FIELD}.detections.queue", {green[-1]: None}),
        "re-triage": lambda: workflow.assign_queues(fresh, FIELD),
        "label deleted": lambda: fresh.delete_labels(ids=[yellow[-1]]),
        "samples deleted": lambda: fresh.delete_samples(fresh.take(3, seed=1)),
        "sample added": lambda: fresh.add_sample(new),
    }
    for name, step in steps.items():
        before = _plain(fresh)
        step()
        truth = _plain(fresh)
        assert _cached(fresh) == truth, name
        assert _cached(fresh.view()) == truth, name  # the App's view of the whole dataset
        assert _stored(fresh)["token"]["samples"] == len(fresh), name
        if name != "undo":  # undo restores the counts of before "reject"
            assert truth != before, f"{name} changed no count: the step tests nothing"
    # other views always run the aggregation and leave the stored counts alone
    stored = _stored(fresh)
    for view in (fresh.match_tags("verified"), fresh.filter_labels(FIELD, fo.ViewField("label") == "3"),
                 fresh.take(10, seed=0)):
        assert _cached(view) == _plain(view)
        assert _cached(view) != _plain(fresh)
    assert _stored(fresh) == stored


def test_stored_counts_are_used_only_while_the_samples_are_unchanged(fresh):
    truth = _plain(fresh)
    coll = stored_results.collection(count_cache.COLLECTION)

    def tamper():
        _cached(fresh)
        coll.update_one({"_id": _stored(fresh)["_id"]}, {"$inc": {"rows.0.n": 1000}})
        # the stored document is what is served while the token holds
        assert _cached(fresh) != truth

    tamper()
    # any sample write, even one that changes no count, retires it
    fresh.select_labels(ids=_labels(fresh)[0][:1]).tag_labels("seen")
    assert _cached(fresh) == truth
    tamper()
    # a deleted sample (the least recently written: the newest write stays)
    newest = fresh.bounds("last_modified_at")[1]
    fresh.delete_samples(fresh.sort_by("last_modified_at").limit(1))
    assert fresh.bounds("last_modified_at")[1] == newest
    assert _cached(fresh) == _plain(fresh) != truth
    # another field renamed into this one's name
    tamper()
    fresh.clone_sample_field(FIELD, "other")
    fresh.set_values("other.detections.queue", [["red"] * len(d) for d in fresh.values("other.detections.id")])
    fresh.rename_sample_field(FIELD, "before")
    fresh.rename_sample_field("other", FIELD)
    assert _cached(fresh) == _plain(fresh) != truth
    assert {r[1] for r in _cached(fresh)} == {"red"}
    # a result computed right after a write is stored unsettled: never
    # served on its token alone, every sample written in the last settle_s
    # read again (here all: 3600 s)
    fresh.tag_samples("touched")
    rows = count_cache.count_labels_cached(fresh, FIELD, settle_s=3600)
    assert sorted((str(r["label"]), r["queue"], r["review"], r["count"]) for r in rows) == _plain(fresh)
    unsettled = _stored(fresh)
    assert unsettled["settled"] is False and unsettled["since"] < unsettled["token"]["last_modified_at"]
    coll.update_one({"_id": unsettled["_id"]}, {"$inc": {"rows.0.n": 1000, "buckets.0.cells.0.3": 1000}})
    rows = count_cache.count_labels_cached(fresh, FIELD, settle_s=3600)
    assert sorted((str(r["label"]), r["queue"], r["review"], r["count"]) for r in rows) == _plain(fresh)
    assert _cached(fresh) == _plain(fresh)
    assert _stored(fresh)["settled"] is True
    assert count_cache.forget_counts(fresh) == 1 and _stored(fresh) is None
    with pytest.raises(ValueError, match="settle_s"):
        count_cache.count_labels_cached(fresh, FIELD, settle_s=-1)
    with pytest.raises(ValueError, match="nope"):
        count_cache.count_labels_cached(fresh, "nope")


def test_stored_next_yellow_follows_decisions(fresh):
    def nxt(view):
        time.sleep(2 * _SETTLE_S)
        return count_cache.next_yellow_cached(view, FIELD, 5, settle_s=_SETTLE_S)

    first = nxt(fresh)
    assert first == queue_stats.next_yellow(fresh, FIELD, 5) and len(first) == 5
    stored = _stored(fresh, what="next_yellow")
    assert [str(e["label_id"]) for e in stored["entries"][:5]] == [r["label_id"] for r in first]
    coll = stored_results.collection(count_cache.COLLECTION)
    coll.update_one({"_id": stored["_id"]}, {"$set": {"entries": stored["entries"][4::-1]}})
    assert nxt(fresh) == first[::-1]  # served while the samples are unchanged
    coll.replace_one({"_id": stored["_id"]}, stored)
    # deciding the first yellow label retires it: the list moves up
    review_labels(fresh, FIELD, "accept", label_ids=[first[0]["label_id"]], user="ann")
    moved = nxt(fresh)
    assert moved == queue_stats.next_yellow(fresh, FIELD, 5) and moved[:4] == first[1:]
    # a view runs the query
    view = fresh.match_tags("verified")
    assert nxt(view) == queue_stats.next_yellow(view, FIELD, 5) != moved
    with pytest.raises(ValueError, match="limit"):
        count_cache.next_yellow_cached(fresh, FIELD, 0)
    assert count_cache.forget_counts(fresh) == 1 and _stored(fresh, what="next_yellow") is None


def _cells_key(cells):
    return sorted((str(c["label"]), str(c["queue"]), c["review"], c["n"], c["p_n"], c["p_min"], round(c["p_sum"], 6))
                  for c in cells)


@pytest.mark.parametrize("depth,bucket,settle", [(6, 10, _SETTLE_S), (200, 40, _SETTLE_S), (200, 5, 0.2)])
def test_stored_results_are_exact_through_random_writes(fresh, tmp_root, monkeypatch, depth, bucket, settle):
    """The stored counts (per ``_id`` range, ranges with changed samples
    counted again) and the next-yellow list (brought up to date from the
    changed samples) equal the plain queries after every kind of write, in
    a random order: decisions, undo, resets, re-triage, queue and rank
    edits, deleted labels and samples, added samples. ``depth`` 6 (the
    stored list barely longer than what is asked) forces the threshold and
    the recomputation paths; ``bucket`` 10 makes ~15 ranges. With ``settle``
    0.2 s every look comes right after a write: results are stored
    unsettled and brought up to date from the samples of the last 0.2 s."""
    monkeypatch.setattr(count_cache, "NEXT_DEPTH", depth)
    monkeypatch.setattr(count_cache, "BUCKET_SAMPLES", bucket)
    monkeypatch.setattr(count_cache, "MAX_DELTA_SAMPLES", 40)
    rng = np.random.default_rng(depth)
    paths = collections.Counter()

    def counted(name, fn):
        def wrapper(*args):
            out = fn(*args)
            paths[f"{name}: {'updated' if out is not None else 'computed again'}"] += 1
            return out
        return wrapper

    monkeypatch.setattr(count_cache, "_apply_delta", counted("next", count_cache._apply_delta))
    monkeypatch.setattr(count_cache, "_update_buckets", counted("cells", count_cache._update_buckets))

    def yellow_open():
        ids, queue, review = _labels(fresh, "queue", "review")
        return [i for i, q, r in zip(ids, queue, review) if q == "yellow" and r not in ("accepted", "rejected")]

    def decide(action):
        ids = yellow_open()
        nxt = [r["label_id"] for r in queue_stats.next_yellow(fresh, FIELD, 3)]
        picks = nxt[: rng.integers(1, 3)] + list(rng.choice(ids, size=min(2, len(ids)), replace=False))
        review_labels(fresh, FIELD, action, label_ids=picks, user="ann")

    def edit_label(attr, value):
        ids = _labels(fresh)[0]
        fresh.set_label_values(f"{FIELD}.detections.{attr}", {str(rng.choice(ids)): value})

    def add_sample():
        fresh.add_sample(fo.Sample(filepath=str(tmp_root / f"extra-{rng.integers(1e9)}.png"),
                                   autolabels=fo.Detections(detections=[
                                       fo.Detection(label="4", queue="yellow", review_rank=1, bounding_box=[0, 0, 1, 1])])))

    writes = {
        "accept": lambda: decide("accept"),
        "reject": lambda: decide("reject"),
        "reset": lambda: review_labels(fresh, FIELD, "reset", label_ids=_labels(fresh)[0][:40], user="ann"),
        "undo": lambda: undo_last(fresh, user="ann"),
        "to yellow, rank 0": lambda: (edit_label("queue", "yellow"), edit_label("review_rank", 0)),
        "rank changed": lambda: edit_label("review_rank", int(rng.integers(0, 50))),
        "label deleted": lambda: fresh.delete_labels(ids=[queue_stats.next_yellow(fresh, FIELD, 1)[0]["label_id"]]),
        "sample deleted": lambda: fresh.delete_samples(
            [queue_stats.next_yellow(fresh, FIELD, 2)[-1]["sample_id"]]),
        "sample added": add_sample,
        # as many samples as before: the deletion shows only per range
        "sample replaced": lambda: (fresh.delete_samples([queue_stats.next_yellow(fresh, FIELD, 1)[0]["sample_id"]]),
                                    add_sample()),
        "re-triage": lambda: workflow.assign_queues(fresh, FIELD),
        "tag only": lambda: fresh.take(3, seed=int(rng.integers(100))).tag_samples("seen"),
    }
    names = list(writes) * 2
    rng.shuffle(names)
    unsettled = 0
    for step, name in enumerate(names):
        writes[name]()
        if settle == _SETTLE_S:
            time.sleep(2 * settle)
        for limit in (5, 1):
            got = count_cache.next_yellow_cached(fresh, FIELD, limit, settle_s=settle)
            assert got == queue_stats.next_yellow(fresh, FIELD, limit), f"step {step}: after {name!r}"
        cells = count_cache.label_cells_cached(fresh, FIELD, settle_s=settle)
        assert _cells_key(cells) == _cells_key(workflow.label_cells(fresh, FIELD)), f"step {step}: after {name!r}"
        unsettled += not _stored(fresh)["settled"]
    assert unsettled >= (len(names) // 2 if settle > _SETTLE_S else 0)
    assert _cached(fresh) == _plain(fresh)
    # every way of answering was taken
    for what in ("next: updated", "next: computed again", "cells: updated", "cells: computed again"):
        assert paths[what] >= 1, paths
    assert paths["next: updated"] >= 5 and paths["cells: updated"] >= 5, paths
    assert len(_stored(fresh)["buckets"]) >= 3


def test_summary_of_no_rows_and_bad_field(fresh):
    s = queue_stats.summarize_counts([])
    assert s["total"] == 0 and s["progress"] is None and s["classes"] == []
    assert queue_stats.count_labels(fresh.limit(0), FIELD) == []
    with pytest.raises(ValueError, match="Unknown label field 'nope'"):
        queue_stats.count_labels(fresh, "nope")


def test_next_yellow_follows_review_rank_and_skips_decided(fresh):
    ids, queue, rank = _labels(fresh, "queue", "review_rank")
    order = [i for _, i in sorted((r, i) for i, q, r in zip(ids, queue, rank) if q == "yellow")]
    assert [r["label_id"] for r in queue_stats.next_yellow(fresh, FIELD, 5)] == order[:5]
    review_labels(fresh, FIELD, "accept", label_ids=order[:2], user="ann")
    got = queue_stats.next_yellow(fresh, FIELD, 5)
    assert [r["label_id"] for r in got] == order[2:7]
    assert [r["rank"] for r in got] == sorted(r["rank"] for r in got)
    lid_to_sid = {lid: sid for sid, lids in zip(*fresh.values(["id", f"{FIELD}.detections.id"])) for lid in lids}
    assert all(lid_to_sid[r["label_id"]] == r["sample_id"] for r in got)
    with pytest.raises(ValueError, match="'limit'"):
        queue_stats.next_yellow(fresh, FIELD, 0)


def test_drilldown_views_and_stripping_them(fresh):
    base = fresh.match_tags("verified")
    v = queue_stats.drilldown_view(base, FIELD, queue="yellow", label="4")
    _, label, queue = _labels(v, "label", "queue")
    truth = _truth_counts(base)
    assert len(label) == sum(n for (c, q, _), n in truth.items() if c == "4" and q == "yellow") > 0
    assert set(label) == {"4"} and set(queue) == {"yellow"}
    # the App may append its sidebar filters after the panel's stage
    extra = v.match(fo.ViewField("filepath").exists())
    for view, expected in ((v, base), (extra, base.match(fo.ViewField("filepath").exists()))):
        stripped, found = queue_stats.strip_drilldown(view, FIELD, dict(queue="yellow", label="4"))
        assert found
        assert stripped._serialize(include_uuids=False) == expected._serialize(include_uuids=False)
        assert stripped.count(f"{FIELD}.detections") == expected.count(f"{FIELD}.detections")
    # another drill (or none) is not stripped
    assert queue_stats.strip_drilldown(v, FIELD, dict(queue="green"))[1] is False
    assert queue_stats.strip_drilldown(v, FIELD, None) == (v, False)
    pending = queue_stats.drilldown_view(fresh, FIELD, review="pending")
    assert pending.count(f"{FIELD}.detections") == fresh.count(f"{FIELD}.detections")
    with pytest.raises(ValueError, match="'queue' must be one of"):
        queue_stats.drilldown_view(fresh, FIELD, queue="blue")
    with pytest.raises(ValueError, match="Choose a queue"):
        queue_stats.drilldown_view(fresh, FIELD)


def test_charts_rows_and_traces(digits):
    s = queue_stats.summarize_counts(queue_stats.count_labels(digits, FIELD))
    report = workflow.triage_report(digits, FIELD, "triage")
    rows = charts.queue_rows(s, report)
    assert [r["queue"] for r in rows] == ["green", "yellow", "red"]
    assert [r["count"] for r in rows] == [report["queues"][q]["count"] for q in ("green", "yellow", "red")]
    bars = charts.counts_bar_traces(s)
    assert [t["name"] for t in bars] == ["green", "yellow", "red"]
    for t in bars:
        assert t["y"] == [s["by_class"][c][t["name"]] for c in t["x"]]
    cal = workflow.load_calibration(digits, "triage")
    curves = charts.curve_traces(cal)
    lines = [t for t in curves if t["mode"] == "lines"]
    assert {t["name"] for t in lines} == {str(c) for c in cal["curves"]}
    greens = [t for t in curves if t["name"] == "green threshold"]
    n_green = sum(v.get("green_threshold") is not None for v in cal["per_class"].values())
    assert (len(greens[0]["x"]) if greens else 0) == n_green > 0
    layout = charts.curve_layout(0.9)
    assert layout["shapes"][0]["y0"] == 0.9
    text = "\n".join(charts.report_lines(s, report))
    assert f"{s['total']:,} labels" in text and "Expected precision" in text and "savings" in text


# -- label map ------------------------------------------------------------------


def test_pca_projection_is_the_top_two_components():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 8)) * np.array([5, 3, 1, 1, 0.5, 0.5, 0.1, 0.1])
    xy, used = label_map.project_2d(X, method="pca")
    assert used == "pca" and xy.shape == (500, 2) and xy.dtype == np.float32
    Xc = X - X.mean(0)
    top = np.sort(np.linalg.eigvalsh(np.cov(Xc.T)))[::-1][:2]
    assert np.var(xy, axis=0, ddof=1) == pytest.approx(top, rel=1e-3)
    again, _ = label_map.project_2d(X[::-1], method="pca")
    assert np.allclose(again[::-1], xy, atol=1e-4)  # same picture, signs fixed
    assert label_map.project_2d(X[:3], method="auto")[1] == "pca"  # too few for UMAP
    with pytest.raises(ValueError, match="'method'"):
        label_map.project_2d(X, method="tsne")
    X[4, 2] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        label_map.project_2d(X, method="pca")


def test_sampling_caps_each_colour_and_is_stable():
    rng = np.random.default_rng(0)
    groups = np.array(["green"] * 9000 + ["red"] * 30 + ["yellow"] * 400, dtype=object)
    prio = rng.random(len(groups))
    keep = label_map.sample_per_group(groups, prio, 100)
    assert collections.Counter(groups[keep]) == {"green": 100, "red": 30, "yellow": 100}
    # the chosen points of a colour are its smallest priorities, whatever the other colours
    green = np.flatnonzero(groups == "green")
    assert set(keep[groups[keep] == "green"]) == set(green[np.argsort(prio[green])[:100]])
    xy = rng.normal(size=(len(groups), 2))
    ids = np.array([f"id{i}" for i in range(len(groups))], dtype=object)
    traces = label_map.map_traces(xy, ids, groups, prio, "queue", max_per_group=100)
    assert [t["name"] for t in traces] == ["green (100/9,000)", "yellow (100/400)", "red (30/30)"]
    assert all(t["type"] == "scatter" for t in traces)
    many = label_map.map_traces(xy, ids, groups, prio, "queue", max_per_group=5000, gl_threshold=5000)
    assert many[0]["type"] == "scattergl" and len(many[0]["x"]) == 5000
    t0 = traces[0]
    assert t0["ids"] == ids[keep[groups[keep] == "green"]].tolist()
    with pytest.raises(ValueError, match="'max_per_group'"):
        label_map.sample_per_group(groups, prio, 0)
    with pytest.raises(ValueError, match="'color_by'"):
        label_map.map_traces(xy, ids, groups, prio, "size")


def test_label_map_is_computed_once_stored_and_joined(fresh):
    out = label_map.compute_label_map(fresh, FIELD, method="pca")
    n = fresh.count(f"{FIELD}.detections")
    assert out == dict(run_key="label_map_autolabels", method="pca", num_labels=n, dim=32)
    m = label_map.load_label_map(fresh, FIELD)
    assert m["xy"].shape == (n, 2) and set(m["label_ids"]) == set(_labels(fresh)[0])
    assert label_map.load_label_map(fresh, FIELD) is m  # cached until recomputed
    ids = _labels(fresh)[0]
    X = np.asarray([v for vs in fresh.values(f"{FIELD}.detections.embedding") for v in vs], np.float32)
    expected, _ = label_map.project_2d(X, method="pca")
    row = {lid: i for i, lid in enumerate(m["label_ids"])}
    assert np.allclose(m["xy"][[row[i] for i in ids]], expected, atol=1e-3)
    # a view's labels find their points
    view = fresh.match_tags("verified")
    states = label_map.label_states(view, FIELD)
    mr, sr = label_map.join_map(m, states)
    assert len(sr) == view.count(f"{FIELD}.detections")
    assert list(m["label_ids"][mr]) == list(states["label_id"][sr])
    label_map.compute_label_map(fresh, FIELD, method="pca", seed=3)
    assert fresh.list_runs().count("label_map_autolabels") == 1
    assert label_map.load_label_map(fresh, FIELD) is not m
    with pytest.raises(ValueError, match="No label of field 'ground_truth' has an 'embedding'"):
        label_map.compute_label_map(fresh, "ground_truth")


# -- panel methods with a real execution context ------------------------------------


class Session:
    """What the App keeps between panel events: the panel state, the view,
    the selection. Each call builds the request the App would send."""

    def __init__(self, dataset, panel):
        self.dataset, self.panel = dataset, panel
        self.state: dict = {}
        self.view = dataset.view()
        self.selected_labels: list = []
        self.selected: list = []
        self.active_fields: list = []
        self.requests: list[dict] = []
        self.data: dict = {}

    def call(self, method: str, **params):
        request = dict(
            dataset_name=self.dataset.name,
            view=self.view._serialize(),
            selected=self.selected,
            selected_labels=self.selected_labels,
            active_fields=self.active_fields,
            params=dict(panel_id="panel-1", panel_state=self.state, **params),
        )
        executor = Executor()
        ctx = ExecutionContext(request_params=request, executor=executor)
        getattr(self.panel, method)(ctx)
        self.panel.render(ctx).to_json()  # the App renders after every event
        self.requests = [r.to_json() for r in executor._requests]
        for r in self.requests:
            name = r["operator_uri"].split("/")[-1]
            if name == "patch_panel_data":
                self.data.update(r["params"]["data"])
            if name == "set_view":  # the App applies it and sends it back
                self.view = fo.core.view.DatasetView._build(self.dataset, r["params"]["view"])
        return ctx

    def ops(self, name: str) -> list[dict]:
        return [r["params"] for r in self.requests if r["operator_uri"].split("/")[-1] == name]


def test_verification_panel_counts_drilldown_and_decisions(fresh):
    app = Session(fresh, VerificationQueues())
    app.call("on_load")
    truth = queue_stats.summarize_counts(queue_stats.count_labels(fresh, FIELD))
    assert app.state["label_field"] == FIELD and app.state["calibration_key"] == "triage"
    assert [r["count"] for r in app.data["queue_table"]] == [truth["queues"][q]["count"] for q in ("green", "yellow", "red")]
    assert [r["label"] for r in app.data["class_table"]] == truth["classes"]
    assert app.data["curves_plot"] and app.data["counts_plot"]
    assert len(app.data["next_table"]) == 10

    # the next questions at the top, as crops of the labels (JPEG data URLs)
    strip = app.state["next_strip"]
    assert len(strip) == 8 and all(c["img"].startswith("data:image/jpeg;base64,") for c in strip.values())
    first = queue_stats.next_yellow(fresh, FIELD, 1)[0]
    assert strip["c0"]["cap"].startswith(first["label"])

    # a click on the yellow row shows exactly the yellow labels, and only
    # the field under review is drawn (the App's active fields)
    app.active_fields = [FIELD, "ground_truth", "knn_model"]
    app.call("on_queue_cell", row=1, column=0, path="queue_table")
    assert app.state["drill"] == {"queue": "yellow"}
    assert app.ops("set_active_fields") == [{"fields": [FIELD]}]
    _, queue = _labels(app.view, "queue")
    assert set(queue) == {"yellow"} and len(queue) == truth["queues"]["yellow"]["count"]
    # the App reports the new view: the counts still describe the base view
    app.call("on_change_view")
    assert app.state["drill"] == {"queue": "yellow"}
    assert app.state["summary"]["total"] == truth["total"]
    # a bar of the stacked chart: class 4, its green part
    app.call("on_bar_click", x="4", trace="green")
    assert app.state["drill"] == {"label": "4", "queue": "green"}
    _, label, queue = _labels(app.view, "label", "queue")
    assert set(label) <= {"4"} and set(queue) <= {"green"}
    assert len(label) == truth["by_class"]["4"]["green"]
    # a class cell in the "Pending" column
    app.call("on_class_cell", row=truth["classes"].index("3"), column=5)
    assert app.state["drill"] == {"label": "3", "review": "pending"}
    app.call("show_all")
    assert app.state["drill"] is None and app.view._stages == []
    # the user's fields come back
    assert app.ops("set_active_fields") == [{"fields": [FIELD, "ground_truth", "knn_model"]}]

    # select two labels in the App, accept them
    ids, queue = _labels(fresh, "queue")
    yellow = [i for i, q in zip(ids, queue) if q == "yellow"]
    sid_of = {lid: sid for sid, lids in zip(*fresh.values(["id", f"{FIELD}.detections.id"])) for lid in lids}
    app.selected_labels = [dict(label_id=i, sample_id=sid_of[i], field=FIELD) for i in yellow[:2]]
    app.call("on_change_selected_labels")
    assert app.state["num_selected_labels"] == 2
    app.call("accept_selected")
    assert len(app.ops("clear_selected_labels")) == 1
    review = dict(zip(*_labels(fresh, "review")))
    assert [review[i] for i in yellow[:2]] == ["accepted", "accepted"]
    assert app.state["summary"]["accepted"] == 2

    # reject one green label, then accept all green: the rejection stands
    green = [i for i, q in zip(ids, queue) if q == "green"]
    review_labels(fresh, FIELD, "reject", label_ids=green[:1], user="bob")
    app.selected_labels = []
    # a bulk decision asks first; cancelling decides nothing
    app.call("accept_green")
    assert app.state["confirm"] == dict(action="accept", queue="green", count=len(green) - 1)
    assert not any(r == "accepted" for g, r in zip(*_labels(fresh, "review")) if g in green)
    app.call("cancel_bulk")
    assert app.state["confirm"] is None
    assert not any(r == "accepted" for g, r in zip(*_labels(fresh, "review")) if g in green)
    app.call("accept_green")
    app.call("confirm_bulk")
    review = dict(zip(*_labels(fresh, "review")))
    bulk = dict(zip(*_labels(fresh, "review_bulk")))
    assert all(bulk[i] is True for i in green[1:]) and bulk[yellow[0]] is False
    assert review[green[0]] == "rejected"
    assert all(review[i] == "accepted" for i in green[1:])
    assert app.state["summary"]["accepted"] == 2 + len(green) - 1
    assert app.state["summary"]["bulk"] == len(green) - 1
    assert "Accepted" in app.state["message"] and "in bulk" in app.state["message"]
    # the report says the green labels are bulk accepts, not checked ones
    assert any("accepted in bulk" in line and "2 checked by people" in line for line in app.state["report_lines"])
    assert app.ops("reload_samples")
    # undo (same user as the panel's actions) puts green back to pending
    app.call("undo")
    review = dict(zip(*_labels(fresh, "review")))
    assert all(review[i] in (None, "pending") for i in green[1:]) and review[green[0]] == "rejected"
    assert app.state["summary"]["accepted"] == 2
    # nothing selected: a clear message, nothing written
    app.call("reject_selected")
    assert app.state["message"].startswith("⚠ Nothing selected")
    assert app.ops("notify")[0]["variant"] == "error"


def test_verification_panel_shows_recall_and_the_threshold_curve(fresh):
    app = Session(fresh, VerificationQueues())
    app.call("on_load")
    rec = workflow.triage_report(fresh, FIELD)["recall"]
    auto = rec["auto"]["overall"]
    line = next(x for x in app.state["report_lines"] if x.startswith("**Recall**"))
    lo, hi = auto["interval"]
    assert f"{rec['images']:,} verified images" in line and f"{rec['objects']:,} verified objects" in line
    assert f"{100 * auto['estimate']:.1f} % [{100 * lo:.1f}–{100 * hi:.1f}]" in line
    worst = min(rec["auto"]["classes"].items(), key=lambda cb: cb[1]["estimate"])
    assert f"found least: class '{worst[0]}'" in line
    low, up = rec["curve"][:2]
    trade = next(x for x in app.state["report_lines"] if x.startswith("**Labeling threshold**"))
    assert f"+{low['added_labels']:,} labels" in trade
    assert low["added_labels"] == low["labels"] - up["labels"] > 0
    traces = {t["name"]: t for t in app.data["recall_plot"]}
    assert traces["recall"]["y"] == [p["recall"] for p in rec["curve"]]
    assert traces["precision"]["x"] == [p["threshold"] for p in rec["curve"]]
    assert traces["recall interval"]["y"] == [p["recall_interval"][0] for p in rec["curve"]]
    assert app.state["has_recall_curve"]
    # rejecting every label of a verified image lowers the final labels' recall
    sid = fresh.match_tags("verified").first().id
    review_labels(fresh, FIELD, "reject", sample_ids=[sid], user="tester")
    app.call("on_load")
    after = workflow.triage_report(fresh, FIELD)["recall"]
    assert after["final"]["overall"]["k"] < rec["final"]["overall"]["k"]
    assert f"the final labels {100 * after['final']['overall']['estimate']:.1f} %" in app.state["report_lines"][
        [x.startswith("**Recall**") for x in app.state["report_lines"]].index(True)]


def test_a_late_refresh_keeps_the_newer_selection(fresh):
    app = Session(fresh, VerificationQueues())
    app.call("on_load")
    assert app.state["num_selected_labels"] == 0
    sid, lids = fresh.first().id, [d.id for d in fresh.first()[FIELD].detections]
    # the user selects a label while the refresh of an earlier view change
    # is still running; that refresh was requested with no selection and
    # is answered last
    app.selected_labels = [dict(label_id=lids[0], sample_id=sid, field=FIELD)]
    app.call("on_change_selected_labels")
    assert app.state["num_selected_labels"] == 1
    app.selected_labels = []
    app.call("on_change_view")
    assert app.state["num_selected_labels"] == 1
    app.call("on_change_selected_labels")
    assert app.state["num_selected_labels"] == 0


def test_next_yellow_row_opens_its_sample(fresh):
    app = Session(fresh, VerificationQueues())
    app.call("on_load")
    first = queue_stats.next_yellow(fresh, FIELD, 1)[0]
    app.call("on_next_cell", row=0, column=0)
    assert _labels(app.view)[0] == [first["label_id"]]
    # the sample opens once the App has applied the view (a view change
    # landing after open_sample would close the modal)
    assert not app.ops("open_sample")
    app.call("on_change_view")
    assert app.ops("open_sample")[0]["id"] == first["sample_id"]
    assert app.state["drill"] == {"label_ids": [first["label_id"]]}
    assert app.state["summary"]["total"] == fresh.count(f"{FIELD}.detections")
    app.call("on_change_view")
    assert not app.ops("open_sample")  # once
    # the same row again: the view is already that one, the sample opens now
    app.call("on_next_cell", row=0, column=0)
    assert app.ops("open_sample")[0]["id"] == first["sample_id"] and not app.ops("set_view")


def test_panels_without_labels_say_so(tmp_root):
    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath=str(tmp_root / "none.png")))
    try:
        for panel in (VerificationQueues(), LabelMapPanel()):
            app = Session(ds, panel)
            app.call("on_load")
            assert "no fo.Detections field" in app.state["error"]
    finally:
        ds.delete()


def test_label_map_panel_draws_selects_and_opens(fresh):
    app = Session(fresh, LabelMapPanel())
    app.call("on_load")
    assert app.state["has_map"] is False and app.data["map_plot"] == []
    app.state["method"] = "pca"
    app.call("compute_map")
    n = fresh.count(f"{FIELD}.detections")
    assert app.state["info"]["on_map"] == n and app.state["info"]["method"] == "pca"
    traces = app.data["map_plot"]
    assert sum(len(t["ids"]) for t in traces) == n
    assert {t["name"].split(" ")[0] for t in traces} <= {"green", "yellow", "red"}
    app.call("on_change_color_by", value="class")
    assert len(app.data["map_plot"]) == len(fresh.distinct(f"{FIELD}.detections.label"))

    # a lasso of some points: the grid shows exactly those labels
    chosen = traces[0]["ids"][:5] + traces[-1]["ids"][:3]
    app.call("on_map_selected", data=[dict(id=i, trace="x", idx=0) for i in chosen])
    assert sorted(_labels(app.view)[0]) == sorted(chosen)
    assert app.state["message"].startswith("⏳ Showing 8 selected")  # says it is working at once
    app.call("on_change_view")
    assert app.state["drill"] == {"label_ids": chosen}
    assert app.state["info"]["in_view"] == n  # the map keeps showing the base view
    # the selection is highlighted on the redrawn map
    highlighted = {t["ids"][k] for t in app.data["map_plot"] for k in t.get("selectedpoints", [])}
    assert highlighted == set(chosen) and all("selectedpoints" in t for t in app.data["map_plot"])
    assert "highlighted" in app.state["message"]
    # a click opens the point's sample
    sid_of = {lid: sid for sid, lids in zip(*fresh.values(["id", f"{FIELD}.detections.id"])) for lid in lids}
    app.call("on_point_click", id=chosen[0])
    assert app.ops("open_sample")[0]["id"] == sid_of[chosen[0]]
    # an empty selection (Plotly sends one on a plain click and when it
    # redraws the map after the view changed) keeps the user's selection
    app.call("on_map_selected", data=[])
    assert not app.ops("set_view")
    assert app.state["drill"] == {"label_ids": chosen}
    # Show all goes back to the base view
    app.call("show_all")
    assert app.view._stages == [] and app.state["drill"] is None
    # an event sent before the answer to the dropdown's own event carries
    # the old ``color_by`` but the dropdown's new value (``top.color_by``,
    # stored by the browser first): the map is drawn with the new one
    app.state["top"] = {"color_by": "queue"}
    app.state["color_by"] = "class"
    app.call("on_change_view")
    assert {t["name"].split(" ")[0] for t in app.data["map_plot"]} <= {"green", "yellow", "red"}
    assert app.state["color_by"] == "queue"
    # the App's copy of the plot's data in the state is cleared with each
    # redraw (merged with the new data, old traces showed among the new)
    assert app.state["map_plot"] is None
    # on_change_dataset for the same dataset (the App sends it after a
    # reload) keeps the selection shown; another dataset resets it
    app.call("on_map_selected", data=[dict(id=i, trace="x", idx=0) for i in chosen])
    app.call("on_change_dataset", value=fresh.name)
    assert app.state["drill"] == {"label_ids": chosen}
    assert {t["ids"][k] for t in app.data["map_plot"] for k in t.get("selectedpoints", [])} == set(chosen)
    app.state["dataset_name"] = "another-dataset"
    app.call("on_change_dataset", value=fresh.name)
    assert app.state["drill"] is None


def test_app_context_helpers(digits):
    assert app_context.label_fields(digits) == ["autolabels", "ground_truth", "knn_model"]
    assert app_context.choose_label_field(digits, "knn_model") == "knn_model"
    assert app_context.choose_label_field(digits, "gone") == "autolabels"
    assert app_context.calibration_key(digits, FIELD) == "triage"
    assert app_context.calibration_key(digits, "knn_model") is None
    sel = [dict(label_id="a", field=FIELD), dict(label_id="b", field="other")]
    assert app_context.selected_label_ids(sel, FIELD) == ["a"]


def test_panels_are_registered_with_the_app():
    from fiftyone.operators.registry import OperatorRegistry

    reg = OperatorRegistry()
    panels = {op.uri: op for op in reg.list_operators(builtin=False, type="panel")}
    assert {"@stoplight/autolabel/verification_queues", "@stoplight/autolabel/label_map"} <= set(panels)
    assert panels["@stoplight/autolabel/verification_queues"].config.surfaces == "grid"
    assert not [e for e in reg.list_errors() if "stoplight" in str(e)]


# -- split aggregations (common/split_scan) -------------------------------------


def test_split_aggregations_equal_one_aggregation(fresh, monkeypatch):
    """Counts, triage-report cells and next yellow labels computed as
    concurrent ``_id``-range aggregations equal one aggregation, for any
    number of ranges (also more ranges than samples); views split only
    when all their stages look at one sample at a time."""
    from stoplight.plugins.common import split_scan

    monkeypatch.setattr(split_scan, "MIN_SAMPLES", 0)
    review_labels(fresh, FIELD, "accept", label_ids=_labels(fresh)[0][:30], user="ann")
    n = len(fresh)
    for parts in (2, 3, 7, n + 5):
        ranges = split_scan.id_ranges(fresh, parts)
        coll = fresh._sample_collection
        assert sum(coll.count_documents(m) for m in ranges) == n, parts
        assert len(ranges) == min(parts, n)
    one = sorted(workflow.label_cells(fresh, FIELD, parts=1), key=lambda c: (str(c["label"]), str(c["queue"]), c["review"]))
    for parts in (2, 3, 7, n + 5):
        cells = sorted(workflow.label_cells(fresh, FIELD, parts=parts),
                       key=lambda c: (str(c["label"]), str(c["queue"]), c["review"]))
        assert [(c["label"], c["queue"], c["review"], c["n"], c["p_n"], c["p_min"]) for c in cells] == [
            (c["label"], c["queue"], c["review"], c["n"], c["p_n"], c["p_min"]) for c in one], parts
        assert [c["p_sum"] for c in cells] == pytest.approx([c["p_sum"] for c in one])
        assert sorted(map(str, queue_stats.count_labels(fresh, FIELD, parts=parts))) == sorted(
            map(str, queue_stats.count_labels(fresh, FIELD, parts=1)))
        for limit in (1, 5, 60):
            assert queue_stats.next_yellow(fresh, FIELD, limit, parts=parts) == queue_stats.next_yellow(
                fresh, FIELD, limit, parts=1), (parts, limit)
    assert dict(((r["label"], r["queue"], r["review"]), r["count"])
                for r in queue_stats.count_labels(fresh, FIELD, parts=3)) == dict(_truth_counts(fresh))

    # views of per-sample stages (the App's sidebar filters) are split too
    calls = collections.Counter()
    real_ranges = split_scan.id_ranges
    monkeypatch.setattr(split_scan, "id_ranges", lambda *a: calls.update(["split"]) or real_ranges(*a))
    filtered = (fresh.match_tags("verified"), fresh.filter_labels(FIELD, fo.ViewField("label") == "3"),
                fresh.exclude_fields("ground_truth").sort_by("filepath"))
    for view in filtered:
        assert dict(((r["label"], r["queue"], r["review"]), r["count"])
                    for r in queue_stats.count_labels(view, FIELD, parts=4)) == dict(_truth_counts(view))
        assert queue_stats.next_yellow(view, FIELD, 7, parts=4) == queue_stats.next_yellow(view, FIELD, 7, parts=1)
    assert calls["split"] == 2 * len(filtered)
    # ... but not views whose stages pick samples by position
    for view in (fresh.take(40, seed=2), fresh.sort_by("filepath").limit(30), fresh.skip(100)):
        assert dict(((r["label"], r["queue"], r["review"]), r["count"])
                    for r in queue_stats.count_labels(view, FIELD, parts=4)) == dict(_truth_counts(view))
    assert calls["split"] == 2 * len(filtered)
    with pytest.raises(ValueError, match="parts"):
        queue_stats.count_labels(fresh, FIELD, parts=0)


def test_stored_ranges_are_cut_again_when_samples_pile_up(fresh, tmp_root, monkeypatch):
    """Samples added after the ranges were cut all land in the last range;
    once it holds more than four times its share, the ranges are cut
    again (else it would be counted on every look)."""
    monkeypatch.setattr(count_cache, "BUCKET_SAMPLES", 10)
    assert _cached(fresh) == _plain(fresh)
    before = _stored(fresh)["buckets"]
    fresh.add_samples([
        fo.Sample(filepath=str(tmp_root / f"pile-{i}.png"), autolabels=fo.Detections(detections=[
            fo.Detection(label="1", queue="green", bounding_box=[0, 0, 1, 1])]))
        for i in range(60)
    ])
    assert _cached(fresh) == _plain(fresh)
    piled = _stored(fresh)["buckets"]
    assert len(piled) == len(before) and piled[-1]["samples"] >= 60
    fresh.take(2, seed=3).tag_samples("seen")
    assert _cached(fresh) == _plain(fresh)
    after = _stored(fresh)["buckets"]
    assert len(after) == len(fresh) // 10 and max(b["samples"] for b in after) < 40


def test_workload_uses_the_pace_measured_in_review_sessions(fresh, monkeypatch):
    import datetime

    from stoplight.plugins.review import decisions as D
    from stoplight.plugins.review.pace import review_pace

    app = Session(fresh, VerificationQueues())
    app.call("on_load")
    assert any("assumed until a review session" in line for line in app.state["report_lines"])
    clock = [datetime.datetime(2026, 1, 5, 9, 0, 0)]
    monkeypatch.setattr(D, "now_ms", lambda: clock[0])
    ids, queue = _labels(fresh, "queue")
    yellow = [i for i, q in zip(ids, queue) if q == "yellow"]
    # 25 answers 4 s apart, a long pause (not review time), 5 more; and a
    # bulk accept, which is no answer
    for k, lid in enumerate(yellow[:30]):
        clock[0] += datetime.timedelta(seconds=600 if k == 25 else 4)
        review_labels(fresh, FIELD, "accept", label_ids=[lid], user="alice")
    clock[0] += datetime.timedelta(seconds=1)
    review_labels(fresh, FIELD, "reject", label_ids=yellow[30:40], user="alice", bulk=True)
    pace = review_pace(fresh, FIELD)
    assert pace == dict(seconds_per_label=4.0, num_gaps=28, num_reviewers=1, sessions=2)
    app.call("on_change_view")
    line = next(l for l in app.state["report_lines"] if l.startswith("**Workload**"))
    assert "pace measured in review sessions, 4 s per label" in line
    open_yellow = app.state["summary"]["yellow_open"]
    assert f"≈ {open_yellow * 4 / 3600:.1f} h" in line
