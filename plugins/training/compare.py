"""Auto-labels vs human labels: one detector trained on each, one human test.

:func:`compare_auto_vs_human` is the apples-to-apples comparison of the
auto-labeling study (arXiv 2506.02359), on your own data and with your own
review decisions:

1. the training samples are exported twice with the same images and class
   list — once with the auto-labels ``include`` keeps (``accepted`` by a
   person, optionally also ``green``; :mod:`.export`), once with the human
   labels (``gt_field``) — and the held-out test samples once, with their
   human labels;
2. the same architecture is trained on each, with the same settings and
   seed (:func:`.yolo.train_yolo`); a share of the training images
   (``val_fraction``) is held out for ultralytics' model selection,
   labeled like the training images, so no human test label is seen;
3. both models are tested on the held-out human labels, twice:
   ultralytics' validator (mAP50), and FiftyOne's ``evaluate_detections``
   (COCO-style mAP at IoU 0.5) on the predictions stored in
   ``<pred_prefix>_auto`` / ``<pred_prefix>_human`` on the test samples;
4. the report adds the labels each model used, the human review time spent
   on the training samples' auto-labels (decisions in the audit log ×
   ``seconds_per_box``) and the cost of both routes, priced like the triage
   report (:mod:`..triage.report`): drawing a box by hand costs
   ``cents_per_box``; a reviewed auto-label is priced like a drawn one
   (conservative), plus the GPU time of auto-labeling (``gpu_hours``).

Written to the dataset: the two prediction fields, and a run record (method
``train_on_accepted``) whose results hold the report. Nothing else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Generator

from ..common import audit, fo_private, provenance, temp_evals
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..common.costs import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, check_costs
from . import yolo
from ..common.fields import check_detections_field
from ..common.label_vocab import DEFAULT_LABEL_FIELD, HUMAN_DECISIONS
from .export import INCLUDE, export_training_set, kept_labels_view, write_data_yaml

METHOD = "train_on_accepted"
MODELS = ("auto", "human")
#: review actions that are a person's judgement of a label (undo and reset
#: are not counted as looks)
DECISION_ACTIONS = ("accept", "reject", "correct")
_STEPS = ("Exporting", "Training on auto-labels", "Training on human labels",
          "Testing the auto-label model", "Testing the human-label model")


def split_views(sample_collection, split_field: str | None = None, train: str = "train", test: str = "test"):
    """The training and test samples of a collection, by tag or field value.

    Args:
        sample_collection: a dataset or view
        split_field: a string field holding each sample's split; None: the
            splits are sample tags
        train: the training split's tag or value
        test: the test split's tag or value

    Returns:
        ``(train_view, test_view)``

    Raises:
        ValueError: naming the parameter, for a missing split field, an
            empty split, or samples in both splits
    """
    from fiftyone import ViewField as F

    if not train or not test or train == test:
        raise ValueError(f"Parameters 'train' and 'test' must be two different splits; got {train!r}, {test!r}")
    if split_field:
        if sample_collection.get_field(split_field) is None:
            raise ValueError(f"Parameter 'split_field': field '{split_field}' does not exist")
        train_view = sample_collection.match(F(split_field) == train)
        test_view = sample_collection.match(F(split_field) == test)
        where = f"with {split_field} == "
    else:
        train_view, test_view = sample_collection.match_tags(train), sample_collection.match_tags(test)
        where = "tagged "
    for param, name, view in (("train", train, train_view), ("test", test, test_view)):
        if len(view) == 0:
            raise ValueError(f"Parameter '{param}': no sample {where}{name!r}")
    both = set(train_view.values("id")) & set(test_view.values("id"))
    if both:
        raise ValueError(
            f"{len(both)} sample(s) are in both the train split {train!r} and the test split {test!r}, "
            f"e.g. {sorted(both)[:3]}; a test sample must not be trained on"
        )
    return train_view, test_view


def review_effort(train_view, label_field: str, seconds_per_box: float = SECONDS_PER_BOX) -> dict:
    """The human review spent on the auto-labels of the training samples.

    Counted from the audit log (:mod:`..common.audit`): every ``accept``,
    ``reject`` or ``correct`` entry on a label of ``label_field`` of these samples is one
    look, ``seconds_per_box`` long. Bulk actions (e.g. *Accept all green*)
    count as if a person looked at each label: an upper bound of the time.

    Returns:
        dict: ``num_decisions`` (logged accept/reject entries),
        ``num_labels_reviewed`` (distinct labels among them),
        ``num_accepted`` / ``num_rejected`` (labels in that state now),
        ``reviewers``, ``seconds_per_box``, ``hours``
    """
    from fiftyone import ViewField as F

    label_ids = train_view.values(f"{label_field}.detections.id", unwind=True)
    log = audit.read_log(train_view, label_ids=label_ids) if label_ids else []
    looks = [e for e in log if e["action"] in DECISION_ACTIONS and e.get("field") == label_field]
    counts = train_view.count_values(f"{label_field}.detections.review")
    decided = train_view.filter_labels(label_field, F("review").is_in(list(HUMAN_DECISIONS)))
    return dict(
        num_decisions=len(looks),
        num_labels_reviewed=len({e["label_id"] for e in looks}),
        num_accepted=int(counts.get("accepted", 0)),
        num_rejected=int(counts.get("rejected", 0)),
        num_corrected=int(counts.get("corrected", 0)),
        decided_by_queue={str(k): int(v) for k, v in decided.count_values(f"{label_field}.detections.queue").items()},
        reviewers=sorted({str(e["user"]) for e in looks}),
        seconds_per_box=float(seconds_per_box),
        hours=round(len(looks) * seconds_per_box / 3600.0, 4),
    )


def _val_ids(sample_ids: list[str], val_fraction: float) -> set[str]:
    """A fixed share of the ids (by hash, so re-runs hold out the same ones)."""
    if val_fraction <= 0:
        return set()
    scored = sorted(sample_ids, key=lambda i: hashlib.sha1(f"stoplight-val:{i}".encode()).hexdigest())
    n = min(len(scored) - 1, max(1, round(len(scored) * val_fraction)))
    return set(scored[:n]) if n > 0 else set()


def _check_params(train_view, test_view, label_field, gt_field, include, pred_prefix, overwrite, val_fraction,
                  export_dir, model, costs, train_args) -> None:
    check_detections_field(train_view, label_field, "label_field")
    check_detections_field(train_view, gt_field, "gt_field")
    if label_field == gt_field:
        raise ValueError("Parameters 'label_field' and 'gt_field' must differ: one model trains on each")
    if include not in INCLUDE:
        raise ValueError(f"Parameter 'include' must be one of {INCLUDE}; got {include!r}")
    if fo_private.root_dataset(train_view).name != fo_private.root_dataset(test_view).name:
        raise ValueError("The train and test views must come from the same dataset")
    if len(train_view) == 0 or len(test_view) == 0:
        raise ValueError("The train and test views must both hold samples")
    if set(train_view.values("id")) & set(test_view.values("id")):
        raise ValueError("The train and test views share samples; a test sample must not be trained on")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"Parameter 'val_fraction' must be in [0, 1); got {val_fraction!r}")
    if not pred_prefix or not str(pred_prefix).isidentifier():
        raise ValueError(f"Parameter 'pred_prefix' must be a plain field name prefix; got {pred_prefix!r}")
    for m in MODELS:
        field = f"{pred_prefix}_{m}"
        if field in (label_field, gt_field):
            raise ValueError(f"Parameter 'pred_prefix': field '{field}' would overwrite an input field")
        existing = test_view.get_field(field)
        if existing is None:
            continue
        import fiftyone as fo

        if getattr(existing, "document_type", None) is not fo.Detections:
            raise ValueError(f"Parameter 'pred_prefix': field '{field}' exists and is not fo.Detections")
        if not overwrite:
            raise ValueError(
                f"Parameter 'pred_prefix': field '{field}' exists; pass overwrite=True to replace the "
                "predictions stored there, or choose another prefix"
            )
    if export_dir is not None and Path(export_dir).exists() and any(Path(export_dir).iterdir()):
        raise ValueError(f"Parameter 'export_dir': {str(export_dir)!r} is not empty")
    yolo.check_model(model)
    yolo.check_train_args(**train_args)
    check_costs(**costs)


def _export_all(train_view, test_view, label_field, gt_field, include, val_fraction, root: Path) -> dict:
    """Exports auto/, human/ and test/ under ``root``; returns per-model info."""
    train_ids = train_view.values("id")
    val_ids = _val_ids(train_ids, val_fraction)
    fit_view = train_view.exclude(list(val_ids)) if val_ids else train_view
    val_view = train_view.select(list(val_ids)) if val_ids else None
    gt_path = f"{gt_field}.detections.label"
    classes = sorted(
        set(kept_labels_view(train_view, label_field, include, True).distinct(f"{label_field}.detections.label"))
        | set(train_view.distinct(gt_path))
        | set(test_view.distinct(gt_path))
    )
    if not classes:
        raise ValueError("No class to train: the kept auto-labels and the human labels are all empty")
    # detectors train and test on boxes, whatever masks the labels carry
    test = export_training_set(test_view, gt_field, root / "test", "all", classes, "test", skip_empty=False,
                               masks=False)
    out: dict[str, Any] = dict(classes=classes, test=test, models={})
    sources = dict(auto=(label_field, include, True), human=(gt_field, "all", False))
    for m, (field, inc, skip_empty) in sources.items():
        fit = export_training_set(fit_view, field, root / m, inc, classes, "train", skip_empty=skip_empty,
                                  masks=False)
        if fit["num_images"] == 0:
            raise ValueError(
                f"No training image has a label for the {m} model: field '{field}' with include={inc!r} "
                "keeps nothing on the train split (accept some labels first)"
            )
        val = None
        if val_view is not None:
            val = export_training_set(val_view, field, root / m, inc, classes, "val", skip_empty=skip_empty,
                                      masks=False)
            if val["num_images"] == 0:
                val = None
        yaml_path = write_data_yaml(
            root / f"{m}.yaml", fit["images_dir"], (val or fit)["images_dir"], test["images_dir"], classes,
        )
        out["models"][m] = dict(field=field, include=inc, train=fit, val=val, data_yaml=yaml_path)
    return out


def _fiftyone_map50(test_view, pred_field: str, gt_field: str, classes: list[str]) -> float | None:
    """FiftyOne's COCO-style mAP at IoU 0.5, under a temporary eval key."""
    dataset = fo_private.root_dataset(test_view)
    temp_evals.delete_orphans(dataset)
    key = temp_evals.new_key()
    try:
        results = test_view.evaluate_detections(
            pred_field, gt_field=gt_field, eval_key=key, method="coco", iou=0.5, classwise=True,
            compute_mAP=True, iou_threshs=[0.5], classes=classes, progress=False,
        )
        value = results.mAP()
    finally:
        if key in dataset.list_evaluations():
            dataset.delete_evaluation(key)
    return None if value is None or value < 0 else float(value)


def compare_steps(
    train_view,
    test_view,
    label_field: str = DEFAULT_LABEL_FIELD,
    gt_field: str = "ground_truth",
    include: str = "accepted",
    model: str = "yolo11n.yaml",
    epochs: int = 50,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    workers: int = 0,
    seed: int = 0,
    val_fraction: float = 0.1,
    export_dir: str | os.PathLike | None = None,
    pred_prefix: str = "trained",
    overwrite: bool = False,
    seconds_per_box: float = SECONDS_PER_BOX,
    cents_per_box: float = CENTS_PER_BOX,
    usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
    gpu_hours: float = 0.0,
    run_key: str | None = None,
    train_kwargs: dict | None = None,
) -> Generator[Progress, None, dict]:
    """:func:`compare_auto_vs_human` as a generator of progress events;
    returns the report."""
    costs = dict(seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
                 usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours)
    _check_params(train_view, test_view, label_field, gt_field, include, pred_prefix, overwrite, val_fraction,
                  export_dir, model, costs, dict(epochs=epochs, imgsz=imgsz, batch=batch, workers=workers))
    device = device or yolo.default_device()
    # without export_dir, the export (links to the dataset's media) and the
    # weights go to a temporary folder that is removed when the run ends
    temporary = not export_dir
    root = Path(tempfile.mkdtemp(prefix="stoplight_train_")) if temporary else Path(export_dir)
    try:
        return (yield from _compare_in(
            root, temporary, train_view, test_view, label_field, gt_field, include, model, epochs, imgsz,
            batch, device, workers, seed, val_fraction, pred_prefix, costs, run_key, train_kwargs,
        ))
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _compare_in(root, temporary, train_view, test_view, label_field, gt_field, include, model, epochs, imgsz,
                batch, device, workers, seed, val_fraction, pred_prefix, costs, run_key, train_kwargs):
    dataset = fo_private.root_dataset(train_view)
    root.mkdir(parents=True, exist_ok=True)
    settings = dict(model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
                    seed=seed, val_fraction=val_fraction, **(train_kwargs or {}))
    run_key = run_key or provenance.new_run_key(METHOD)
    record = provenance.start_run(
        dataset, run_key, method=METHOD, label_field=label_field, gt_field=gt_field, include=include,
        export_dir=None if temporary else str(root), pred_prefix=pred_prefix, num_train_samples=len(train_view),
        num_test_samples=len(test_view), **settings,
    )
    report: dict[str, Any] = {}
    total = len(_STEPS)
    with provenance.recorded_run(dataset, run_key, record, lambda status: dict(report, status=status)) as run:
        yield Progress(0, total, _STEPS[0])
        exported = _export_all(train_view, test_view, label_field, gt_field, include, val_fraction, root)
        trained = {}
        for i, m in enumerate(MODELS):
            yield Progress(1 + i, total, _STEPS[1 + i])
            trained[m] = yolo.train_yolo(
                exported["models"][m]["data_yaml"], model=model, epochs=epochs, imgsz=imgsz, batch=batch,
                device=device, workers=workers, seed=seed, project=root / "runs", name=f"train_{m}",
                **(train_kwargs or {}),
            )
        tested = {}
        for i, m in enumerate(MODELS):
            yield Progress(3 + i, total, _STEPS[3 + i])
            weights = trained[m]["weights"]
            ul = yolo.evaluate_yolo(weights, exported["models"][m]["data_yaml"], "test", imgsz=imgsz, batch=batch,
                                    device=device, workers=workers, project=root / "runs", name=f"test_{m}")
            pred_field = f"{pred_prefix}_{m}"
            num_pred = yolo.predict_to_field(weights, test_view, pred_field, imgsz=imgsz, batch=batch,
                                             device=device)
            fo_map50 = _fiftyone_map50(test_view, pred_field, gt_field, exported["classes"])
            tested[m] = dict(ul, map50_fiftyone=fo_map50, pred_field=pred_field, num_predictions=num_pred)
        report.update(_build_report(train_view, label_field, gt_field, include, exported, trained, tested,
                                    settings, costs, run_key, root))
        if temporary:  # removed when the run ends: the report names no file of it
            report["export_dir"] = None
            for r in report["models"].values():
                r["weights"] = r["data_yaml"] = None
        yield Progress(total, total, "Done")
    return run.summary


def _build_report(train_view, label_field, gt_field, include, exported, trained, tested, settings, costs,
                  run_key, root) -> dict:
    review = review_effort(train_view, label_field, costs["seconds_per_box"])
    models = {}
    for m in MODELS:
        e = exported["models"][m]
        val = e["val"] or {"num_images": 0, "num_labels": 0}
        t = tested[m]
        models[m] = dict(
            label_field=e["field"],
            include=e["include"],
            num_train_images=e["train"]["num_images"],
            num_train_labels=e["train"]["num_labels"],
            num_val_images=val["num_images"],
            num_val_labels=val["num_labels"],
            num_labels=e["train"]["num_labels"] + val["num_labels"],
            map50=t["map50"],
            map50_95=t["map50_95"],
            map50_fiftyone=t["map50_fiftyone"],
            precision=t["precision"],
            recall=t["recall"],
            pred_field=t["pred_field"],
            num_predictions=t["num_predictions"],
            weights=trained[m]["weights"],
            data_yaml=e["data_yaml"],
            train_seconds=trained[m]["train_seconds"],
        )
    usd_box = costs["cents_per_box"] / 100.0
    gpu_usd = costs["gpu_hours"] * costs["usd_per_gpu_hour"]
    human_usd = models["human"]["num_labels"] * usd_box
    auto_usd = gpu_usd + review["num_decisions"] * usd_box
    test = exported["test"]
    return dict(
        run_key=run_key,
        export_dir=str(root),
        classes=exported["classes"],
        test=dict(label_field=gt_field, num_images=test["num_images"], num_labels=test["num_labels"]),
        models=models,
        map50_difference=models["auto"]["map50"] - models["human"]["map50"],
        review=review,
        cost=dict(
            cents_per_box=costs["cents_per_box"],
            usd_per_gpu_hour=costs["usd_per_gpu_hour"],
            gpu_hours=costs["gpu_hours"],
            human_labels_usd=round(human_usd, 2),
            auto_gpu_usd=round(gpu_usd, 2),
            auto_review_usd=round(review["num_decisions"] * usd_box, 2),
            auto_total_usd=round(auto_usd, 2),
            saved_usd=round(human_usd - auto_usd, 2),
        ),
        settings=settings,
        notes=[
            "Both models: same images, classes, architecture, settings and seed; only the labels differ.",
            "mAP50: ultralytics' validator on the held-out human labels; map50_fiftyone: FiftyOne's "
            "evaluate_detections (COCO-style, IoU 0.5) on the stored predictions.",
            "Review time counts every logged accept/reject on these labels, bulk actions too (an upper bound).",
            "Reviewed auto-labels are priced like drawn boxes (conservative, as in the triage report).",
        ],
    )


def compare_auto_vs_human(train_view, test_view, progress: bool = True, **kwargs: Any) -> dict:
    """Trains one detector on reviewed auto-labels and one on human labels,
    tests both on held-out human labels, and reports (module docstring).

    Args:
        train_view: the training samples (with ``label_field`` and
            ``gt_field``)
        test_view: the held-out test samples (with ``gt_field``)
        progress: a FiftyOne progress bar (True), none (False), or a
            callable receiving :class:`..common.progress.Progress`
        **kwargs: ``label_field`` ("autolabels"), ``gt_field``
            ("ground_truth"), ``include`` ("accepted", "accepted+green",
            "all"), ``model`` ("yolo11n.yaml"), ``epochs`` (50), ``imgsz``
            (640), ``batch`` (16), ``device`` (first GPU, else CPU),
            ``workers`` (0), ``seed`` (0), ``val_fraction`` (0.1),
            ``export_dir`` (default: a temporary folder, removed when the
            run ends; the report then names no weights), ``pred_prefix`` ("trained"),
            ``overwrite`` (False: existing prediction fields are an error),
            ``seconds_per_box`` (3), ``cents_per_box`` (7),
            ``usd_per_gpu_hour`` (2.5), ``gpu_hours`` (0: GPU time spent
            auto-labeling), ``run_key``, ``train_kwargs`` (more
            ``YOLO.train`` arguments)

    Returns:
        the report: ``models`` (``auto``, ``human``: labels and images
        used, ``map50`` (ultralytics), ``map50_fiftyone``, ``map50_95``,
        weights, prediction field), ``map50_difference`` (auto − human),
        ``test``, ``review`` (:func:`review_effort`), ``cost``,
        ``classes``, ``settings``, ``notes``, ``run_key``, ``status``

    Raises:
        ValueError: naming the parameter, before anything is written
    """
    yolo.import_ultralytics()  # before the progress bar captures stdout
    return run_progress(compare_steps(train_view, test_view, **kwargs), progress)


def format_report(report: dict) -> str:
    """The report as a plain-text table."""
    a, h = report["models"]["auto"], report["models"]["human"]

    def f(v, fmt="{:.3f}"):
        return "-" if v is None else fmt.format(v)

    rows = [
        ("", f"auto ({a['include']})", "human"),
        ("label field", a["label_field"], h["label_field"]),
        ("training images", str(a["num_train_images"]), str(h["num_train_images"])),
        ("training labels", str(a["num_train_labels"]), str(h["num_train_labels"])),
        ("validation labels", str(a["num_val_labels"]), str(h["num_val_labels"])),
        ("mAP50 (ultralytics)", f(a["map50"]), f(h["map50"])),
        ("mAP50 (FiftyOne)", f(a["map50_fiftyone"]), f(h["map50_fiftyone"])),
        ("mAP50-95 (ultralytics)", f(a["map50_95"]), f(h["map50_95"])),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>10}" for r in rows]
    r, c, t, s = report["review"], report["cost"], report["test"], report["settings"]
    lines += [
        "",
        f"test: {t['num_images']} images, {t['num_labels']} human labels ({t['label_field']})",
        f"review: {r['num_decisions']} decisions on {r['num_labels_reviewed']} labels "
        f"x {r['seconds_per_box']:g} s = {r['hours']:.2f} h",
        f"cost: human labels ${c['human_labels_usd']:.2f} vs auto ${c['auto_total_usd']:.2f} "
        f"(GPU ${c['auto_gpu_usd']:.2f} + review ${c['auto_review_usd']:.2f}); saved ${c['saved_usd']:.2f}",
        f"model {s['model']}, {s['epochs']} epoch(s), imgsz {s['imgsz']}, device {s['device']}, seed {s['seed']}",
    ]
    return "\n".join(lines)
