"""Walkthrough: the whole Stoplight path, every step through the App's operators.

zero-shot detect -> embed -> score -> calibrate on a verified subset ->
assign green/yellow/red queues -> review -> finalize. Each step is a call of
``foo.execute_operator("@stoplight/autolabel/...", ctx=...)``, the same
operators the App runs, and prints a short summary read back from the
database (run records, counts, the triage report).

    # offline, meaningful: real digit images, a real classifier's labels and mistakes
    python examples/walkthrough.py --digits

    # your images with real checkpoints (downloaded on first use; a GPU helps)
    python examples/walkthrough.py --images DIR --classes person car bicycle

    # an existing dataset; a random 30 % of the samples that have
    # `ground_truth` serve as the human-verified subset
    python examples/walkthrough.py --dataset NAME --classes person car --gt-field ground_truth

    # offline smoke run: tiny random-weight models, MEANINGLESS labels
    python examples/walkthrough.py --images DIR --classes person car --offline-tiny

With a ground-truth field the review step simulates a reviewer: it accepts
or rejects the first ``--review`` yellow labels (``review_rank`` order) by
what the ground truth says. Without one, nothing can be calibrated until a
person has reviewed some labels in the App; the script then stops after
scoring, says so, and resumes where it stopped when run again with
``--dataset NAME`` (labeled samples and embedded labels are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from stoplight_import import REPO, import_stoplight

PLUGIN = "@stoplight/autolabel"
VERIFIED_TAG = "stoplight_verified"
SIM_REVIEWER = "simulated-reviewer"
DIGIT_CLASSES = [str(d) for d in range(10)]
SCORES = ("hardness", "margin", "mistakenness", "knn_agreement", "rer", "clip_agreement", "consensus", "uncertainty")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

#: exit code when there is nothing verified to calibrate on (see module doc)
EXIT_NOTHING_VERIFIED = 3

BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! --offline-tiny: the detector and CLIP below have RANDOM WEIGHTS (tiny,  !!
!! built offline). They exercise every step, but their labels, embeddings  !!
!! and therefore the triage are MEANINGLESS. For a meaningful run offline  !!
!! use --digits; for your data use real checkpoints (--detector, --clip).  !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="a folder of images (a new dataset is built)")
    src.add_argument("--dataset", metavar="NAME", help="an existing FiftyOne dataset")
    src.add_argument("--digits", action="store_true",
                     help="build the digits dataset: real images, labels and label errors, offline")
    p.add_argument("--name", help="name of the dataset built by --images/--digits "
                                  "(default stoplight-walkthrough[-digits])")
    p.add_argument("--replace", action="store_true", help="delete an existing dataset of that --name first")
    p.add_argument("--classes", nargs="+", help="class names (each its own prompt); --digits: 0-9")
    p.add_argument("--label-field", default="autolabels")
    p.add_argument("--backend", default="owlv2", help="yolo-world, yoloe, owlvit, owlv2, grounding-dino")
    p.add_argument("--detector", help="hub id, ultralytics weight name or local checkpoint "
                                      "(default: the backend's published checkpoint, downloaded)")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture")
    p.add_argument("--clip", default="openai", help="open_clip pretrained tag (downloaded) or local checkpoint file")
    p.add_argument("--offline-tiny", action="store_true",
                   help="build tiny random-weight detector and CLIP checkpoints (labels are meaningless)")
    p.add_argument("--confidence-threshold", type=float, default=0.2)
    p.add_argument("--device", help="e.g. cuda, cpu (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--gt-field", help="Detections field of verified labels (--digits: ground_truth)")
    p.add_argument("--verified-fraction", type=float, default=0.3,
                   help="share of the samples with --gt-field taken at random as the verified subset")
    p.add_argument("--target-precision", type=float, default=0.95)
    p.add_argument("--review", type=int, default=20, metavar="N",
                   help="review the first N yellow labels (simulated from --gt-field when given)")
    p.add_argument("--reviewer", default=SIM_REVIEWER, help="name recorded on the simulated decisions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--copies", type=int, default=3, help="--digits: times the held-out digits are pasted")
    args = p.parse_args(argv)
    if args.digits:
        args.classes = args.classes or DIGIT_CLASSES
        args.gt_field = args.gt_field or "ground_truth"
    elif not args.classes:
        p.error("--classes is required with --images and --dataset")
    if not 0.0 < args.verified_fraction <= 1.0:
        p.error(f"--verified-fraction must be in (0, 1]; got {args.verified_fraction}")
    if args.digits and args.offline_tiny:
        p.error("--offline-tiny has no effect with --digits (it runs no detector or CLIP)")
    if args.review < 0:
        p.error(f"--review must be >= 0; got {args.review}")
    return args


# ------------------------------------------------------------------ set-up


def ensure_plugin() -> None:
    """Makes the operators resolvable in this process.

    When the plugin is not installed (a clone run in place), this repository
    is linked into a temporary plugins directory, as ``fiftyone plugins
    download`` would install it. Only this process sees it; the App needs
    the plugin installed (see README).
    """
    import fiftyone as fo
    import fiftyone.operators as foo

    if foo.operator_exists(f"{PLUGIN}/zero_shot_detect"):
        return
    tmp = Path(tempfile.mkdtemp(prefix="stoplight-plugins-"))
    (tmp / "stoplight").mkdir()
    (tmp / "stoplight" / "autolabel").symlink_to(REPO, target_is_directory=True)
    fo.config.plugins_dir = str(tmp)
    if not foo.operator_exists(f"{PLUGIN}/zero_shot_detect"):
        from fiftyone.operators.registry import OperatorRegistry

        raise RuntimeError(f"Could not load the plugin from {REPO}: {OperatorRegistry().list_errors()}")
    print(f"(plugin not registered with FiftyOne: loaded from {REPO} for this run only; "
          "the App needs it registered: python examples/link_plugin.py)")


def build_images_dataset(name: str, image_dir: str, replace: bool):
    """A persistent dataset of the images under ``image_dir``."""
    import fiftyone as fo

    root = Path(image_dir)
    if not root.is_dir():
        raise SystemExit(f"--images: {image_dir!r} is not a directory")
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise SystemExit(f"--images: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {image_dir!r}")
    _free_name(name, replace)
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    return ds


def build_digits(name: str, replace: bool, seed: int, copies: int):
    """The digits dataset (see ``digits_dataset.py``), persistent."""
    from digits_dataset import build_digits_dataset

    _free_name(name, replace)
    # next to the other temporary files; the dataset refers to them by path
    image_dir = Path(tempfile.gettempdir()) / f"{name}-images"
    shutil.rmtree(image_dir, ignore_errors=True)
    ds, info = build_digits_dataset(seed=seed, copies=copies, out_dir=str(image_dir), name=name)
    ds.persistent = True
    return ds, info


def _free_name(name: str, replace: bool) -> None:
    import fiftyone as fo

    if fo.dataset_exists(name):
        if not replace:
            raise SystemExit(f"Dataset {name!r} exists: continue it with --dataset {name}, "
                             "or pass --replace to delete it and start over")
        fo.delete_dataset(name)


def tiny_checkpoints(backend: str, workdir: str) -> tuple[str, str, str]:
    """``(detector, clip_model, clip_checkpoint)`` with random tiny weights."""
    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.scoring.embeddings import build_random_clip

    # the same builder as examples/make_tiny_checkpoint.py
    detector = get_backend(backend).build_random_checkpoint(os.path.join(workdir, backend), size="tiny")
    clip_model, clip_ckpt = build_random_clip(os.path.join(workdir, "clip"))
    return detector, clip_model, clip_ckpt


# ------------------------------------------------------------ the operators


def run_operator(name: str, dataset, params: dict, view=None, **ctx) -> tuple[object, list[str]]:
    """Executes ``@stoplight/autolabel/<name>`` like the App does.

    Returns:
        ``(execution result, keys of the runs it registered)``
    """
    import fiftyone.operators as foo

    before = set(dataset.list_runs())
    result = foo.execute_operator(
        f"{PLUGIN}/{name}",
        ctx=dict(dataset=dataset, view=view if view is not None else dataset.view(), params=params, **ctx),
    )
    if result.error:
        raise RuntimeError(f"{name} failed: {result.error}")
    dataset.reload()
    return result, sorted(set(dataset.list_runs()) - before)


def _run_config(dataset, keys: list[str]) -> dict:
    return dataset.get_run_info(keys[-1]).config.serialize() if keys else {}


@contextlib.contextmanager
def _download_hint(option: str, given: bool):
    """Turns a failure to load a default (downloaded) checkpoint into a
    message saying how to run offline."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - any load failure gets the hint
        if given:
            raise
        raise SystemExit(f"{e}\n\nThe default checkpoint is downloaded on first use; without internet pass "
                         f"{option} <local checkpoint>, or --offline-tiny for a smoke run (meaningless labels), "
                         "or --digits for a meaningful offline run") from e


def step(n: int, title: str, total: int = 7) -> None:
    """Prints a step's heading."""
    print(f"\n[{n}/{total}] {title}")


def open_app_command(name: str) -> str:
    """The shell command that opens dataset ``name`` in the App with the
    verification queues panel (``open_app.py``), runnable from any folder."""
    return shlex.join([sys.executable, str(REPO / "examples" / "open_app.py"), name])


def detect(ds, args, detector: str | None) -> None:
    """Step 1: ``zero_shot_detect`` on the whole dataset (``detector`` None: the backend's default)."""
    params = dict(view_target="DATASET", backend=args.backend, classes=args.classes,
                  label_field=args.label_field, confidence_threshold=args.confidence_threshold,
                  batch_size=args.batch_size)
    if detector:
        params["checkpoint"] = detector
    if args.device:
        params["device"] = args.device
    with _download_hint("--detector", given=bool(detector)):
        _, keys = run_operator("zero_shot_detect", ds, params)
    cfg = _run_config(ds, keys)
    print(f"  run {keys[-1] if keys else '-'} ({cfg.get('status')}): {cfg.get('num_labels', 0)} labels on "
          f"{cfg.get('num_processed_samples', 0)} samples, {cfg.get('num_skipped_samples', 0)} skipped "
          f"(already labeled), {cfg.get('num_failed_samples', 0)} failed")
    counts = ds.count_values(f"{args.label_field}.detections.label")
    print("  labels per class: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])))


def embed(ds, args, clip_model: str, clip: str) -> None:
    """Step 2: ``compute_label_embeddings`` of every auto-label's crop."""
    params = dict(view_target="DATASET", label_field=args.label_field, model_name=clip_model, pretrained=clip)
    if args.device:
        params["device"] = args.device
    with _download_hint("--clip", given=args.offline_tiny or os.path.isfile(clip)):
        _, keys = run_operator("compute_label_embeddings", ds, params)
    cfg = _run_config(ds, keys)
    print(f"  run {keys[-1] if keys else '-'} ({cfg.get('status')}): {cfg.get('num_embedded_labels', 0)} labels "
          f"embedded with {clip_model}, {cfg.get('num_skipped_labels', 0)} skipped (already embedded), "
          f"{cfg.get('num_failed_labels', 0)} failed")


def score(ds, args, consensus_fields=None) -> None:
    """Step 3: ``score_labels``; prints the signals that were written."""
    params = dict(view_target="DATASET", label_field=args.label_field)
    if consensus_fields:
        params["consensus_fields"] = consensus_fields
    if args.device:
        params["device"] = args.device
    _, keys = run_operator("score_labels", ds, params)
    cfg = _run_config(ds, keys)
    # the signals that have evidence (score_labels leaves the others None)
    written = [a for a in SCORES if ds.count(f"{args.label_field}.detections.{a}")]
    print(f"  run {keys[-1] if keys else '-'} ({cfg.get('status')}): {cfg.get('num_scored_labels', 0)} labels "
          f"scored; written: {', '.join(written)}")


def choose_verified(ds, args):
    """Tags a random ``--verified-fraction`` of the samples that have
    ``--gt-field`` as verified (kept as they are on a re-run); returns the
    verified view."""
    verified = ds.match_tags(VERIFIED_TAG)
    if len(verified) == 0:
        import numpy as np

        candidates = ds.exists(args.gt_field).values("id")
        if not candidates:
            raise SystemExit(f"--gt-field: no sample of dataset {ds.name!r} has field {args.gt_field!r}")
        k = max(1, int(round(args.verified_fraction * len(candidates))))
        chosen = np.random.default_rng(args.seed).choice(candidates, size=k, replace=False)
        ds.select(chosen.tolist()).tag_samples(VERIFIED_TAG)
        verified = ds.match_tags(VERIFIED_TAG)
    return verified


def calibrate(ds, args) -> bool:
    """Step 4: ``calibrate_triage`` on the verified subset (or on reviews without
    ``--gt-field``); False when nothing is verified yet."""
    params = dict(label_field=args.label_field, target_precision=args.target_precision)
    if args.gt_field:
        verified = choose_verified(ds, args)
        print(f"  verified subset: {len(verified)} of {len(ds)} samples (tag '{VERIFIED_TAG}'), "
              f"labels in '{args.gt_field}'")
        params.update(view_target="CURRENT_VIEW", gt_field=args.gt_field)
        view = verified
    else:
        # no ground truth: the decisions people made in the App are the verified labels
        params.update(view_target="DATASET", gt_field="", use_reviews=True)
        view = None
    try:
        run_operator("calibrate_triage", ds, params, view=view)
    except Exception as e:  # noqa: BLE001 - the operator's ValueError arrives wrapped
        if "no verified auto-labels" not in str(e):
            raise
        print("  nothing verified yet: no ground truth and no reviewed label.\n"
              "  Review a random sample of labels in the App (a few hundred), or pass --gt-field, then run\n"
              f"  again with --dataset {ds.name}: samples already labeled and embedded are skipped.")
        return False
    run = ds.load_run_results("triage")
    print(f"  {run.num_verified_labels} verified labels ({run.num_from_reviews} from reviews), "
          f"signals {', '.join(run.signals)}; ranking quality (cross-fitted AUROC) "
          f"{_fmt(run.oof_auroc, 3)}")
    if getattr(run, "scope", "class") == "overall":
        what = (f"P(correct) >= {run.green_threshold:.3f} (lower bound {run.certified_lower:.3f})"
                if run.green_threshold is not None else f"none: {run.no_green_reason}")
        print(f"  green queue certified as a whole (precision >= {args.target_precision:.0%} at 95 % "
              f"confidence): {what}")
    else:
        print(f"  classes with a certified green (precision >= {args.target_precision:.0%} at 95 % confidence): "
              f"{run.num_green_classes} of {run.num_classes}")
    return True


def assign(ds, args) -> dict:
    """Step 5: ``assign_queues``, then the ``triage_report`` operator's report, printed."""
    run_operator("assign_queues", ds, dict(view_target="DATASET", label_field=args.label_field))
    result, _ = run_operator("triage_report", ds, dict(view_target="DATASET", label_field=args.label_field))
    report = result.result["report"]
    print(format_report(report))
    return report


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(report: dict) -> str:
    """The triage report as a text table: per queue, then per class."""
    lines = [f"  {'':8s} {'labels':>7s} {'verified':>8s} {'precision (95% interval)':>26s} {'expected':>9s}"]

    def row(name: str, b: dict) -> str:
        iv = b.get("interval")
        prec = f"{_fmt(b['verified_precision'])} ({_fmt(iv[0])}-{_fmt(iv[1])})" if iv else "-"
        return (f"  {name:8s} {b['count']:7d} {b['verified']:8d} {prec:>26s} "
                f"{_fmt(b['expected_precision']):>9s}")

    for q in ("green", "yellow", "red"):
        lines.append(row(q, report["queues"][q]))
    lines.append(f"\n  {'class':8s} {'green':>7s} {'yellow':>7s} {'red':>7s}  green threshold / why none")
    for c, info in report["classes"].items():
        qs = info["queues"]
        threshold = qs["green"].get("threshold")
        if threshold is None and report.get("scope") == "overall":
            threshold = report["queues"]["green"].get("threshold")
        why = (f"P(correct) >= {threshold:.3f}" if threshold is not None
               else (info.get("no_green_reason") or "-"))
        lines.append(f"  {c:8s} {qs['green']['count']:7d} {qs['yellow']['count']:7d} {qs['red']['count']:7d}  {why}")
    w, cost, fin = report["workload"], report["cost"], report["final"]
    lines.append(f"\n  review workload: {w['yellow']} yellow labels, {w['hours']:.2f} h at {w['seconds_per_box']:g} s/box;"
                 f" cost by hand ${cost['manual_usd']:.2f} vs auto-label + review ${cost['auto_usd']:.2f}")
    lines.append(f"  expected precision of the final labels after review: {_fmt(fin['expected_precision'], 3)}")
    return "\n".join(lines)


def outcomes(ds, args, label_ids: list[str]) -> dict[str, bool]:
    """Whether each label matches a ground-truth box of its class
    (``evaluate_detections``, IoU 0.5, the calibration's rule)."""
    key = "walkthrough_reviewer"
    if ds.has_evaluation(key):
        ds.delete_evaluation(key)
    # match against every label of those samples, as the calibration does
    samples = ds.select(ds.select_labels(ids=label_ids, fields=args.label_field).values("id"))
    try:
        samples.evaluate_detections(args.label_field, gt_field=args.gt_field, eval_key=key, iou=0.5,
                                    classwise=True, progress=False)
        ids, res = samples.values([f"{args.label_field}.detections.id", f"{args.label_field}.detections.{key}"],
                                  unwind=True)
    finally:
        if ds.has_evaluation(key):
            ds.delete_evaluation(key)
    wanted = set(label_ids)
    return {i: r == "tp" for i, r in zip(ids, res) if i in wanted}


def review(ds, args) -> None:
    """Step 6: ``review_labels`` on the first ``--review`` open yellow labels, decided
    from the ground truth (a simulated reviewer); without it, lists them."""
    from stoplight.plugins.panels.shared.queue_stats import next_yellow

    todo = next_yellow(ds, args.label_field, args.review) if args.review else []
    if not todo:
        print("  no open yellow labels")
        return
    if not args.gt_field:
        print("  no ground truth: review these in the App (verification_queues panel), then re-run:")
        for t in todo:
            print(f"    rank {t['rank']:4d}  {t['label']:10s}  P(correct) {t['p_correct']:.2f}  "
                  f"sample {t['sample_id']}  label {t['label_id']}")
        return
    print(f"  SIMULATED reviewer '{args.reviewer}': decides each label by the ground truth in '{args.gt_field}'")
    correct = outcomes(ds, args, [t["label_id"] for t in todo])
    for action in ("accept", "reject"):
        chosen = [t for t in todo if correct[t["label_id"]] == (action == "accept")]
        if not chosen:
            continue
        # exactly what the App sends when these labels are selected
        selected = [dict(label_id=t["label_id"], sample_id=t["sample_id"], field=args.label_field, frame_number=None)
                    for t in chosen]
        result, _ = run_operator("review_labels", ds, dict(action=action, target="SELECTED_LABELS",
                                                            user=args.reviewer), selected_labels=selected)
        r = result.result
        print(f"  {action}ed {r['num_changed']} labels (audit-log action {r['action_id']}, by {r['user']})")


def finalize(ds, args) -> None:
    """Step 7: ``finalize_labels`` (accepted + green); with ground truth, the
    precision and recall of the final labels against it."""
    final_field = f"{args.label_field}_final"
    result, _ = run_operator("finalize_labels", ds, dict(view_target="DATASET", label_field=args.label_field,
                                                          final_field=final_field, include_green=True))
    r = result.result
    print(f"  {r['num_final_labels']} labels in '{r['final_field']}': {r['num_accepted']} accepted by a reviewer, "
          f"{r['num_green']} green; run {r['run_key']}")
    if args.gt_field:
        view = ds.exists(args.gt_field)
        n_auto = view.count(f"{args.label_field}.detections")
        res = view.evaluate_detections(final_field, gt_field=args.gt_field, iou=0.5, classwise=True, progress=False)
        before = view.evaluate_detections(args.label_field, gt_field=args.gt_field, iou=0.5, classwise=True,
                                          progress=False)
        m, mb = res.metrics(), before.metrics()
        print(f"  against '{args.gt_field}' (IoU 0.5): all {n_auto} auto-labels precision {mb['precision']:.3f} "
              f"recall {mb['recall']:.3f}; final labels precision {m['precision']:.3f} recall {m['recall']:.3f}")


# -------------------------------------------------------------------- main


def main(argv=None) -> int:
    """Runs the walkthrough; returns the exit code."""
    args = parse_args(argv)
    import_stoplight()
    ensure_plugin()
    workdir = tempfile.mkdtemp(prefix="stoplight-walkthrough-")
    try:
        return _walk(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _walk(args, workdir: str) -> int:
    import fiftyone as fo

    detector, clip_model, clip = args.detector, args.clip_model, args.clip
    if args.offline_tiny:
        detector, clip_model, clip = tiny_checkpoints(args.backend, workdir)
        print(BANNER)

    if args.digits:
        name = args.name or "stoplight-walkthrough-digits"
        ds, info = build_digits(name, args.replace, args.seed, args.copies)
        print(f"Dataset '{ds.name}': {len(ds)} images of real handwritten digits, {info['num_true_boxes']} true "
              f"boxes in 'ground_truth'; {ds.count(f'{args.label_field}.detections')} auto-labels from a weak real "
              f"classifier (accuracy {info['labeler_accuracy']:.3f} on true boxes, plus background and shifted boxes)")
    elif args.images:
        ds = build_images_dataset(args.name or "stoplight-walkthrough", args.images, args.replace)
        print(f"Dataset '{ds.name}': {len(ds)} images from {args.images}")
    else:
        if not fo.dataset_exists(args.dataset):
            raise SystemExit(f"--dataset: no dataset named {args.dataset!r} (fo.list_datasets())")
        ds = fo.load_dataset(args.dataset)
        print(f"Dataset '{ds.name}': {len(ds)} samples")

    if args.digits:
        step(1, "zero_shot_detect: skipped, the auto-labels come from the digits' real classifier")
        step(2, "compute_label_embeddings: skipped, the labels carry PCA embeddings of their crops")
        step(3, "score_labels")
        score(ds, args, consensus_fields=["knn_model"])
    else:
        step(1, "zero_shot_detect")
        detect(ds, args, detector)
        if ds.count(f"{args.label_field}.detections") == 0:
            print(f"No labels in '{args.label_field}': nothing to score (try a lower --confidence-threshold)")
            return 1
        step(2, "compute_label_embeddings")
        embed(ds, args, clip_model, clip)
        step(3, "score_labels")
        score(ds, args)
    step(4, "calibrate_triage")
    if not calibrate(ds, args):
        return EXIT_NOTHING_VERIFIED
    step(5, "assign_queues")
    assign(ds, args)
    step(6, f"review_labels (first {args.review} yellow labels by review_rank)")
    review(ds, args)
    step(7, "finalize_labels (accepted + green nobody rejected)")
    finalize(ds, args)
    if args.offline_tiny:
        print("\n(random weights: every label and queue above is meaningless)")
    print(f"\nOpen it in the App (the verification_queues panel beside the grid):\n  {open_app_command(ds.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
