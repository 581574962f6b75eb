"""Panel server time: the verification panel's counts and tables, the label
map's redraw, and accept-all-green, at 100k / 1M labels.

For each size N a synthetic dataset is built raw (not timed): 10
detections per sample, 20 classes, and per label ``queue`` (60 % green, 30 %
yellow, 10 % red), ``p_correct``, ``review_rank`` on yellow labels and a
``review`` on 5 % of them; with ``--map`` also a 64-d ``embedding`` (the
map's cost depends on the number of labels, not much on the dimension once
the projection is cached). Filepaths do not exist: panels read no pixels.

Timed, through the same calls the panels make, in interleaved rounds
(best of 3):

- ``counts`` (each + :func:`summarize_counts` + the table rows and bar
  traces): *one aggregation* (:func:`count_labels` with ``parts=1``, the
  counts and the triage report's sums in one ``$unwind`` + ``$group``),
  *ranges* (the same as concurrent ``_id``-range aggregations, what a
  whole dataset gets), *stored* (:func:`count_labels_cached` finding the
  counts of the unchanged dataset: two index look-ups + one document) and
  *nothing stored* (the stored counts forgotten: every ``_id`` range of
  ~1,500 samples counted and stored, the panel's first open and what it
  pays after a write that changed most samples);
- ``filtered view``: the counts of a view hiding one class with a label
  filter (what an App sidebar filter makes; never stored) as one
  aggregation and as concurrent ``_id`` ranges;
- ``next yellow``: the old query (every label unwound and reshaped, then
  matched), the new one (open yellow labels picked before the unwind) in
  one aggregation and in ranges, the stored list brought up to date after
  10 labels were decided, and the stored list served;
- ``first refresh after a decision``: 10 yellow labels accepted (not
  timed), then the panel's ``on_change_view`` (counts of the changed
  ranges only, next yellow from the changed samples, render) against
  *before*: one counts aggregation + the old next-yellow query;
- ``bare $unwind + $group``: the floor the counts stand on, one bare
  aggregation (for scale, as ``run_all.py`` reports it);
- with ``--variants``: other aggregation pipelines for the same counts
  (fields projected before the unwind, grouping on plain arrays, and the
  floor: one pass over the label arrays without unwinding);
- ``panel load``: ``VerificationQueues.on_load`` + ``render`` with a real
  ``ExecutionContext`` (no calibration run: the triage report is timed by
  ``bench_triage.py``), once the dataset's newest write is ``SETTLE_S``
  old so that the panel serves stored results;
- ``accept green``: ``VerificationQueues.accept_green`` (the review core
  deciding every pending green label, audit log included, then the
  refresh);
- with ``--map``: the PCA projection stored as a run, and the label map
  panel's load (read the run, join the view's labels, sample 5k per
  colour, build the traces).

    python benchmarks/bench_panels.py                       # 100k, 1M
    python benchmarks/bench_panels.py --sizes 100000 --map
    python benchmarks/bench_panels.py --sizes 100000 --variants --no-accept
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from stoplight_import import import_stoplight  # noqa: E402

NUM_CLASSES = 20
PER_SAMPLE = 10
DIM = 64


def build(n: int, name: str, with_embeddings: bool = False):
    """A dataset of ``n`` triaged labels, written with raw ``insert_many``."""
    import fiftyone as fo
    import numpy as np
    from bson import ObjectId

    rng = np.random.default_rng(0)
    cls = rng.integers(0, NUM_CLASSES, n)
    queue = rng.choice(np.array(["green", "yellow", "red"]), size=n, p=[0.6, 0.3, 0.1])
    p = np.where(queue == "green", rng.uniform(0.9, 1, n), np.where(queue == "red", rng.uniform(0, 0.2, n), rng.uniform(0.2, 0.9, n)))
    rank = np.zeros(n, np.int64)
    yellow = np.flatnonzero(queue == "yellow")
    rank[yellow] = rng.permutation(len(yellow)) + 1
    review = rng.choice(np.array(["accepted", "rejected", ""]), size=n, p=[0.03, 0.02, 0.95])
    emb = rng.normal(size=(n, DIM)).astype(np.float32) if with_embeddings else None
    names = [f"class_{i:02d}" for i in range(NUM_CLASSES)]
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    # persistent: another FiftyOne process starting on a shared database
    # deletes the non-persistent datasets it finds (measure() deletes this one)
    ds = fo.Dataset(name, persistent=True)
    tmpl = fo.Sample(filepath="/nonexistent/t.jpg",
                     autolabels=fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])]))
    ds.add_sample(tmpl)
    template = ds._sample_collection.find_one({"_id": ObjectId(tmpl.id)})
    det_tmpl = template["autolabels"]["detections"][0]
    ds.delete_samples([tmpl.id])
    docs = []
    for s in range((n + PER_SAMPLE - 1) // PER_SAMPLE):
        dets = []
        for i in range(s * PER_SAMPLE, min(n, (s + 1) * PER_SAMPLE)):
            d = dict(det_tmpl, _id=ObjectId(), label=names[cls[i]], queue=str(queue[i]), p_correct=float(p[i]),
                     review_rank=int(rank[i]) if rank[i] else None)
            if review[i]:
                d["review"] = str(review[i])
            if emb is not None:
                d["embedding"] = emb[i].tolist()
            dets.append(d)
        doc = {k: v for k, v in template.items() if k != "_id"}
        doc.update(filepath=f"/nonexistent/{s:07d}.jpg", autolabels={"_cls": "Detections", "detections": dets})
        docs.append(doc)
        if len(docs) == 2000:
            ds._sample_collection.insert_many(docs, ordered=False)
            docs = []
    if docs:
        ds._sample_collection.insert_many(docs, ordered=False)
    ds.add_dynamic_sample_fields()
    return ds


class _App:
    """A panel driven as the App server drives it (see tests/integration/test_panels.py)."""

    def __init__(self, dataset, panel):
        self.dataset, self.panel, self.state = dataset, panel, {}

    def call(self, method: str, **params):
        from fiftyone.operators.executor import ExecutionContext, Executor

        request = dict(dataset_name=self.dataset.name, view=[], selected=[], selected_labels=[],
                       params=dict(panel_id="bench", panel_state=self.state, **params))
        ctx = ExecutionContext(request_params=request, executor=Executor())
        getattr(self.panel, method)(ctx)
        self.panel.render(ctx)
        return ctx


def _variants(list_path: str) -> dict[str, list[dict]]:
    """Other pipelines for the same counts (the rows differ in shape only)."""
    lab = f"${list_path}"
    review = lambda x: {"$cond": [{"$in": [x, ["accepted", "rejected"]]}, x, "pending"]}  # noqa: E731
    return {
        "fields projected, then unwind": [
            {"$project": {"_l": {"$map": {"input": lab, "in": {"l": "$$this.label", "q": "$$this.queue", "r": "$$this.review"}}}}},
            {"$unwind": "$_l"},
            {"$group": {"_id": {"l": "$_l.l", "q": {"$ifNull": ["$_l.q", "unassigned"]}, "r": review("$_l.r")}, "n": {"$sum": 1}}},
        ],
        "arrays projected, group on array": [
            {"$project": {"_l": {"$map": {"input": lab, "in": ["$$this.label", "$$this.queue", "$$this.review"]}}}},
            {"$unwind": "$_l"},
            {"$group": {"_id": "$_l", "n": {"$sum": 1}}},
        ],
        "floor: one pass, no unwind": [
            {"$group": {"_id": None, "n": {"$sum": {"$size": {"$ifNull": [lab, []]}}}}},
        ],
    }


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _old_next_yellow(ds, limit: int = 10) -> list[dict]:
    """The next-yellow query as shipped before (every label unwound and
    reshaped, then matched): the "before" of the next-yellow timing."""
    pipeline = [
        {"$project": {"_l": "$autolabels"}},
        {"$unwind": "$_l.detections"},
        {"$replaceRoot": {"newRoot": {"$mergeObjects": ["$_l.detections", {"_s": "$_id"}]}}},
        {"$match": {"queue": "yellow", "review": {"$nin": ["accepted", "rejected"]}, "review_rank": {"$type": "number"}}},
        {"$sort": {"review_rank": 1, "_id": 1}},
        {"$limit": limit},
    ]
    return [dict(rank=int(d["review_rank"]), label_id=str(d["_id"])) for d in ds._aggregate(pipeline=pipeline)]


def measure(n: int, with_map: bool = False, accept: bool = True, repeat: int = 3, variants: bool = False) -> dict:
    """Builds ``n`` triaged labels (not timed), then times the panels' calls.

    Also times the floor those calls stand on: one bare MongoDB aggregation
    that unwinds every label and groups them by class, queue and review
    state (what any count over the labels has to pay).

    Returns:
        ``{"n", "parts", "build", "bare_group", "counts_one", "counts",
        "cold", "stored", "next_old", "next_one", "next", "next_delta",
        "refresh_before", "refresh", "load", "variants"}`` (seconds, best of
        ``repeat`` interleaved rounds), plus ``accept``/``accepted`` and the
        label map's timings when asked
    """
    import_stoplight()
    from stoplight.plugins.common import split_scan
    from stoplight.plugins.panels.label_map import LabelMapPanel
    from stoplight.plugins.panels.label_map import core as label_map
    from stoplight.plugins.panels.shared import count_cache, queue_stats
    from stoplight.plugins.panels.verification_queues import VerificationQueues, charts
    from stoplight.plugins.review.decisions import review_labels

    t0 = time.perf_counter()
    ds = build(n, f"stoplight-bench-panels-{n}", with_embeddings=with_map)
    t_build = time.perf_counter() - t0
    parts = split_scan.default_parts()
    try:
        def bare():
            return list(ds._sample_collection.aggregate([
                {"$project": {"autolabels.detections.label": 1, "autolabels.detections.queue": 1,
                              "autolabels.detections.review": 1}},
                {"$unwind": "$autolabels.detections"},
                {"$group": {"_id": {"l": "$autolabels.detections.label",
                                    "q": "$autolabels.detections.queue",
                                    "r": "$autolabels.detections.review"},
                            "n": {"$sum": 1}}},
            ], allowDiskUse=True))

        def counts(count_fn):
            s = queue_stats.summarize_counts(count_fn(ds, "autolabels"))
            return s, charts.queue_rows(s), charts.class_rows(s), charts.counts_bar_traces(s)

        def stored(sc, field):
            return count_cache.count_labels_cached(sc, field, settle_s=0)

        def cold():
            count_cache.forget_counts(ds)
            return counts(stored)

        # a sidebar filter: every class but one (the view still reads every label)
        import fiftyone as fo

        filtered = ds.filter_labels("autolabels", fo.ViewField("label") != "class_00")

        contenders = dict(
            bare_group=bare,
            cold=cold,
            view_one=lambda: queue_stats.count_labels(filtered, "autolabels", parts=1),
            view=lambda: queue_stats.count_labels(filtered, "autolabels"),
            counts_one=lambda: counts(lambda sc, f: queue_stats.count_labels(sc, f, parts=1)),
            counts=lambda: counts(queue_stats.count_labels),
            stored=lambda: counts(stored),
            next_old=lambda: _old_next_yellow(ds),
            next_one=lambda: queue_stats.next_yellow(ds, "autolabels", 10, parts=1),
            next=lambda: queue_stats.next_yellow(ds, "autolabels", 10),
        )
        if variants:
            for k, pipe in _variants("autolabels.detections").items():
                contenders[k] = lambda pipe=pipe: list(ds._aggregate(pipeline=pipe))
        best = {k: float("inf") for k in contenders}
        results = {}
        counts(stored)  # stores the counts: "stored" then finds them
        for _ in range(repeat):  # interleaved rounds, best of each
            for k, fn in contenders.items():
                t, results[k] = _timed(fn)
                best[k] = min(best[k], t)
        assert sum(g["n"] for g in results["bare_group"]) == n
        summary = results["counts"][0]
        assert summary["total"] == n and results["counts_one"][0] == summary and results["stored"][0] == summary
        nxt = results["next"]
        assert [r["rank"] for r in nxt] == sorted(r["rank"] for r in nxt) and results["next_one"] == nxt
        assert [r["label_id"] for r in nxt] == [r["label_id"] for r in results["next_old"]]
        count_cache.next_yellow_cached(ds, "autolabels", 10, settle_s=0)
        t_next_stored, _ = _timed(lambda: count_cache.next_yellow_cached(ds, "autolabels", 10, settle_s=0), repeat)

        # the first panel refresh after a reviewer decided 10 labels (the
        # decision not timed): before = one aggregation for the counts and
        # the old next-yellow query; after = what the panel does now
        # (concurrent range aggregations, next yellow from the changed samples)
        app = _App(ds, VerificationQueues())
        app.call("on_load")
        time.sleep(count_cache.SETTLE_S)
        app.call("on_load")  # stored once the newest write is SETTLE_S old

        def decide():
            top = [r["label_id"] for r in queue_stats.next_yellow(ds, "autolabels", 10)]
            review_labels(ds, "autolabels", "accept", label_ids=top, user="bench")

        def refresh_before():
            return (counts(lambda sc, f: queue_stats.count_labels(sc, f, parts=1)), _old_next_yellow(ds))

        def refresh_after():
            return app.call("on_change_view")

        t_refresh = dict(before=float("inf"), after=float("inf"), delta=float("inf"))
        for _ in range(repeat):
            for k, fn in (("before", refresh_before), ("after", refresh_after),
                          ("delta", lambda: count_cache.next_yellow_cached(ds, "autolabels", 10))):
                decide()
                t, _ = _timed(fn)
                t_refresh[k] = min(t_refresh[k], t)
        app.call("on_change_view")
        assert [r[0] for r in app.state["next"]] == [r["label_id"] for r in queue_stats.next_yellow(ds, "autolabels", 10)]
        time.sleep(count_cache.SETTLE_S)
        t_load, _ = _timed(lambda: app.call("on_load"), repeat)
        assert sorted(map(str, results["view"])) == sorted(map(str, results["view_one"]))
        shipped = ("bare_group", "cold", "view_one", "view", "counts_one", "counts", "stored", "next_old", "next_one", "next")
        row = dict(n=n, parts=parts, build=t_build, **{k: best[k] for k in shipped},
                   next_stored=t_next_stored, next_delta=t_refresh["delta"], refresh_before=t_refresh["before"],
                   refresh=t_refresh["after"], load=t_load,
                   variants={k: best[k] for k in contenders if k not in shipped})
        if accept:
            pending = queue_stats.summarize_counts(queue_stats.count_labels(ds, "autolabels"))["queues"]["green"]["pending"]
            t_accept, _ = _timed(lambda: app.call("accept_green"))
            after = queue_stats.summarize_counts(queue_stats.count_labels(ds, "autolabels"))
            assert after["queues"]["green"]["pending"] == 0
            # the stored counts of before the decisions are not served
            assert queue_stats.summarize_counts(stored(ds, "autolabels")) == after
            row.update(accept=t_accept, accepted=pending)
        if with_map:
            t_proj, _ = _timed(lambda: label_map.compute_label_map(ds, "autolabels", method="pca"))
            mapp = _App(ds, LabelMapPanel())
            label_map._CACHE.clear()
            t_first, _ = _timed(lambda: mapp.call("on_load"))
            t_redraw, _ = _timed(lambda: mapp.call("on_change_view"), repeat)
            row.update(project=t_proj, map_first=t_first, map_redraw=t_redraw, shown=mapp.state["info"]["shown"])
    finally:
        count_cache.forget_counts(ds)
        ds.delete()
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--map", action="store_true", help="also time the label map (adds 64-d embeddings)")
    ap.add_argument("--no-accept", action="store_true", help="skip the accept-all-green timing")
    ap.add_argument("--variants", action="store_true", help="also time other aggregation pipelines for the counts")
    args = ap.parse_args(argv)

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; best of 3 interleaved rounds where marked *")
    rows = [measure(n, with_map=args.map, accept=not args.no_accept, variants=args.variants) for n in args.sizes]

    print("\n| labels | ranges | bare $unwind+$group* | counts + table: one aggregation* | ranges* | stored* "
          "| nothing stored (range counts stored)* | next yellow: old query* | new query* | ranges* "
          "| from changed samples* | stored* |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['parts']} | {r['bare_group']:.3f} s | {r['counts_one']:.3f} s | {r['counts']:.3f} s "
              f"| {r['stored']:.4f} s | {r['cold']:.3f} s | {r['next_old']:.3f} s | {r['next_one']:.3f} s | {r['next']:.3f} s "
              f"| {r['next_delta']:.3f} s | {r['next_stored']:.4f} s |")
    print("\n| labels | filtered view (one class hidden): one aggregation* | ranges* | one / ranges |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['view_one']:.3f} s | {r['view']:.3f} s | {r['view_one'] / r['view']:.2f}× |")
    print("\n| labels | first refresh after a decision: before* | after (panel)* | before / after "
          "| panel load (stored)* | accept all green (labels) | build (not timed) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        acc = f"{r['accept']:.1f} s ({r['accepted']:,})" if "accept" in r else "—"
        print(f"| {r['n']:,} | {r['refresh_before']:.3f} s | {r['refresh']:.3f} s "
              f"| {r['refresh_before'] / r['refresh']:.1f}× | {r['load']:.3f} s | {acc} | {r['build']:.0f} s |")
    if args.variants:
        print("\n| labels | pipeline | time* | / aggregation |")
        print("|---:|---|---:|---:|")
        for r in rows:
            for k, t in [("one aggregation ($unwind + $group, as shipped)", r["counts_one"]), *r["variants"].items()]:
                print(f"| {r['n']:,} | {k} | {t:.3f} s | {t / r['counts_one']:.2f} |")
    if args.map:
        print("\n| labels | PCA projection + store | map first load | map redraw* | points drawn |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['n']:,} | {r['project']:.1f} s | {r['map_first']:.2f} s | {r['map_redraw']:.2f} s | {r['shown']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
