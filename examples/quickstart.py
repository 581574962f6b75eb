"""Quickstart: from a fresh clone to Stoplight's verification queues in the FiftyOne App.

    python examples/quickstart.py                      # the whole workflow, then the App
    python examples/quickstart.py --no-app             # ... then print the command that opens the App
    python examples/quickstart.py --checkpoint DIR     # your detector checkpoint labels the images (offline)

What it does, each step printed as it runs:

- network: checked once; without it nothing tries to download (no hub
  retries) and one line says so
- plugin: this clone is registered with FiftyOne (``link_plugin.py``: a link
  in FiftyOne's plugins directory), so the App loads Stoplight
- dataset: the digits dataset (``digits_dataset.py``): real handwritten
  digits from scikit-learn on 256x256 canvases, their true boxes in
  ``ground_truth``; images under FiftyOne's dataset directory
- label: a real zero-shot detector when one can be loaded (``--checkpoint``,
  or with internet the backend's published checkpoint), otherwise the
  digits' own weak real classifier, whose mistakes are real
- score_labels -> calibrate_triage on a random 30 % taken as verified ->
  assign_queues (the operators the App runs) -> audit_green: the questions
  of an audit that would certify a larger green, queued for a person
- the App: the dataset with the ``verification_queues`` panel open beside
  the grid (``open_app.py``; ``--no-app`` prints the command instead)
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stoplight_import import import_stoplight

DEFAULT_NAME = "stoplight-quickstart"
#: the host of the default checkpoints (OWLv2, CLIP)
HUB_HOST = "huggingface.co"
#: prompts for the digits, one per class
DIGIT_PROMPTS = {f"handwritten digit {d}": str(d) for d in range(10)}
#: ``dataset.info["made_by"]`` of the quickstart's datasets (only those are replaced)
MADE_BY = "stoplight examples/quickstart.py"


@dataclass
class Run:
    """What the steps share."""

    args: argparse.Namespace   # this script's options
    flow: argparse.Namespace   # walkthrough.py's options (its steps read them)
    online: bool
    dataset: object = None
    detector: object = None    # a loaded zero-shot detector, or None: the digits' classifier labels


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labeler", choices=["auto", "detector", "digits"], default="auto",
                   help="auto: a zero-shot detector when one can be loaded, else the digits' classifier")
    p.add_argument("--backend", default="owlv2", help="zero-shot detector backend (owlv2, yolo-world, ...)")
    p.add_argument("--checkpoint", help="detector checkpoint: a local folder/file, or a hub id (downloaded)")
    p.add_argument("--clip", help="local open_clip checkpoint file for label embeddings "
                                  "(default with internet: ViT-B-32 'openai', downloaded)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"dataset name (default {DEFAULT_NAME}; replaced if it exists)")
    p.add_argument("--device", help="e.g. cuda, cpu (default: CUDA when available)")
    p.add_argument("--offline", action="store_true", help="do not check the network: work offline")
    p.add_argument("--no-app", action="store_true", help="do not start the App; print the command that opens it")
    p.add_argument("--delete-after", action="store_true", help="delete the dataset and its images at the end (CI)")
    args = p.parse_args(argv)
    if args.labeler == "digits" and args.checkpoint:
        p.error("--checkpoint needs a detector: drop --labeler digits")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):
        p.error(f"--name: letters, digits, '.', '_' and '-' only; got {args.name!r}")
    if args.delete_after and not args.no_app:
        p.error("--delete-after needs --no-app (the App shows the dataset)")
    return args


# --------------------------------------------------------------- network


def check_network(host: str = HUB_HOST, port: int = 443, timeout: float = 3.0) -> tuple[bool, str]:
    """One TCP connection to ``host``; ``(reachable, why not)``.

    Runs in a thread so that a resolver that hangs cannot stall the script
    longer than ``timeout``.
    """
    result: dict[str, object] = {}

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if t.is_alive():
        return False, f"no answer within {timeout:g} s"
    return bool(result.get("ok")), str(result.get("error", ""))


def go_offline() -> None:
    """Tells Hugging Face, transformers and ultralytics not to try the
    network (read when they are imported: call before importing them)."""
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", YOLO_OFFLINE="1")


def network_step(args) -> bool:
    """Decides once whether downloads are possible; prints one line."""
    if args.offline or os.environ.get("HF_HUB_OFFLINE") == "1":
        why = "--offline" if args.offline else "HF_HUB_OFFLINE=1"
        go_offline()
        print(f"Network: offline ({why}); no downloads")
        return False
    online, why = check_network()
    if online:
        print(f"Network: {HUB_HOST} reachable; default checkpoints are downloaded on first use")
    else:
        go_offline()
        print(f"Network: {HUB_HOST} not reachable ({why}); working offline, no downloads")
    return online


# ------------------------------------------------------------------ steps


def register_plugin(run: Run) -> None:
    """Links this clone into FiftyOne's plugins directory (idempotent)."""
    import link_plugin

    reg = link_plugin.link()
    print("\n".join(f"  {line}" for line in reg.describe()))
    if reg.status == link_plugin.OTHER:
        if run is not None and run.args.no_app:
            # nothing is opened now: the workflow runs in this process from
            # this clone; only the printed App command would show that copy
            print("  Warning: the printed App command would show that other copy, not this clone (see above)")
            return
        raise SystemExit("The App would show that other copy, not this clone: stopped (see above)")
    import fiftyone.operators as foo

    if not foo.operator_exists(f"{reg.name}/assign_queues"):
        from fiftyone.operators.registry import OperatorRegistry

        raise SystemExit(f"FiftyOne does not load the plugin's operators: {OperatorRegistry().list_errors()}")


def build_dataset(run: Run) -> None:
    """The digits dataset, persistent, images under FiftyOne's dataset directory."""
    import fiftyone as fo
    from digits_dataset import build_digits_dataset

    name = run.args.name
    if fo.dataset_exists(name):
        old = fo.load_dataset(name)
        if old.info.get("made_by") != MADE_BY:
            raise SystemExit(f"A dataset named '{name}' exists and this script did not make it (or an older "
                             f"version did): left as it is. Choose another --name, or delete it "
                             f"(fiftyone datasets delete {name}) and run this again")
        print(f"  replacing the dataset '{name}' of an earlier quickstart")
        old.delete()
    image_dir = images_dir(name)
    ds, info = build_digits_dataset(seed=run.flow.seed, copies=run.flow.copies, out_dir=str(image_dir), name=name)
    ds.info["made_by"] = MADE_BY
    ds.persistent = True
    ds.save()
    run.dataset = ds
    print(f"  '{ds.name}': {len(ds)} images of real handwritten digits ({image_dir}), "
          f"{info['num_true_boxes']} true boxes in 'ground_truth'")


def images_dir(name: str) -> Path:
    """Where the quickstart's images live: in a folder of their own in
    FiftyOne's dataset directory (``name`` is checked by :func:`parse_args`)."""
    import fiftyone as fo

    return Path(fo.config.default_dataset_dir) / "__stoplight__" / name


def choose_labeler(run: Run) -> None:
    """Loads a zero-shot detector when one can be had; else keeps the digits' classifier."""
    args = run.args
    if args.labeler == "digits":
        print("  --labeler digits: the digits' own classifier labels them")
        return
    if not args.checkpoint and not run.online:
        if args.labeler == "detector":
            raise SystemExit("--labeler detector offline needs --checkpoint <local checkpoint>")
        print("  offline and no --checkpoint: no detector; the digits' own classifier labels them")
        return
    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.autolabel.models import load_detector

    checkpoint = args.checkpoint or get_backend(args.backend).default_checkpoint
    try:
        run.detector = load_detector(args.backend, args.checkpoint, device=args.device)
    except Exception as e:  # noqa: BLE001 - any load failure: say which and fall back (or stop)
        if args.checkpoint or args.labeler == "detector":
            raise SystemExit(f"Could not load the {args.backend} checkpoint {checkpoint!r}: {type(e).__name__}: {e}")
        print(f"  could not load {checkpoint!r} ({type(e).__name__}: {str(e)[:200]}); "
              "the digits' own classifier labels them")
        return
    print(f"  {args.backend} detector {checkpoint!r} on {run.detector.device}: it labels the images")


def label(run: Run) -> None:
    """A zero-shot detector labels the images (replacing the classifier's
    labels) when one can be loaded; else the digits' labels stay."""
    choose_labeler(run)
    ds, flow = run.dataset, run.flow
    if run.detector is None:
        print(f"  {ds.count(f'{flow.label_field}.detections')} auto-labels from the digits' classifier "
              "(every true box plus background and shifted boxes), with PCA embeddings of their crops")
        return
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    # the classifier's labels and its second opinion make way for the detector's
    ds.delete_sample_fields([flow.label_field, "knn_model"])
    summary = zero_shot_detect(ds, backend=run.args.backend, ontology=DIGIT_PROMPTS, label_field=flow.label_field,
                               confidence_threshold=flow.confidence_threshold, detector=run.detector)
    print(f"  run {summary['run_key']} ({summary['status']}): {summary['num_labels']} labels on "
          f"{summary['num_processed_samples']} images, {summary['num_failed_samples']} failed")
    if not summary["num_labels"]:
        raise SystemExit("The detector found nothing to label: nothing to triage")


def embed(run: Run) -> None:
    """Detector labels: CLIP embeddings of their crops, when a CLIP checkpoint can be had."""
    import walkthrough

    if run.detector is None:
        print("  skipped: the digits' labels carry PCA embeddings of their crops")
        return
    if not run.args.clip and not run.online:
        print("  skipped: offline and no --clip checkpoint (scores that need embeddings stay empty)")
        return
    walkthrough.embed(run.dataset, run.flow, run.flow.clip_model, run.args.clip or run.flow.clip)


def score(run: Run) -> None:
    import walkthrough

    # the digits come with a second real classifier's labels: a consensus signal
    walkthrough.score(run.dataset, run.flow, consensus_fields=None if run.detector else ["knn_model"])


def calibrate(run: Run) -> None:
    import walkthrough

    if not walkthrough.calibrate(run.dataset, run.flow):
        raise SystemExit("Nothing verified to calibrate on")


def assign(run: Run) -> None:
    import walkthrough

    walkthrough.assign(run.dataset, run.flow)


def audit(run: Run) -> None:
    from stoplight.plugins.triage.green_audit import audit_green

    # plans the audit of a larger green and queues its questions: they come
    # first in the panels; nothing is decided until a person answers
    result = audit_green(run.dataset, run.flow.label_field, max_checks=300, seed=0)
    plan = run.dataset.get_run_info("audit").config.plan
    if result["status"] == "needs_answers":
        print(f"  {len(result['pending'])} questions queued to certify up to {result['candidates']:,} labels "
              f"(about {plan.get('expected_gain', 0):,.0f} more green expected); answer them in the App: "
              "verification_queues -> Audit green, or the review_queue panel")
    else:
        print(f"  {result['message']}")


#: the workflow, in order: (heading, step)
STEPS: list[tuple[str, Callable[[Run], None]]] = [
    ("register the plugin with FiftyOne", register_plugin),
    ("dataset", build_dataset),
    ("label: a zero-shot detector, or the digits' classifier", label),
    ("compute_label_embeddings", embed),
    ("score_labels", score),
    ("calibrate_triage (a random 30 % of the images taken as verified)", calibrate),
    ("assign_queues", assign),
    ("audit_green: questions that would certify a larger green", audit),
]


# ------------------------------------------------------------------- main


def main(argv=None) -> int:
    """Runs the quickstart; returns the exit code."""
    args = parse_args(argv)
    online = network_step(args)  # before anything imports huggingface_hub
    import_stoplight()
    import open_app
    import walkthrough

    flow = walkthrough.parse_args(["--digits", "--name", args.name, "--review", "0"]
                                  + (["--device", args.device] if args.device else []))
    run = Run(args=args, flow=flow, online=online)
    for n, (title, do) in enumerate(STEPS, 1):
        walkthrough.step(n, title, total=len(STEPS))
        do(run)

    ds = run.dataset
    open_app.show_queues(ds, flow.label_field)
    command = walkthrough.open_app_command(ds.name)
    if args.delete_after:
        import shutil

        ds.delete()
        shutil.rmtree(images_dir(args.name), ignore_errors=True)
        print(f"\nDone; dataset '{args.name}' and its images deleted (--delete-after)")
        return 0
    if args.no_app:
        print(f"\nOpen it in the App (the verification_queues panel beside the grid):\n  {command}")
        return 0
    print(f"\nOpening the App (to open it again later: {command})")
    open_app.serve(ds.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
