"""Zero-shot labeling on a Ray cluster (``zero_shot_detect(executor="ray")``).

The driver (:func:`iter_label_on_ray`, called by
:func:`.pipeline.iter_zero_shot_detect` after its checks) streams the ids
and paths of the samples to label through
:class:`..common.ray_executor.RayRun`; each actor is a
:class:`LabelingWorker` that loads the detector once, with the backend
options the driver passes (already checked: an actor never reads a
request), and labels each batch with the local pipeline's own steps
(:func:`.batches.load_batch`, :func:`.batches.label_batch`) before
writing it with the same decision-keeping merge (:func:`.batches.write_labels`).

Exactly once: without ``overwrite``, an actor labels only the samples of
its batch that are still unlabeled when the batch starts, and writes a
sample only if it is still unlabeled when the write lands (one atomic
update), so a batch retried after its worker died (which may have written
part of it) never labels a sample twice, and what the dead worker wrote
stays. With ``overwrite``, a retried batch is labeled again: the labels a
person decided meanwhile are kept, and new labels repeating them dropped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Iterator, Sequence

from ..common import bulk, db_errors, fo_private, provenance
from ..common.progress import Progress
from ..common.ray_executor import RayExecutor, RayJob, RayRun, RayRunError, run_facts, worker_module
from .backends import get_backend
from .detections import CLASS_SCORES_ATTR
from .ontology import Ontology
from .batches import decided_boxes, label_batch, load_batch, write_labels
from ..common.run_tally import RunTally

logger = logging.getLogger(__name__)

#: this module, relative to the plugin's root (what an actor imports)
WORKER_MODULE = worker_module(__name__)

_TIMINGS = ("decode_s", "prepare_s", "predict_s", "postprocess_s", "write_s")
#: the summary's counts, in its order
_COUNTS = ("num_skipped_samples", "num_processed_samples", "num_failed_samples", "num_labels",
           "num_invalid_predictions", "num_kept_decisions")


class LabelingWorker:
    """One Ray actor's labeling state: the model, loaded once, and the dataset.

    Built on the actor from the driver's settings (plain values); called
    with each batch (``{"sample_id": [...], "filepath": [...]}``), returns
    one outcome row per sample: ``status`` (``labeled``, ``skipped``: it
    held labels when its batch started or was written meanwhile,
    ``failed``), ``error``, ``model_failure`` (1 when the model, not the
    image, failed), ``num_labels``, ``num_kept`` (decided labels kept on an
    overwrite), ``warning``, ``device``, and on the batch's first row its
    ``num_invalid`` predictions and timings.
    """

    def __init__(self, dataset: str, **settings: Any) -> None:
        import fiftyone as fo

        from .models import load_detector

        self.s = settings
        self.dataset = fo.load_dataset(dataset)
        self.onto = Ontology.from_params(ontology=settings["ontology"])
        self.detector = load_detector(
            settings["backend"], settings["checkpoint"], device=settings["device"],
            fp16=settings["fp16"], options=settings["backend_options"], cache=False,
        )
        self.detector.set_prompts(list(self.onto.prompts))

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        s, field = self.s, self.s["label_field"]
        ids, paths = batch["sample_id"], batch["filepath"]
        rows = {sid: _row("skipped") for sid in ids}
        view = self.dataset.select(ids)
        todo = ids
        if not s["overwrite"]:
            # a retried batch: what its dead worker wrote stays as it is
            still = set(view.exists(field, False).values("id"))
            todo = [sid for sid in ids if sid in still]
        path_of = dict(zip(ids, paths))
        timings = dict.fromkeys(_TIMINGS, 0.0)
        invalid = 0
        if todo:
            decided = decided_boxes(self.dataset.select(todo), field) if s["overwrite"] else {}
            loaded = load_batch(self.detector, todo, [path_of[sid] for sid in todo])
            timings.update(decode_s=loaded.decode_s, prepare_s=loaded.prepare_s)
            for f in loaded.failures:
                rows[f["sample_id"]] = _row("failed", error=f["error"])
            if loaded.ids:
                labels = label_batch(
                    self.detector, loaded, self.onto, s["confidence_threshold"],
                    s["class_agnostic_nms"], s["nms_iou"], decided=decided,
                )
                timings.update(predict_s=labels.predict_s, postprocess_s=labels.postprocess_s)
                for f in labels.failures:
                    rows[f["sample_id"]] = _row("failed", error=f["error"], model_failure=1)
                for w in labels.warnings:
                    rows[w["sample_id"]]["warning"] = w["warning"]
                t0 = time.perf_counter()
                written = self.write(labels.docs, rows)
                timings["write_s"] = time.perf_counter() - t0
                invalid = labels.num_invalid
                for sid, doc in labels.docs.items():
                    if sid in written:
                        rows[sid].update(status="labeled", num_labels=len(doc["detections"]),
                                         num_kept=len(decided.get(sid, ())))
        for sid, row in rows.items():
            if row["status"] == "failed":
                logger.warning("Sample %s (%s): %s", sid, path_of[sid], row["error"])
        out = {k: [rows[sid][k] for sid in ids] for k in _row("x")}
        out["sample_id"] = list(ids)
        out["device"] = [str(self.detector.device)] * len(ids)
        # batch-level figures on the batch's first row
        for k, v in dict(timings, num_invalid=invalid).items():
            out[k] = [v] + [type(v)(0)] * (len(ids) - 1)
        return out

    def write(self, docs: dict[str, dict], rows: dict[str, dict]) -> set[str]:
        """Writes ``docs`` (``{sample id: fo.Detections document}``); returns
        the ids written (without ``overwrite``, only samples still unlabeled
        when the write lands) and marks ``rows`` (the batch's outcome rows)
        of samples whose labels could not be stored as failed. A document the
        database refuses (over 16 MB) fails its own sample only, as in a
        local run; a lost database ends the run."""
        if not docs:
            return set()
        field, only_unlabeled = self.s["label_field"], not self.s["overwrite"]
        try:
            n = write_labels(self.dataset, field, docs, only_unlabeled=only_unlabeled)
        except Exception as e:  # noqa: BLE001 - classified below
            if db_errors.is_connection_error(e):  # the run ends with this message
                raise db_errors.unavailable(
                    e, f"writing the labels of {len(docs)} samples to field '{field}' of dataset "
                       f"'{self.dataset.name}' on a Ray actor",
                    "Labels written before are kept; once the database is back, re-run with "
                    "overwrite=False to label the remaining samples",
                ) from e
            if len(docs) == 1:
                (sid,) = docs
                error = f"The database refused the labels of this sample: {type(e).__name__}: {e}"
                rows[sid].update(status="failed", error=error)
                return set()
            # one refused document must not cost its batch-mates their labels
            # (the unordered bulk write may have stored some: the one-by-one
            # writes below then find them theirs, see the end of this method)
            written = set()
            for sid, doc in docs.items():
                written |= self.write({sid: doc}, rows)
            return written
        if n == len(docs):
            return set(docs)
        # another attempt labeled some of them first (its worker was presumed
        # dead): ours are the samples holding the labels we wrote
        stored = dict(zip(*self.dataset.select(list(docs)).values(["id", f"{field}.detections.id"])))
        ours = set()
        for sid, doc in docs.items():
            new = {str(d["_id"]) for d in doc["detections"]}
            if new and new <= set(stored.get(sid) or ()):
                ours.add(sid)
        return ours


def _row(status: str, error: str = "", model_failure: int = 0) -> dict:
    return dict(status=status, error=error, model_failure=model_failure, num_labels=0,
                num_kept=0, warning="")


def iter_label_on_ray(
    sample_collection,
    executor: RayExecutor,
    ids: Sequence[str],
    paths: Sequence[str],
    settings: dict,
    run_key: str | None,
    num_target_samples: int,
    num_skipped_samples: int,
    record_run: bool = True,
) -> Iterator[Progress]:
    """Labels ``ids`` on the Ray cluster; yields progress, returns the summary.

    Called by :func:`.pipeline.iter_zero_shot_detect` once it has checked
    the parameters and picked the samples to label; ``settings`` are that
    function's checked arguments (backend, checkpoint, device, fp16,
    backend_options, ontology as a dict, label_field, thresholds,
    batch_size, overwrite). The summary has the local run's keys plus the
    Ray facts (:func:`..common.ray_executor.run_facts`).
    """
    import fiftyone as fo

    dataset = fo_private.view_dataset(sample_collection)
    field = settings["label_field"]
    backend_cls = get_backend(settings["backend"])
    onto = Ontology.from_params(ontology=settings["ontology"])
    run_key = run_key or provenance.new_run_key(field)
    job = RayJob(
        module=WORKER_MODULE, factory="LabelingWorker", kwargs=dict(settings, dataset=dataset.name),
        rows={"sample_id": list(ids), "filepath": list(paths)}, batch_size=settings["batch_size"],
        device=settings["device"],
    )
    run = RayRun(executor, job)
    record = None if not record_run else provenance.start_run(
        dataset, run_key, method="zero_shot_detect", backend=backend_cls.name,
        checkpoint=settings["checkpoint"] or backend_cls.default_checkpoint,
        ontology=settings["ontology"], classes=list(onto.classes), label_field=field,
        confidence_threshold=settings["confidence_threshold"],
        class_agnostic_nms=settings["class_agnostic_nms"], nms_iou=settings["nms_iou"],
        batch_size=settings["batch_size"], device=settings["device"], fp16=settings["fp16"],
        overwrite=settings["overwrite"], num_target_samples=num_target_samples,
        num_skipped_samples=num_skipped_samples, executor="ray", ray_address=executor.address,
    )
    bulk.declare_field(dataset, field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField})
    tally = _Tally(num_skipped_samples, dict(zip(ids, paths)))
    total = len(ids)

    def summary(status: str) -> dict:
        return dict(
            tally.summary(), run_key=run_key, label_field=field, backend=backend_cls.name,
            checkpoint=settings["checkpoint"] or backend_cls.default_checkpoint, status=status,
            num_target_samples=num_target_samples, **run_facts(run),
        )

    yield Progress(0, total, f"Labeling {total} samples with {backend_cls.name} on Ray")
    with provenance.recorded_run(dataset, run_key, record, summary) as outcome, \
            contextlib.closing(run.results()) as results:  # stopping the run ends its Ray job
        for out in results:
            tally.add(out)
            if tally.counts["num_processed_samples"] == 0 and out["status"] and all(
                m == 1 for m in out.get("model_failure", [0])
            ) and all(st == "failed" for st in out["status"]):
                # as in the local run: every image of the first batch failed
                # in the model on its own, so the model (not the data) is broken
                raise RayRunError(f"The model failed on every image of its first batch: "
                                  f"{out['error'][0]}")
            yield Progress(tally.done, total, f"Labeled {tally.done}/{total} samples on "
                                              f"{len(run.workers)} Ray workers")
    return outcome.summary


class _Tally(RunTally):
    """The driver's running counts over the outcome rows."""

    def __init__(self, skipped: int, path_of: dict[str, str]) -> None:
        super().__init__(_COUNTS, _TIMINGS, path_of)
        self.counts["num_skipped_samples"] = skipped
        self.done = 0
        self.device = None

    def add(self, out: dict[str, list]) -> None:
        n = len(out["sample_id"])
        self.done += n
        counts = self.counts
        for i, (sid, status) in enumerate(zip(out["sample_id"], out["status"])):
            if status == "labeled":
                counts["num_processed_samples"] += 1
                counts["num_labels"] += out["num_labels"][i]
                counts["num_kept_decisions"] += out["num_kept"][i]
            elif status == "skipped":
                counts["num_skipped_samples"] += 1
            else:  # failed, lost
                counts["num_failed_samples"] += 1
                self.fail(sid, out["error"][i])
            if out.get("warning", [""] * n)[i]:
                self.warn(sid, out["warning"][i])
        counts["num_invalid_predictions"] += sum(out.get("num_invalid", [0]))
        self.add_timings(out)
        self.device = self.device or (out.get("device") or [None])[0]

    def summary(self) -> dict:
        # timings are summed over the workers: busy time, not the run's wall time
        return super().summary(actor_device=self.device)
