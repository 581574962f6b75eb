"""Downstream training on accepted labels vs human labels (issue 8, part 3).

Real digits images with real human labels and auto-labels with a real
classifier's mistakes (examples/digits_dataset.py); a reviewer accepts the
correct auto-labels and rejects the wrong ones on part of the training
split, through the review core (audit log included). The export is checked
label by label against the dataset; the end-to-end run trains yolo11n from
its YAML (random weights, no download) for one epoch at 128 px on CPU, in a
subprocess whose network is blocked, and every figure of its report is
recomputed here from the dataset, the audit log and the stored predictions.
One CPU epoch gives a meaningless mAP: only the plumbing is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import fiftyone as fo
import pytest
from fiftyone import ViewField as F

from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions as D
from stoplight.plugins.review.finalize import keep_label
from stoplight.plugins.training import compare as C
from stoplight.plugins.training import export as E
from stoplight.plugins.training import format_report, split_views

SUPPORT = Path(__file__).resolve().parents[1] / "support"  # kits, netblock, subprocess scripts
N_TEST, N_TRAIN = 16, 40


@pytest.fixture(scope="module")
def digits():
    """Digits dataset: 16 test and 40 train images (tags); on 60 % of the
    train images ana accepted the correct auto-labels and rejected the
    wrong ones, re-accepted three labels and undid that; some labels are
    green (also some of the rejected ones)."""
    from digits_dataset import build_digits_dataset

    ds, info = build_digits_dataset(seed=3, copies=1, name=f"train-digits-{uuid.uuid4().hex[:8]}")
    ds.persistent = True  # the end-to-end run reads it from another process
    ids = ds.values("id")
    test_ids, train_ids = ids[:N_TEST], ids[N_TEST : N_TEST + N_TRAIN]
    ds.select(test_ids).tag_samples("test")
    ds.select(train_ids).tag_samples("train")
    reviewed = set(train_ids[: int(0.6 * N_TRAIN)])
    per_sample = ds.values("autolabels.detections.id")
    label_sample = [sid for sid, lids in zip(ids, per_sample) for _ in lids]
    label_ids = [lid for lids in per_sample for lid in lids]
    accept = [l for l, w, s in zip(label_ids, info["wrong"], label_sample) if s in reviewed and not w]
    reject = [l for l, w, s in zip(label_ids, info["wrong"], label_sample) if s in reviewed and w]
    assert accept and reject, "the construction must give both kinds of decisions"
    # green queue on every 4th label of the train split, whatever its review
    train_labels = [l for l, s in zip(label_ids, label_sample) if s in set(train_ids)]
    green = {l: "green" for l in train_labels[::4]}
    assert set(green) & set(reject), "some rejected labels must be green"
    ds.set_label_values("autolabels.detections.queue", green)
    D.review_labels(ds, "autolabels", "accept", label_ids=accept, user="ana")
    D.review_labels(ds, "autolabels", "reject", label_ids=reject, user="ana")
    D.review_labels(ds, "autolabels", "accept", label_ids=accept[:3], user="ana")
    D.undo_last(ds, user="ana")
    yield dict(ds=ds, accept=set(accept), reject=set(reject), decisions=len(accept) + len(reject) + 3)
    audit.delete_log(ds)
    ds.delete()


def _expected(view, field: str, include: str) -> dict[str, list]:
    """``{image stem: sorted [(label, cx, cy, w, h)]}`` of the labels that
    ``include`` keeps (the finalize rule), images without one left out."""
    out = {}
    for path, dets in zip(view.values("filepath"), view.values(field)):
        rows = []
        for d in dets.detections if dets else []:
            keep = include == "all" or keep_label(d["review"] if d.has_field("review") else None,
                                                  d["queue"] if d.has_field("queue") else None,
                                                  include == "accepted+green")[0]
            if keep:
                x, y, w, h = d.bounding_box
                rows.append((d.label, x + w / 2, y + h / 2, w, h))
        if rows:
            out[Path(path).stem] = sorted(rows)
    return out


def _exported(export_dir: Path, split: str, classes: list[str]) -> dict[str, list]:
    out = {}
    for txt in sorted((export_dir / "labels" / split).glob("*.txt")):
        rows = []
        for line in txt.read_text().split("\n"):
            if line.strip():
                c, *box = line.split()
                rows.append((classes[int(c)], *map(float, box)))
        out[txt.stem] = sorted(rows)
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if len(a[k]) != len(b[k]):
            return False
        for r, s in zip(a[k], b[k]):
            if r[0] != s[0] or any(abs(u - v) > 1e-5 for u, v in zip(r[1:], s[1:])):
                return False
    return True


@pytest.mark.parametrize("include", E.INCLUDE)
def test_export_holds_exactly_the_kept_labels(digits, tmp_path, include):
    ds = digits["ds"]
    train = ds.match_tags("train")
    classes = [str(i) for i in range(10)]
    out = E.export_training_set(train, "autolabels", tmp_path, include=include, classes=classes)
    expected = _expected(train, "autolabels", include)
    got = _exported(tmp_path, "train", classes)
    assert _same(got, expected)
    assert out["num_labels"] == sum(len(v) for v in expected.values())
    assert out["num_images"] == len(expected) == len(list((tmp_path / "images" / "train").iterdir()))
    if include == "accepted":
        assert set(out["label_ids"]) == digits["accept"] & set(ds.values("autolabels.detections.id", unwind=True))
        assert not set(out["label_ids"]) & digits["reject"]
    if include == "accepted+green":
        assert not set(out["label_ids"]) & digits["reject"]  # green but rejected: out
        assert len(out["label_ids"]) > len(digits["accept"])
    # images are links to the dataset's files, not copies
    image = next((tmp_path / "images" / "train").iterdir())
    assert image.is_symlink() and Path(os.readlink(image)).stem == image.stem


def test_export_keeps_empty_human_images_when_asked(digits, tmp_path):
    ds = digits["ds"]
    view = ds.match_tags("test")
    out = E.export_training_set(view, "ground_truth", tmp_path, "all", split="test", skip_empty=False)
    assert out["num_images"] == len(view) and out["num_labels"] == view.count("ground_truth.detections")
    assert _same(_exported(tmp_path, "test", out["classes"]), _expected(view, "ground_truth", "all"))
    with pytest.raises(ValueError, match="already holds files"):
        E.export_training_set(view, "ground_truth", tmp_path, "all", split="test")
    with pytest.raises(ValueError, match="'classes' misses"):
        E.export_training_set(view, "ground_truth", tmp_path / "x", "all", classes=["0"], split="test")


def test_review_effort_counts_logged_decisions(digits):
    ds = digits["ds"]
    effort = C.review_effort(ds.match_tags("train"), "autolabels", seconds_per_box=3.0)
    n = len(digits["accept"]) + len(digits["reject"])
    # three re-accepts are looks too; their undo is not
    assert effort["num_decisions"] == digits["decisions"] == n + 3
    assert effort["num_labels_reviewed"] == n
    assert (effort["num_accepted"], effort["num_rejected"]) == (len(digits["accept"]), len(digits["reject"]))
    assert effort["hours"] == pytest.approx(round((n + 3) * 3.0 / 3600, 4))
    assert effort["reviewers"] == ["ana"]
    assert sum(effort["decided_by_queue"].values()) == n
    assert C.review_effort(ds.match_tags("test"), "autolabels")["num_decisions"] == 0


def test_fiftyone_map50_of_perfect_and_missed_predictions(digits):
    ds = digits["ds"]
    view = ds.match_tags("test")
    evals = ds.list_evaluations()
    perfect, shifted = [], []
    for dets in view.values("ground_truth"):
        perfect.append(fo.Detections(detections=[
            fo.Detection(label=d.label, bounding_box=d.bounding_box, confidence=0.9) for d in dets.detections]))
        # moved by more than its width: IoU 0 with every true box of its class
        shifted.append(fo.Detections(detections=[
            fo.Detection(label=d.label, bounding_box=[(d.bounding_box[0] + 0.5) % 0.8, d.bounding_box[1],
                                                      *d.bounding_box[2:]], confidence=0.9)
            for d in dets.detections]))
    view.set_values("map_perfect", perfect)
    view.set_values("map_shifted", shifted)
    try:
        classes = sorted(view.distinct("ground_truth.detections.label"))
        assert C._fiftyone_map50(view, "map_perfect", "ground_truth", classes) == pytest.approx(1.0)
        assert C._fiftyone_map50(view, "map_shifted", "ground_truth", classes) < 0.05
        assert ds.list_evaluations() == evals  # the temporary evaluations are gone
    finally:
        ds.delete_sample_fields(["map_perfect", "map_shifted"])


def test_bad_parameters_are_named_before_anything_is_written(digits, tmp_path):
    ds = digits["ds"]
    train, test = split_views(ds)
    assert (len(train), len(test)) == (N_TRAIN, N_TEST)
    runs, fields = ds.list_runs(), set(ds.get_field_schema())
    bad = [
        (dict(include="maybe"), "'include'"),
        (dict(label_field="nope"), "'label_field'"),
        (dict(gt_field="autolabels"), "must differ"),
        (dict(model="https://example.com/y.pt"), "'model': URLs"),
        (dict(model="./missing.pt"), "'model': no such file"),
        (dict(model="yolo11n.onnx"), "'model'"),
        (dict(val_fraction=1.5), "'val_fraction'"),
        (dict(seconds_per_box=-1.0), "'seconds_per_box'"),
        (dict(pred_prefix="a b"), "'pred_prefix'"),
        (dict(epochs=0), "'epochs'"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            C.compare_auto_vs_human(train, test, progress=False, **kwargs)
    with pytest.raises(ValueError, match="share samples"):
        C.compare_auto_vs_human(train, ds.match_tags(["train", "test"]), progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="'export_dir'"):
        C.compare_auto_vs_human(train, test, export_dir=str(tmp_path / "full"), progress=False)
    with pytest.raises(ValueError, match="'test': no sample tagged 'holdout'"):
        split_views(ds, test="holdout")
    with pytest.raises(ValueError, match="'split_field'"):
        split_views(ds, split_field="split")
    ds.match_tags("test").set_values("trained_auto", [fo.Detections()] * N_TEST)
    try:
        with pytest.raises(ValueError, match="'trained_auto' exists; pass overwrite=True"):
            C.compare_auto_vs_human(train, test, progress=False)
        assert ds.list_runs() == runs
        assert set(ds.get_field_schema()) == fields | {"trained_auto"}
    finally:
        ds.delete_sample_field("trained_auto")


def _labels(ds, field):
    return [[d.to_dict() for d in dets.detections] if dets else None for dets in ds.values(field)]


@pytest.mark.slow
def test_train_on_accepted_end_to_end_offline(digits, tmp_path):
    """The operator in a subprocess with the network blocked: export, train
    yolo11n (YAML, random init) on accepted and on human labels, test both
    on the held-out human labels; then every figure is recomputed here."""
    ds = digits["ds"]
    before = {f: _labels(ds, f) for f in ("autolabels", "ground_truth")}
    run_key = "accepted_vs_human"
    export_dir = tmp_path / "export"
    params = dict(label_field="autolabels", gt_field="ground_truth", include="accepted", epochs=1, imgsz=128,
                  batch=16, device="cpu", workers=0, val_fraction=0.2, export_dir=str(export_dir),
                  run_key=run_key, gpu_hours=0.5, cents_per_box=7.0, seconds_per_box=3.0)
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_OFFLINE", "PYTHONPATH")}
    env.update(STOPLIGHT_NETLOG=str(log), PYTHONPATH=os.pathsep.join([str(SUPPORT / "netblock"), str(SUPPORT)]))
    proc = subprocess.run(
        [sys.executable, str(SUPPORT / "train_offline.py"), json.dumps(dict(dataset=ds.name, params=params))],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["error"] is None, result["error"]
    # the block was in force, and its control is the only access on record
    assert "blocked by the test" in result["control"]
    attempts = log.read_text().split("=== ")[1:] if log.exists() else []
    assert [a.splitlines()[0] for a in attempts] == ["connect ('203.0.113.7', 80)"], log.read_text()

    ds.reload()
    info = ds.get_run_info(run_key)
    assert info.config.stoplight_method == "train_on_accepted" and info.config.status == "completed"
    report = ds.load_run_results(run_key).serialize()
    train, test = ds.match_tags("train"), ds.match_tags("test")

    # labels used: counted from the dataset, and the export holds exactly them
    auto, human = report["models"]["auto"], report["models"]["human"]
    n_accepted = train.count_values("autolabels.detections.review").get("accepted", 0)
    assert n_accepted == len(digits["accept"])
    assert auto["num_labels"] == auto["num_train_labels"] + auto["num_val_labels"] == n_accepted
    assert human["num_labels"] == train.count("ground_truth.detections")
    assert human["num_train_images"] + human["num_val_images"] == N_TRAIN
    assert auto["num_train_images"] + auto["num_val_images"] == len(
        train.filter_labels("autolabels", F("review") == "accepted"))
    assert auto["num_val_images"] > 0 and human["num_val_images"] > 0
    classes = report["classes"]
    assert classes == sorted(set(train.distinct("ground_truth.detections.label")) | set(
        test.distinct("ground_truth.detections.label")))
    got = {**_exported(export_dir / "auto", "train", classes), **_exported(export_dir / "auto", "val", classes)}
    assert _same(got, _expected(train, "autolabels", "accepted"))
    got = {**_exported(export_dir / "human", "train", classes), **_exported(export_dir / "human", "val", classes)}
    assert _same(got, _expected(train, "ground_truth", "all"))
    assert _same(_exported(export_dir / "test", "test", classes), _expected(test, "ground_truth", "all"))
    assert report["test"] == dict(label_field="ground_truth", num_images=N_TEST,
                                  num_labels=test.count("ground_truth.detections"))

    # review time and cost
    assert report["review"]["num_decisions"] == digits["decisions"]
    assert report["review"]["hours"] == pytest.approx(round(digits["decisions"] * 3.0 / 3600, 4))
    cost = report["cost"]
    assert cost["human_labels_usd"] == pytest.approx(round(human["num_labels"] * 0.07, 2))
    assert cost["auto_review_usd"] == pytest.approx(round(digits["decisions"] * 0.07, 2))
    assert cost["auto_gpu_usd"] == pytest.approx(0.5 * 2.5)
    assert cost["auto_total_usd"] == pytest.approx(round(0.5 * 2.5 + digits["decisions"] * 0.07, 2))

    # mAP: in range; FiftyOne's recomputed here from the stored predictions
    for m, r in report["models"].items():
        assert 0.0 <= r["map50"] <= 1.0 and 0.0 <= r["map50_95"] <= r["map50"] + 1e-9
        assert r["pred_field"] == f"trained_{m}"
        assert test.count(f"{r['pred_field']}.detections") == r["num_predictions"] > 0
        assert set(test.distinct(f"{r['pred_field']}.detections.label")) <= set(classes)
        assert not train.exists(r["pred_field"])  # predictions only on the test samples
        fo_map = C._fiftyone_map50(test, r["pred_field"], "ground_truth", classes)
        assert r["map50_fiftyone"] == pytest.approx(fo_map)
        assert Path(r["weights"]).is_file()
    assert report["map50_difference"] == pytest.approx(auto["map50"] - human["map50"])
    assert report["settings"]["model"] == "yolo11n.yaml" and report["settings"]["epochs"] == 1

    # the weights load under weights_only (ultralytics' safe mode)
    from ultralytics.nn.tasks import torch_safe_load

    ckpt, _ = torch_safe_load(auto["weights"], safe_only=True)
    assert ckpt["model"] is not None or ckpt["ema"] is not None

    table = format_report(report)
    assert f"{auto['map50']:.3f}" in table and str(auto["num_train_labels"]) in table
    # nothing stored was changed besides the prediction fields and the run
    assert {f: _labels(ds, f) for f in before} == before


class _Payload:
    """Unpickling this creates the directory ``marker``: code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_code_in_a_checkpoint_is_refused(digits, tmp_path):
    import torch
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer_mod
    import ultralytics.nn.tasks as tasks

    from stoplight.plugins.training import yolo

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker), "ema": _Payload(marker)}, evil)
    control = tmp_path / "control.pt"
    torch.save(_Payload(tmp_path / "control-ran"), control)
    torch.load(control, weights_only=False)
    assert (tmp_path / "control-ran").exists()  # the payload does run when unpickled
    saved = (tasks.SAFE_LOAD, data_utils.check_font, trainer_mod.check_amp)
    data_yaml = E.write_data_yaml(tmp_path / "data.yaml", tmp_path, tmp_path, None, ["0"])
    with pytest.raises(ValueError, match="'model'.*refused by weights_only loading"):
        yolo.train_yolo(data_yaml, model=str(evil), epochs=1, imgsz=64, device="cpu")
    with pytest.raises(ValueError, match="'weights'.*refused by weights_only loading"):
        yolo.evaluate_yolo(evil, data_yaml, device="cpu")
    with pytest.raises(ValueError, match="'weights'.*refused by weights_only loading"):
        yolo.predict_to_field(evil, digits["ds"].match_tags("test"), "never_written", device="cpu")
    assert not marker.exists(), "the checkpoint's code ran"
    assert not digits["ds"].has_sample_field("never_written")
    # ultralytics' switches are back as they were
    assert (tasks.SAFE_LOAD, data_utils.check_font, trainer_mod.check_amp) == saved
