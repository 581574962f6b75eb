"""Crashes (issue 7, item 2): runs killed with SIGKILL at random points, resumed.

Each trial clones a prepared dataset, starts one run of ``zero_shot_detect``,
``compute_label_embeddings`` or ``score_labels`` in another process
(:mod:`crash_victim`, forked from a preloaded forkserver so that a trial
does not pay for importing torch), kills it with SIGKILL after a random
number of progress events plus a random delay (or a random delay from the
start, to hit imports, model loading and run registration), then resumes in
this process with ``overwrite=False`` and checks the database:

- what the killed run wrote is whole (no half-written label, vector or score
  set) and nothing else changed;
- after resuming, every sample is labeled exactly once (labels written
  before the kill keep their ids: they were not redone), every label has
  exactly one embedding (vectors written before the kill are unchanged),
  every label has its scores, and no label was added or lost.

Trials use fixed seeds; the kill points still depend on timing, so each
test also checks that most trials really died mid-run.
"""

from __future__ import annotations

import os
import uuid

import fiftyone as fo
import numpy as np
import pytest

import crash_victim
import imagekit
from victims import Victim, forkserver, kill_at_random_point, run_to_completion  # noqa: F401 (fixture)
from dbkit import non_finite_paths, raw_docs, without
from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.common.field_owner import mark_field
from stoplight.plugins.scoring import embeddings as E
from stoplight.plugins.scoring.scores import SCORE_ATTRS, score_labels

pytestmark = pytest.mark.slow

LABELS = "autolabels"
CLASSES = ["person", "bus"]
N_IMAGES = 32
MAX_BOXES = 3  # per image in the embedding/scoring bases: keeps trials short
TRIALS = {"label": 10, "embed": 10, "score": 10}
REVIEW = dict(review="rejected", reviewed_by="bob", reviewed_at=None)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def small_images(tmp_path_factory):
    """N_IMAGES small crops of the real photos (different content each)."""
    from PIL import Image

    out = tmp_path_factory.mktemp("crash-images")
    photos = [Image.open(p).convert("RGB") for p in imagekit.photo_paths()]
    paths = []
    for i in range(N_IMAGES):
        im = photos[i % len(photos)]
        w, h = im.size
        x, y = (i * 37) % (w // 3), (i * 53) % (h // 3)
        crop = im.crop((x, y, x + 2 * w // 3, y + 2 * h // 3)).resize((160, 120))
        paths.append(out / f"img{i:02d}.jpg")
        crop.save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="module")
def clip_ckpt(tmp_root):
    return E.build_random_clip(str(tmp_root / "checkpoints" / "clip-crash"))


@pytest.fixture(scope="module")
def bases(small_images, tiny_checkpoint, clip_ckpt):
    """Persistent datasets each trial clones: unlabeled, labeled, embedded.

    Every sample has a ``ground_truth``; the first already holds an
    auto-label a person reviewed.
    """
    tag = uuid.uuid4().hex[:6]
    base = fo.Dataset(f"crash-base-unlabeled-{tag}", persistent=True)
    samples = [fo.Sample(filepath=str(p)) for p in small_images]
    for s in samples:
        s["ground_truth"] = fo.Detections(
            detections=[fo.Detection(label="person", bounding_box=[0.2, 0.2, 0.4, 0.5])]
        )
    samples[0][LABELS] = fo.Detections(
        detections=[fo.Detection(label="bus", bounding_box=[0.1, 0.1, 0.5, 0.5], confidence=0.8, **REVIEW)]
    )
    base.add_samples(samples)
    # that first auto-label stands for an earlier Stoplight run's: the field
    # is Stoplight's auto-label field (zero_shot_detect refuses others)
    mark_field(base, LABELS, "autolabels")

    labeled = base.clone(f"crash-base-labeled-{tag}", persistent=True)
    _label(labeled, tiny_checkpoint)
    dets = labeled.values(LABELS)
    for d in dets:
        d.detections = d.detections[:MAX_BOXES]
    labeled.set_values(LABELS, dets)

    embedded = labeled.clone(f"crash-base-embedded-{tag}", persistent=True)
    _embed(embedded, clip_ckpt)
    # no label field at all: the killed run declares it, and the resuming
    # process holds a dataset object loaded before that
    fresh = fo.Dataset(f"crash-base-fresh-{tag}", persistent=True)
    fresh.add_samples([fo.Sample(filepath=str(p), ground_truth=s["ground_truth"]) for p, s in zip(small_images, samples)])
    out = {"label": base, "label_fresh": fresh, "embed": labeled, "score": embedded}
    yield out
    for ds in out.values():
        ds.delete()


@pytest.fixture()
def clones():
    made = []

    def clone(ds):
        made.append(ds.clone(f"crash-trial-{uuid.uuid4().hex[:8]}", persistent=True))
        return made[-1]

    yield clone
    for ds in made:
        if fo.dataset_exists(ds.name):
            ds.delete()


def _label(ds, tiny_checkpoint, **kwargs):
    return zero_shot_detect(
        ds, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=CLASSES,
        confidence_threshold=0.0, batch_size=2, write_every=4, num_workers=1, device="cpu",
        progress=False, **kwargs,
    )


def _embed(ds, clip_ckpt):
    name, ckpt = clip_ckpt
    return E.compute_label_embeddings(
        ds, LABELS, model_name=name, pretrained=ckpt, batch_size=16, write_every=16,
        num_workers=1, device="cpu", progress=False,
    )


# -------------------------------------------------------------- the killing


def _run_statuses(ds):
    return sorted(ds.get_run_info(k).config.status for k in ds.list_runs())


def test_victims_inherit_the_test_database(forkserver):
    """Victims (forked, or plain subprocesses) use the session's mongod and
    database, which conftest exports through os.environ, not a default."""
    import json
    import subprocess
    import sys

    names = ["FIFTYONE_DATABASE_URI", "FIFTYONE_DATABASE_NAME", "FIFTYONE_PLUGINS_DIR"]
    out = subprocess.run(
        [sys.executable, "-c", f"import json, os; print(json.dumps({{n: os.environ.get(n) for n in {names!r}}}))"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout) == {n: os.environ[n] for n in names}
    parent, child = forkserver.Pipe(duplex=False)
    proc = forkserver.Process(target=crash_victim.report_env, args=(names, child))
    proc.start()
    assert parent.poll(120)
    seen, preloaded = parent.recv()
    proc.join(30)
    assert preloaded, "the forkserver did not preload crash_victim: every trial would import torch"
    assert seen == {n: os.environ[n] for n in names}
    assert seen["FIFTYONE_DATABASE_URI"].startswith("mongodb://127.0.0.1:")


# ------------------------------------------------------------------- labeling


def _check_labels_whole(doc):
    for d in doc[LABELS]["detections"]:
        if "review" in d:
            continue  # the label a person reviewed before the run
        assert d["label"] in CLASSES
        assert len(d["bounding_box"]) == 4 and len(d["class_scores"]) == len(CLASSES)
    assert not non_finite_paths(doc[LABELS])


def test_labeling_killed_at_random_points_resumes_exactly_once(forkserver, bases, clones, tiny_checkpoint):
    killed_mid_run = 0
    stats = []
    for trial in range(TRIALS["label"]):
        rng = np.random.default_rng(1000 + trial)
        fresh = trial % 2 == 1
        ds = clones(bases["label_fresh" if fresh else "label"])
        base_docs = raw_docs(ds)
        reviewed_id = ds.first().id
        assert ds.has_field(LABELS) != fresh
        job = dict(step="label", dataset=ds.name, checkpoint=tiny_checkpoint("owlv2"))
        events, end = kill_at_random_point(forkserver, job, rng, max_events=N_IMAGES // 2 + 1, max_delay=0.05)
        killed_mid_run += end is None

        docs = raw_docs(ds)
        # nothing but the label field was written, and the reviewed label
        # (already there: skipped) is untouched
        assert without(docs, [LABELS]) == without(base_docs, [LABELS])
        if not fresh:
            assert without(docs)[reviewed_id] == without(base_docs)[reviewed_id]
        before = {}
        for sid, doc in docs.items():
            if doc.get(LABELS) is not None:
                _check_labels_whole(doc)
                before[sid] = [d["_id"] for d in doc[LABELS]["detections"]]

        # resumed through the dataset object loaded before the kill
        summary = _label(ds, tiny_checkpoint)
        stats.append((events, len(before) - (not fresh), end is None))
        assert summary["status"] == "completed"
        assert summary["num_skipped_samples"] == len(before)
        assert summary["num_processed_samples"] == N_IMAGES - len(before)
        after = raw_docs(ds)
        all_ids = []
        for sid, doc in after.items():
            assert doc.get(LABELS) is not None, f"trial {trial}: sample {sid} never labeled"
            _check_labels_whole(doc)
            got = [d["_id"] for d in doc[LABELS]["detections"]]
            if sid in before:
                assert got == before[sid], f"trial {trial}: sample {sid} labeled twice"
            all_ids += got
        assert len(all_ids) == len(set(all_ids))
        if not fresh:
            assert without(after)[reviewed_id] == without(base_docs)[reviewed_id]
        # the killed run, if it got as far as registering, was marked
        # "killed" by the resumed run (its process is gone)
        assert _run_statuses(ds)[0] == "completed" and set(_run_statuses(ds)) <= {"completed", "killed"}
        ds.delete()
    print("labeling trials (events seen, samples labeled by the victim, killed mid-run):", stats)
    assert killed_mid_run >= TRIALS["label"] * 2 // 3


# ------------------------------------------------------------------ embedding


def _embeddings(docs):
    out = {}
    for sid, doc in docs.items():
        for d in doc[LABELS]["detections"]:
            out[d["_id"]] = d.get("embedding")
    return out


def test_embedding_killed_at_random_points_resumes_exactly_once(forkserver, bases, clones, clip_ckpt):
    name, ckpt = clip_ckpt
    dim = E.TINY_MODEL_CONFIG["embed_dim"]
    killed_mid_run = 0
    stats = []
    n_labels = bases["embed"].count(f"{LABELS}.detections")
    for trial in range(TRIALS["embed"]):
        rng = np.random.default_rng(2000 + trial)
        ds = clones(bases["embed"])
        base_docs = raw_docs(ds)
        job = dict(step="embed", dataset=ds.name, model_name=name, pretrained=ckpt)
        events, end = kill_at_random_point(forkserver, job, rng, max_events=N_IMAGES + 1, max_delay=0.05)
        killed_mid_run += end is None

        docs = raw_docs(ds)
        assert without(docs, label_attrs=["embedding"]) == without(base_docs, label_attrs=["embedding"])
        before = {k: v for k, v in _embeddings(docs).items() if v is not None}
        for vec in before.values():
            assert len(vec) == dim and np.isfinite(vec).all()
            assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)

        ds.reload()  # see test_embedding_resume_with_a_stale_dataset_object
        summary = _embed(ds, clip_ckpt)
        stats.append((events, len(before), end is None))
        assert summary["status"] == "completed"
        assert summary["num_skipped_labels"] == len(before)
        assert summary["num_embedded_labels"] == n_labels - len(before)
        after_docs = raw_docs(ds)
        assert without(after_docs, label_attrs=["embedding"]) == without(base_docs, label_attrs=["embedding"])
        after = _embeddings(after_docs)
        assert len(after) == n_labels
        for lid, vec in after.items():
            assert vec is not None and len(vec) == dim, f"trial {trial}: label {lid} has no embedding"
            if lid in before:
                assert vec == before[lid], f"trial {trial}: label {lid} embedded twice"
        ds.delete()
    print("embedding trials (events seen, labels embedded by the victim, killed mid-run):", stats)
    assert killed_mid_run >= TRIALS["embed"] * 2 // 3


# -------------------------------------------------------------------- scoring


def test_scoring_killed_at_random_points_reruns_to_complete_scores(forkserver, bases, clones):
    killed_mid_run = 0
    stats = []
    for trial in range(TRIALS["score"]):
        rng = np.random.default_rng(3000 + trial)
        ds = clones(bases["score"])
        base_docs = raw_docs(ds)
        # without RER: its autoencoder training is pure computation (no
        # writes) and takes tens of seconds on a loaded 2-core machine
        job = dict(step="score", dataset=ds.name, rer=False)
        events, end = kill_at_random_point(forkserver, job, rng, max_events=6, max_delay=0.02)
        killed_mid_run += end is None

        docs = raw_docs(ds)
        assert without(docs, label_attrs=SCORE_ATTRS) == without(base_docs, label_attrs=SCORE_ATTRS)
        partly = sum(
            d.get("uncertainty") is not None for doc in docs.values() for d in doc[LABELS]["detections"]
        )

        summary = score_labels(ds, LABELS, k=3, rer=False, device="cpu", progress=False)
        stats.append((events, partly, end is None))
        assert summary["status"] == "completed"
        after = raw_docs(ds)
        assert without(after, label_attrs=SCORE_ATTRS) == without(base_docs, label_attrs=SCORE_ATTRS)
        for doc in after.values():
            for d in doc[LABELS]["detections"]:
                assert d.get("uncertainty") is not None and d.get("knn_agreement") is not None
                assert not non_finite_paths({a: d.get(a) for a in SCORE_ATTRS})
        ds.delete()
    print("scoring trials (events seen, labels scored before the kill, killed mid-run):", stats)
    assert killed_mid_run >= TRIALS["score"] // 2


def test_scoring_killed_inside_reference_matching_leaves_no_temporary_evaluation(forkserver, bases, clones):
    """score_labels matches against a reference with a temporary FiftyOne
    evaluation; the victim is killed right after FiftyOne wrote it."""
    ds = clones(bases["score"])
    n = len(ds)
    job = dict(step="score", dataset=ds.name, reference_field="ground_truth", rer=False,
               hold_after="evaluate_detections")
    victim = Victim(forkserver, job)
    while (msg := victim.next()) is not None and msg[0] != "held":
        assert msg[0] == "event", msg
    assert msg == ("held", "evaluate_detections")
    victim.kill()

    summary = score_labels(ds, LABELS, reference_field="ground_truth", k=3, rer=False,
                           device="cpu", progress=False)
    assert summary["status"] == "completed" and len(ds) == n
    ds.reload()
    leftovers = [k for k in ds.list_evaluations() if k.startswith("stoplight_tmp_")]
    stray = sorted({
        a for doc in raw_docs(ds).values() for f in (LABELS, "ground_truth")
        for d in doc[f]["detections"] for a in d if a.startswith("stoplight_tmp_")
    })
    schema = [f for f in ds.get_field_schema(flat=True) if "stoplight_tmp_" in f]
    assert (leftovers, stray, schema) == ([], [], [])


def test_embedding_resume_with_a_stale_dataset_object(forkserver, bases, clones, clip_ckpt):
    ds = clones(bases["embed"])  # loaded here, before the other process embeds
    name, ckpt = clip_ckpt
    run_to_completion(forkserver, dict(step="embed", dataset=ds.name, model_name=name, pretrained=ckpt))
    summary = _embed(ds, clip_ckpt)
    assert summary["num_embedded_labels"] == 0  # all done by the other process


def test_scoring_with_a_stale_dataset_object_uses_the_embeddings(forkserver, bases, clones, clip_ckpt):
    ds = clones(bases["embed"])
    name, ckpt = clip_ckpt
    run_to_completion(forkserver, dict(step="embed", dataset=ds.name, model_name=name, pretrained=ckpt))
    summary = score_labels(ds, LABELS, k=3, rer=False, device="cpu", progress=False)
    assert "knn_agreement" in summary["signals"], summary["notes"]
