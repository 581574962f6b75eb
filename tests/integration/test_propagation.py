"""Answers teach: a rejected label pulls its near-duplicates up the review
order (and without propagation they stay where they are); a run of accepts
offers the rest of a tight cluster as one bulk question, logged and
undoable."""

from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest

from stoplight.plugins.common import label_graph
from stoplight.plugins.panels.shared.queue_stats import next_yellow
from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions as D
from stoplight.plugins.review import propagation as P
from stoplight.plugins.review.corrections import correct_label

FIELD = "autolabels"


def _clustered(dataset, seed=0):
    """Yellow "car" labels: two tight clusters A and B of 6 near-duplicates
    each and 12 scattered ones, all P(correct) 0.6; cluster members get the
    *last* triage ranks, so only a re-rank can bring them forward. Returns
    ``{"A": ids, "B": ids, "other": ids, "all": ids}`` and stores the graph
    as ``assign_queues`` does."""
    rng = np.random.default_rng(seed)
    dim = 16
    centers = {"A": rng.normal(size=dim), "B": rng.normal(size=dim)}
    kinds = ["other"] * 12 + ["A"] * 6 + ["B"] * 6
    embs = [rng.normal(size=dim) if k == "other" else centers[k] + 0.02 * rng.normal(size=dim) for k in kinds]
    sids = dataset.values("id")
    per = -(-len(kinds) // len(sids))
    values, groups, rows = [], {"A": [], "B": [], "other": []}, []
    k = 0
    for sid in sids:
        dets = []
        for _ in range(per):
            if k == len(kinds):
                break
            d = fo.Detection(label="car", bounding_box=[0.05 * (len(dets) + 1), 0.1, 0.04, 0.05], confidence=0.6,
                             queue="yellow", p_correct=0.6, review_rank=k + 1, embedding=embs[k].tolist())
            dets.append(d)
            groups[kinds[k]].append(d.id)
            rows.append((d.id, sid, k + 1, embs[k]))
            k += 1
        values.append(fo.Detections(detections=dets))
    dataset.set_values(FIELD, values)
    ids, s, r, e = zip(*rows)
    label_graph.build_label_graph(dataset, FIELD, ids, s, ["car"] * len(ids), np.full(len(ids), 0.6),
                                  np.array(r), np.array(e), replace_ids=ids)
    groups["all"] = list(ids)
    return groups


def _ranks(dataset):
    ids, ranks = dataset.values([f"{FIELD}.detections.id", f"{FIELD}.detections.review_rank"], unwind=True)
    return dict(zip(ids, ranks))


@pytest.fixture()
def clustered(dataset):
    return dataset, _clustered(dataset)


def test_a_rejection_pulls_its_near_duplicates_up(clustered):
    dataset, g = clustered
    before = _ranks(dataset)
    out = D.review_labels(dataset, FIELD, "reject", label_ids=[g["A"][0]], user="alice")
    assert out["num_reranked"] == 5
    after = _ranks(dataset)
    promoted = g["A"][1:]
    assert max(after[i] for i in promoted) < min(before.values())  # before every other label
    for i in g["other"] + g["B"]:
        assert after[i] == before[i]
    first = [r["label_id"] for r in next_yellow(dataset, FIELD, 5)]
    assert set(first) == set(promoted)
    # undo: the evidence goes and the triage ranks come back
    D.undo_last(dataset, user="alice")
    assert _ranks(dataset) == before


def test_control_without_propagation_nothing_moves(clustered):
    dataset, g = clustered
    before = _ranks(dataset)
    out = D.review_labels(dataset, FIELD, "reject", label_ids=[g["A"][0]], user="alice", propagate=False)
    assert out["num_reranked"] == 0
    after = _ranks(dataset)
    assert all(after[i] == before[i] for i in g["all"])
    assert [r["label_id"] for r in next_yellow(dataset, FIELD, 3)] == g["other"][:3]


def test_a_correction_is_a_wrong_answer_too(clustered):
    dataset, g = clustered
    before = _ranks(dataset)
    out = correct_label(dataset, FIELD, g["B"][2], label="truck", user="alice")
    assert out["num_reranked"] == 5
    after = _ranks(dataset)
    assert max(after[i] for i in g["B"] if i != g["B"][2]) < min(before.values())


def test_a_run_of_accepts_offers_the_rest_of_the_cluster_as_one_question(clustered):
    dataset, g = clustered
    b = g["B"]
    for lid in b[:2]:
        D.review_labels(dataset, FIELD, "accept", label_ids=[lid], user="alice")
    early = P.find_similar_group(dataset, FIELD, b[1])
    assert early["label_ids"] == [] and "2 of its labels accepted" in early["reason"]
    D.review_labels(dataset, FIELD, "accept", label_ids=[b[2]], user="alice")
    group = P.find_similar_group(dataset, FIELD, b[2])
    assert sorted(group["label_ids"]) == sorted(b[3:]) and group["num_accepted"] == 3
    # accepted neighbours' evidence demoted the rest: no longer asked one by one
    assert all(r["label_id"] not in b for r in next_yellow(dataset, FIELD, 6))
    n_actions = len(list(audit.actions_collection(dataset).find()))
    out = P.accept_similar(dataset, FIELD, group["label_ids"], anchor_id=b[2], user="alice")
    assert out["num_labels"] == 3 and out["bulk"] is True
    headers = list(audit.actions_collection(dataset).find())
    assert len(headers) == n_actions + 1 and headers[-1]["source"] == dict(kind="similar", anchor=b[2])
    states = dict(zip(*dataset.values([f"{FIELD}.detections.id", f"{FIELD}.detections.review"], unwind=True)))
    bulk = dict(zip(*dataset.values([f"{FIELD}.detections.id", f"{FIELD}.detections.review_bulk"], unwind=True)))
    assert all(states[i] == "accepted" and bulk[i] is True for i in b[3:])
    assert all(bulk[i] is False for i in b[:3])
    # one undo takes the whole group back
    D.undo_last(dataset, user="alice")
    states = dict(zip(*dataset.values([f"{FIELD}.detections.id", f"{FIELD}.detections.review"], unwind=True)))
    assert all(states[i] is None for i in b[3:]) and all(states[i] == "accepted" for i in b[:3])


def test_a_rejected_member_blocks_the_bulk_question(clustered):
    dataset, g = clustered
    a = g["A"]
    D.review_labels(dataset, FIELD, "accept", label_ids=a[:3], user="alice")
    assert len(P.find_similar_group(dataset, FIELD, a[0])["label_ids"]) == 3
    D.review_labels(dataset, FIELD, "reject", label_ids=[a[3]], user="alice")
    blocked = P.find_similar_group(dataset, FIELD, a[0])
    assert blocked["label_ids"] == [] and "rejected or corrected" in blocked["reason"]
    # scattered labels form no cluster
    lone = P.find_similar_group(dataset, FIELD, g["other"][0])
    assert lone["label_ids"] == []


def test_bulk_decisions_teach_nothing(clustered):
    dataset, g = clustered
    before = _ranks(dataset)
    out = D.review_labels(dataset, FIELD, "reject", label_ids=[g["A"][0]], user="alice", bulk=True)
    assert out["num_reranked"] == 0
    assert _ranks(dataset) == before


def test_knn_edges_stay_in_class_and_score_region():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8))
    x[20:] = x[:20] + 1e-3  # each of the last 20 is a near-duplicate of one of the first 20
    groups = np.array(["a"] * 10 + ["b"] * 10 + ["a"] * 10 + ["b"] * 10, dtype=object)
    p0 = np.r_[np.full(20, 0.5), np.full(10, 0.5), np.full(10, 0.95)]
    nbrs, w = label_graph.knn_edges(x, groups, p0, k=3, region=0.25)
    for i in range(40):
        js = nbrs[i][nbrs[i] >= 0]
        assert all(groups[j] == groups[i] and abs(p0[j] - p0[i]) <= 0.25 for j in js)
    # a near-duplicate is the nearest, with a weight near 1
    assert nbrs[0][0] == 20 and w[0][0] > 0.9
    # the class-b duplicates sit outside the score region of their originals
    assert 30 not in nbrs[10]


def test_queue_colours_respect_the_users_own_scheme(dataset):
    from stoplight.plugins.common.app_colors import set_queue_colors

    dataset.app_config.color_scheme = fo.ColorScheme(color_by="field", fields=[
        dict(path="ground_truth", fieldColor="#123456")])
    dataset.save()
    assert set_queue_colors(dataset, FIELD) is True
    scheme = dataset.app_config.color_scheme
    assert scheme.color_by == "value"
    assert [f["path"] for f in scheme.fields] == ["ground_truth", FIELD]  # the user's entry is kept
    assert set_queue_colors(dataset, FIELD) is False  # already so
    # a field the user colours by another attribute stays as the user set it
    scheme.fields = [dict(path=FIELD, colorByAttribute="label")]
    dataset.app_config.color_scheme = scheme
    dataset.save()
    assert set_queue_colors(dataset, FIELD) is False
    assert dataset.app_config.color_scheme.fields[0]["colorByAttribute"] == "label"
