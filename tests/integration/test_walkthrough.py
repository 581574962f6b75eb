"""examples/walkthrough.py end to end, as a user runs it (a subprocess).

The script talks to this session's MongoDB and plugins directory (it
inherits the environment conftest.py sets). Each test checks every step's
effect in the database, not the script's printout: fields on the labels,
run records, the human decisions and their audit log, the final field.

- ``--digits``: real digit images, a real classifier's labels and mistakes;
  the triage must put labels in green, the simulated reviewer's decisions
  must agree with the ground truth, and the final labels must be the
  accepted ones plus green ones nobody rejected.
- ``--offline-tiny`` on real images (the digit canvases, whose ground truth
  is known): tiny random-weight OWLv2 and CLIP run through every operator.
- ``--images`` without ground truth: stops after scoring with its own exit
  code, and a re-run resumes (nothing is labeled twice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import fiftyone as fo
import pytest
from digits_dataset import build_digits_dataset

from stoplight.plugins.common import audit

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "walkthrough.py"
FIELD = "autolabels"
FINAL = "autolabels_final"
REVIEWER = "simulated-reviewer"
EXIT_NOTHING_VERIFIED = 3

pytestmark = pytest.mark.slow


def _walk(*args: str, expect_rc: int = 0, timeout: float = 900) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
        cwd=tempfile.gettempdir(), env=dict(os.environ),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect_rc, out[-6000:]
    return out


def _methods(ds) -> dict[str, list[dict]]:
    """Run configs by ``stoplight_method``."""
    out: dict[str, list[dict]] = {}
    for key in ds.list_runs():
        cfg = ds.get_run_info(key).config.serialize()
        out.setdefault(cfg.get("stoplight_method"), []).append(dict(cfg, key=key))
    return out


def _labels(ds, *attrs) -> list[dict]:
    paths = [f"{FIELD}.detections.{a}" for a in ("id", *attrs)]
    cols = ds.values(paths, unwind=True)
    return [dict(zip(("id", *attrs), row)) for row in zip(*cols)]


def _gt_outcome(ds) -> dict[str, bool]:
    """Whether each auto-label matches a ground-truth box of its class
    (IoU 0.5), computed here independently of the script."""
    ds.evaluate_detections(FIELD, gt_field="ground_truth", eval_key="check", iou=0.5, classwise=True,
                           progress=False)
    try:
        return {i: r == "tp" for i, r in zip(*ds.values([f"{FIELD}.detections.id", f"{FIELD}.detections.check"],
                                                         unwind=True))}
    finally:
        ds.delete_evaluation("check")


def _check_triage_review_finalize(ds, n_review: int, verified_fraction: float) -> list[dict]:
    """The effects of calibrate, assign, review and finalize; returns the labels."""
    runs = _methods(ds)
    for method in ("score_labels", "calibrate_triage", "assign_queues", "finalize_labels"):
        assert [r["status"] for r in runs.get(method, [])] == ["completed"], (method, runs.keys())
    cal = ds.get_run_info("triage").config
    assert cal.gt_field == "ground_truth"

    # the verified subset: a random share of the samples, tagged
    n_verified = len(ds.match_tags("stoplight_verified"))
    assert n_verified == max(1, round(verified_fraction * len(ds)))
    assert ds.load_run_results("triage").num_verified_labels == ds.match_tags("stoplight_verified").count(
        f"{FIELD}.detections")

    labels = _labels(ds, "queue", "p_correct", "review_rank", "review", "reviewed_by", "uncertainty")
    assert labels and all(lb["queue"] in ("green", "yellow", "red") for lb in labels)
    assert all(0.0 <= lb["p_correct"] <= 1.0 for lb in labels)
    assert all(lb["uncertainty"] is not None for lb in labels)  # score_labels wrote its scores
    yellow = [lb for lb in labels if lb["queue"] == "yellow"]
    assert all(isinstance(lb["review_rank"], int) for lb in yellow)

    # the simulated reviewer decided the first n yellow labels by review_rank, as the ground truth says
    decided = [lb for lb in labels if lb["review"] in ("accepted", "rejected")]
    assert len(decided) == min(n_review, len(yellow))
    # (ranks below 1 are labels the answers promoted afterwards: near-duplicates
    # of the rejected ones, asked next; see plugins/review/propagation.py)
    first = sorted(lb["review_rank"] for lb in yellow if lb["review_rank"] >= 1)[: len(decided)]
    assert sorted(lb["review_rank"] for lb in decided) == first
    assert all(lb["reviewed_by"] == REVIEWER and lb["queue"] == "yellow" for lb in decided)
    truth = _gt_outcome(ds)
    assert all((lb["review"] == "accepted") == truth[lb["id"]] for lb in decided)
    log = audit.read_log(ds, user=REVIEWER)
    assert sorted(e["label_id"] for e in log) == sorted(lb["id"] for lb in decided)

    # final: the accepted labels plus the green ones nobody rejected, nothing else
    expected = {lb["id"] for lb in labels
                if lb["review"] == "accepted" or (lb["queue"] == "green" and lb["review"] != "rejected")}
    finals = ds.values(f"{FINAL}.detections.source_id", unwind=True)
    assert sorted(finals) == sorted(expected)
    assert ds.exists(FINAL).count() == len(ds)
    return labels


@pytest.fixture()
def names():
    made: list[str] = []
    yield made
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"{name}-images", ignore_errors=True)


def test_digits_mode_triages_reviews_and_finalizes(names):
    name = f"walk-digits-{uuid.uuid4().hex[:8]}"
    names.append(name)
    out = _walk("--digits", "--name", name, "--copies", "1", "--verified-fraction", "0.5",
                "--target-precision", "0.9", "--review", "10")
    ds = fo.load_dataset(name)
    assert ds.persistent and ds.count("ground_truth.detections") > 0
    runs = _methods(ds)
    assert "zero_shot_detect" not in runs and "compute_label_embeddings" not in runs  # precomputed, and said so
    assert "skipped, the auto-labels come from the digits' real classifier" in out
    assert runs["score_labels"][0]["consensus_fields"] == ["knn_model"]
    labels = _check_triage_review_finalize(ds, n_review=10, verified_fraction=0.5)
    # real labels with real mistakes: the triage certifies green for some classes
    assert sum(lb["queue"] == "green" for lb in labels) > 0
    assert ds.load_run_results("triage").num_green_classes > 0
    for heading in ("[3/7] score_labels", "[5/7] assign_queues", "SIMULATED reviewer", "[7/7] finalize_labels"):
        assert heading in out
    # the printed report is the database's
    n_green = sum(lb["queue"] == "green" for lb in labels)
    assert any(line.split()[:2] == ["green", str(n_green)] for line in out.splitlines())


def test_offline_tiny_runs_every_operator_on_real_images(names, tmp_root):
    # real images with known ground truth: the digit canvases
    name = f"walk-tiny-{uuid.uuid4().hex[:8]}"
    names.append(name)
    full, _ = build_digits_dataset(seed=5, copies=1, out_dir=str(tmp_root / "walk-tiny-images"))
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples([fo.Sample(filepath=s.filepath, ground_truth=s.ground_truth) for s in full.limit(12)])
    full.delete()

    out = _walk("--dataset", name, "--offline-tiny", "--classes", *map(str, range(10)),
                "--gt-field", "ground_truth", "--verified-fraction", "0.5", "--review", "5",
                "--confidence-threshold", "0.3", "--device", "cpu")
    assert "MEANINGLESS" in out and "random weights" in out
    ds.reload()
    runs = _methods(ds)
    (det,) = runs["zero_shot_detect"]
    assert det["status"] == "completed" and det["num_processed_samples"] == len(ds)
    assert det["backend"] == "owlv2" and "stoplight-walkthrough-" in det["checkpoint"]  # the tiny one
    (emb,) = runs["compute_label_embeddings"]
    assert emb["status"] == "completed"
    vectors = [v for per_sample in ds.values(f"{FIELD}.detections.embedding") for v in per_sample or []]
    assert vectors and all(v is not None and len(v) == 32 for v in vectors)  # the tiny CLIP's width
    _check_triage_review_finalize(ds, n_review=5, verified_fraction=0.5)


def test_images_without_ground_truth_stop_after_scoring_and_resume(names, image_dir):
    name = f"walk-images-{uuid.uuid4().hex[:8]}"
    names.append(name)
    photos = Path(tempfile.mkdtemp(prefix="walk-photos-"))
    try:
        for p in sorted(image_dir.glob("*.jpg"))[:3]:
            shutil.copy(p, photos / p.name)
        common = ["--offline-tiny", "--classes", "person", "bus", "--confidence-threshold", "0.3",
                  "--device", "cpu"]
        out = _walk("--images", str(photos), "--name", name, *common, expect_rc=EXIT_NOTHING_VERIFIED)
        assert "nothing verified yet" in out and f"--dataset {name}" in out
        ds = fo.load_dataset(name)
        runs = _methods(ds)
        assert set(runs) == {"zero_shot_detect", "compute_label_embeddings", "score_labels"}
        assert ds.count(FIELD) == 3
        ids = sorted(ds.values(f"{FIELD}.detections.id", unwind=True))

        # a second run on the same images without --replace refuses to delete them
        out = _walk("--images", str(photos), "--name", name, *common, expect_rc=1)
        assert f"continue it with --dataset {name}" in out
        # resumed: every sample and label is skipped, nothing is relabeled
        _walk("--dataset", name, *common, expect_rc=EXIT_NOTHING_VERIFIED)
        ds.reload()
        runs = _methods(ds)
        resumed = max(runs["zero_shot_detect"], key=lambda r: r["started_at"])
        assert resumed["num_skipped_samples"] == 3 and resumed["num_processed_samples"] == 0
        resumed_emb = max(runs["compute_label_embeddings"], key=lambda r: r["started_at"])
        assert resumed_emb["num_embedded_labels"] == 0
        assert sorted(ds.values(f"{FIELD}.detections.id", unwind=True)) == ids
    finally:
        shutil.rmtree(photos, ignore_errors=True)
