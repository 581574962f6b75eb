"""Label embeddings on a Ray cluster (``compute_label_embeddings(executor="ray")``).

The driver (:func:`iter_embed_on_ray`, called by
:func:`.embeddings.iter_compute_label_embeddings` after its checks) streams
each sample's id, path, label ids and boxes through
:class:`..common.ray_executor.RayRun`; each actor is an
:class:`EmbeddingWorker` that loads the CLIP model once, embeds the class
prompts once, and embeds each batch's crops with the local pipeline's own
steps (:func:`.crops.load_crops`, :func:`.clip.encode_crops`)
before writing them (:func:`.embeddings.write_embeddings`).

Exactly once: without ``overwrite``, an actor embeds only the labels of its
batch that still have no embedding when the batch starts (a batch retried
after its worker died keeps what that worker wrote), and labels deleted
meanwhile are skipped. A label embedded twice by a retried batch (with
``overwrite``, or when two attempts overlap) gets the same vector again:
the embedding of a crop does not depend on the attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Iterator, Sequence

from ..common import bulk, fo_private, provenance
from ..common.progress import Progress
from ..common.run_tally import RunTally
from ..common.ray_executor import RayExecutor, RayJob, RayRun, RayRunError, run_facts, worker_module
from .clip import embedding_dim, encode_crops, load_clip
from .crops import load_crops
from .embeddings import write_embeddings

logger = logging.getLogger(__name__)

#: this module, relative to the plugin's root (what an actor imports)
WORKER_MODULE = worker_module(__name__)

_TIMINGS = ("decode_s", "prepare_s", "embed_s", "write_s")
#: the summary's counts, in its order
_COUNTS = ("num_skipped_labels", "num_embedded_labels", "num_failed_labels", "num_failed_samples")


class EmbeddingWorker:
    """One Ray actor's embedding state: the CLIP model, loaded once.

    Called with each batch (``sample_id``, ``filepath``, and JSON lists of
    ``label_ids`` and ``boxes``), returns one outcome row per sample:
    ``status`` (``embedded``; ``skipped``: nothing left to embed; ``failed``:
    the image could not be read), ``error``, ``num_embedded``,
    ``num_failed_labels``, ``num_skipped_labels``, ``failures`` (JSON list of
    the labels the model failed on), and on the first row of the actor's
    first batch the text embeddings of the prompts (JSON), then the batch's
    timings on its first row.
    """

    def __init__(self, dataset: str, prompts: Sequence[str], **settings) -> None:
        import fiftyone as fo

        self.s = settings
        self.dataset = fo.load_dataset(dataset)
        self.clip = load_clip(settings["model_name"], settings["pretrained"], device=settings["device"])
        self.text = json.dumps(self.clip.encode_texts(list(prompts)).tolist()) if prompts else ""
        self.embedded_any = False

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        s = self.s
        ids = batch["sample_id"]
        label_ids = {sid: json.loads(v) for sid, v in zip(ids, batch["label_ids"])}
        boxes = {sid: json.loads(v) for sid, v in zip(ids, batch["boxes"])}
        todo = self._still_to_embed(ids, label_ids) if not s["overwrite"] else label_ids
        rows = {sid: dict(status="skipped", error="", num_embedded=0, num_failed_labels=0,
                          num_skipped_labels=len(label_ids[sid]) - len(todo.get(sid, ())),
                          failures="[]") for sid in ids}
        timings = dict.fromkeys(_TIMINGS, 0.0)
        pixels, queued = [], []
        for sid, path in zip(ids, batch["filepath"]):
            lids = todo.get(sid) or []
            if not lids:
                continue
            crops = load_crops(self.clip, sid, path, lids, [boxes[sid][label_ids[sid].index(lid)]
                                                              for lid in lids],
                               s["context"], s["letterbox_crops"])
            timings["decode_s"] += crops.decode_s
            timings["prepare_s"] += crops.prepare_s
            if crops.error is not None:
                logger.warning("Sample %s (%s): %s", sid, path, crops.error)
                rows[sid].update(status="failed", error=crops.error, num_failed_labels=len(lids))
                continue
            pixels.append(crops.pixels)
            queued.extend((sid, lid) for lid in lids)
        values = self._embed(pixels, queued, rows, timings)
        t0 = time.perf_counter()
        if values:
            write_embeddings(self.dataset, s["label_field"], s["embeddings_attr"], values)
        timings["write_s"] = time.perf_counter() - t0
        for v in values:
            row = rows[v["sample_id"]]
            row["num_embedded"] += 1
            if row["status"] == "skipped":
                row["status"] = "embedded"
        out = {k: [rows[sid][k] for sid in ids] for k in rows[ids[0]]}
        out["sample_id"] = list(ids)
        out["text_embeddings"] = [self.text] + [""] * (len(ids) - 1)
        self.text = ""  # once per actor
        for k, v in timings.items():
            out[k] = [v] + [0.0] * (len(ids) - 1)
        return out

    def _still_to_embed(self, ids: list[str], label_ids: dict) -> dict[str, list[str]]:
        """The labels of ``ids`` that exist and hold no embedding now."""
        root = f"{self.s['label_field']}.detections"
        attr = self.s["embeddings_attr"]
        view = self.dataset.select(ids)  # the attribute was declared before the actors started
        fields = [f"{root}.id"]
        has_attr = view.has_field(f"{root}.{attr}")
        if has_attr:
            fields.append(f"{root}.{attr}")
        sids, *cols = view.values(["id", *fields])
        stored_ids = cols[0]
        stored_embs = cols[1] if has_attr else [None] * len(sids)
        out = {}
        for sid, lids, embs in zip(sids, stored_ids, stored_embs):
            missing = {lid for i, lid in enumerate(lids or []) if embs is None or embs[i] is None}
            out[sid] = [lid for lid in label_ids[sid] if lid in missing]
        return out

    def _embed(self, pixels: list, queued: list, rows: dict, timings: dict) -> list[dict]:
        import torch

        if not queued:
            return []
        values = []
        every = torch.cat(pixels) if len(pixels) > 1 else pixels[0]
        n = self.s["batch_size"]
        t0 = time.perf_counter()
        for i in range(0, len(queued), n):
            part = queued[i : i + n]

            def fail(sid, lid, error):
                row = rows[sid]
                row["num_failed_labels"] += 1
                failures = json.loads(row["failures"])
                failures.append(dict(label_id=lid, error=f"embedding failed: {type(error).__name__}: {error}"))
                row["failures"] = json.dumps(failures)

            feats = encode_crops(self.clip, every[i : i + n], part, fail, systematic_if_all=False)
            for (sid, lid), vec in zip(part, feats):
                if vec is not None:
                    values.append({"sample_id": sid, "label_id": lid, "value": vec.tolist()})
        timings["embed_s"] = time.perf_counter() - t0
        return values


def iter_embed_on_ray(
    sample_collection,
    executor: RayExecutor,
    jobs: Sequence[tuple],
    settings: dict,
    run_key: str | None,
    num_target_labels: int,
    num_skipped_labels: int,
    record_run: bool = True,
) -> Iterator[Progress]:
    """Embeds the labels of ``jobs`` on the Ray cluster; yields progress (in
    labels), returns the summary.

    Called by :func:`.embeddings.iter_compute_label_embeddings` once it has
    checked the parameters and listed ``jobs`` (``(sample_id, filepath,
    label_ids, boxes)`` of the labels to embed); ``settings`` are its checked
    arguments. The summary has the local run's keys plus the Ray facts
    (:func:`..common.ray_executor.run_facts`).
    """
    import fiftyone as fo
    import numpy as np

    dataset = fo_private.view_dataset(sample_collection)
    field, attr = settings["label_field"], settings["embeddings_attr"]
    prompts = list(settings["prompts"])
    pretrained = _resolved(settings["pretrained"])
    dim = embedding_dim(settings["model_name"], pretrained)
    run_key = run_key or provenance.new_run_key(f"{field}_{attr}")
    job = RayJob(
        module=WORKER_MODULE, factory="EmbeddingWorker",
        kwargs=dict(settings, pretrained=pretrained, dataset=dataset.name),
        rows=dict(sample_id=[j[0] for j in jobs], filepath=[j[1] for j in jobs],
                  label_ids=[json.dumps(list(j[2])) for j in jobs],
                  boxes=[json.dumps([list(b) for b in j[3]]) for j in jobs]),
        # samples per call: about batch_size crops each
        batch_size=max(1, round(settings["batch_size"] * len(jobs) / sum(len(j[2]) for j in jobs))),
        device=settings["device"],
    )
    run = RayRun(executor, job)
    record = None if not record_run else provenance.start_run(
        dataset, run_key, method="compute_label_embeddings", model_name=settings["model_name"],
        pretrained=pretrained, embedding_dim=dim, label_field=field, embeddings_attr=attr,
        context=settings["context"], letterbox_crops=settings["letterbox_crops"],
        batch_size=settings["batch_size"], device=settings["device"],
        overwrite=settings["overwrite"], prompts=prompts, num_target_labels=num_target_labels,
        num_skipped_labels=num_skipped_labels, executor="ray", ray_address=executor.address,
    )
    bulk.declare_field(dataset, field, fo.Detections, {attr: fo.FloatField})
    tally = _Tally(num_skipped_labels, {j[0]: j[1] for j in jobs}, {j[0]: len(j[2]) for j in jobs})
    total = sum(len(j[2]) for j in jobs)

    def summary(status: str) -> dict:
        return dict(
            tally.summary(), run_key=run_key, label_field=field, embeddings_attr=attr,
            model_name=settings["model_name"], pretrained=pretrained, embedding_dim=dim,
            status=status, num_target_labels=num_target_labels, prompts=prompts,
            text_embeddings=tally.text, **run_facts(run),
        )

    yield Progress(0, total, f"Embedding {total} labels with {settings['model_name']} on Ray")
    with provenance.recorded_run(dataset, run_key, record, summary) as outcome, \
            contextlib.closing(run.results()) as results:  # stopping the run ends its Ray job
        for out in results:
            tally.add(out)
            yield Progress(tally.done, total, f"Embedded {tally.done}/{total} labels on "
                                              f"{len(run.workers)} Ray workers")
        if prompts and tally.text is None:
            raise RayRunError("No Ray worker returned the text embeddings of the prompts")
    result = outcome.summary
    result["text_embeddings"] = None if tally.text is None else np.asarray(tally.text, np.float32)
    return result


def _resolved(pretrained: str | None) -> str | None:
    """A local checkpoint's absolute path (the actors may run elsewhere in
    the file system tree), else the tag as given."""
    import os

    if pretrained and os.path.isfile(pretrained):
        return os.path.abspath(pretrained)
    return pretrained


class _Tally(RunTally):
    """The driver's running counts over the outcome rows (in labels)."""

    def __init__(self, skipped: int, path_of: dict, labels_of: dict) -> None:
        super().__init__(_COUNTS, _TIMINGS, path_of)
        self.counts["num_skipped_labels"] = skipped
        self.labels_of = labels_of
        self.done = 0
        self.text = None

    def add(self, out: dict[str, list]) -> None:
        counts = self.counts
        for i, sid in enumerate(out["sample_id"]):
            status = out["status"][i]
            if status == "lost":
                failed = self.labels_of[sid]
                counts["num_failed_samples"] += 1
                self.fail(sid, out["error"][i])
            else:
                counts["num_embedded_labels"] += out["num_embedded"][i]
                counts["num_skipped_labels"] += out["num_skipped_labels"][i]
                failed = out["num_failed_labels"][i]
                if status == "failed":
                    counts["num_failed_samples"] += 1
                    self.fail(sid, out["error"][i])
                for f in json.loads(out["failures"][i]):
                    self.fail(sid, **f)
            counts["num_failed_labels"] += failed
            self.done += self.labels_of[sid]
        self.add_timings(out)
        if self.text is None:
            text = next((t for t in out.get("text_embeddings", []) if t), None)
            if text:
                self.text = json.loads(text)

    def summary(self) -> dict:
        # timings are summed over the workers: busy time, not the run's wall time
        return super().summary(warnings=False)
