"""The worker loop shared by the scale-out runs (labeling, embedding).

A scale-out worker validates its parameters (:func:`check_params`), names
itself (:func:`worker_name`) and its run record (:func:`free_run_key`),
then :func:`iter_chunks` claims chunks of the group's work queue
(:mod:`.workqueue`) until none is left, runs each one, renews its lease on
every progress event and marks it done. At the end a worker that sees the
queue drained writes the group's merged record (:func:`write_merged_record`).
What a chunk *is* (label images, embed crops) is the caller's
``run_chunk``; the protocol is here once.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import time
from typing import Any, Callable, Iterator

from . import workqueue
from .progress import Progress

logger = logging.getLogger(__name__)


def worker_name(worker: str | None = None) -> str:
    """``worker`` made a valid run-key suffix; default ``<host>_<pid>``."""
    return re.sub(r"\W", "_", worker or f"{socket.gethostname()}_{os.getpid()}")


def free_run_key(dataset, key: str) -> str:
    """``key``, or ``key_2``, ``key_3``... when taken (a restarted worker)."""
    out, i = key, 1
    while dataset.has_run(out):
        i += 1
        out = f"{key}_{i}"
    return out


def check_params(shard_group: Any, lease_s: Any, params: dict, what: str) -> None:
    """Refuses what a scale-out run cannot do; removes a false ``overwrite``.

    Args:
        shard_group: the group's name (a valid identifier)
        lease_s: the lease (positive seconds)
        params: the run's other parameters (``overwrite`` and ``run_key``
            are refused)
        what: what each chunk does to a sample or label, for the message
            (e.g. ``"label each sample"``)

    Raises:
        ValueError: naming the parameter
    """
    if not isinstance(shard_group, str) or not shard_group.isidentifier():
        raise ValueError(f"Parameter 'shard_group' must be a valid identifier; got {shard_group!r}")
    if params.pop("overwrite", False):
        raise ValueError(f"A 'shard_group' run cannot overwrite: re-claimed chunks rely on "
                         f"overwrite=False to {what} exactly once")
    if params.pop("run_key", None):
        raise ValueError("A 'shard_group' run names its records itself: <group>_<worker> and <group>")
    if not (isinstance(lease_s, (int, float)) and lease_s > 0):
        raise ValueError(f"Parameter 'lease_s' must be positive; got {lease_s!r}")


def iter_chunks(
    dataset,
    shard_group: str,
    worker: str,
    lease_s: float,
    run_chunk: Callable[[dict], Iterator[Progress]],
    on_chunk_done: Callable[[dict, dict, bool], None],
    samples_progress: bool = True,
) -> Iterator[Progress]:
    """Claims and runs chunks of ``shard_group`` until none is left.

    Each claimed chunk document (``sample_ids``, ``chunk``) goes to
    ``run_chunk``, a generator of :class:`Progress` that returns the chunk's
    summary. The lease is renewed on every event; a worker that loses it
    (it was too slow, another worker took the chunk) stops that chunk,
    keeps what it wrote and claims another. A finished chunk is marked
    done and handed to ``on_chunk_done(doc, summary, marked)`` (``marked``
    is False when another worker finished it first). While other workers
    hold the last chunks, this one waits for them or for their leases.

    Args:
        dataset: the dataset of the group
        shard_group: the group
        worker: this worker's name
        lease_s: the lease renewed on every event
        run_chunk: runs one chunk (must write only what is still missing)
        on_chunk_done: called after every finished chunk
        samples_progress: ``run_chunk``'s events count the chunk's samples
            (so progress moves within a chunk); else progress moves per chunk

    Yields:
        :class:`Progress` over the group's samples
    """
    total = workqueue.progress(dataset, shard_group)["samples"]
    done_samples = 0
    yield Progress(0, total, f"Worker {worker} joined group {shard_group}")
    while True:
        doc = workqueue.claim(dataset, shard_group, worker, lease_s)
        if doc is None:
            state = workqueue.progress(dataset, shard_group)
            if state["claimed"] == 0:
                return  # drained
            # others hold chunks: wait for them, or for their leases to end
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            wait = (state["next_expiry"] - now).total_seconds() if state["next_expiry"] else 1
            time.sleep(min(max(wait + 0.1, 0.2), 5.0))
            continue
        c = doc["chunk"]
        gen = run_chunk(doc)
        out, lost = None, False
        try:
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    out = stop.value
                    break
                if not workqueue.renew(dataset, shard_group, c, worker, lease_s):
                    lost = True
                    break
                if samples_progress:
                    yield Progress(done_samples + p.done, total,
                                   f"Worker {worker}: chunk {c}, {p.done}/{p.total}")
                else:
                    yield Progress(done_samples, total, f"Worker {worker}: chunk {c}")
        finally:
            gen.close()  # flushes what it computed
        if lost or out is None:
            logger.warning("Worker %s lost its lease on chunk %d of %s; another worker "
                           "finishes it", worker, c, shard_group)
            continue
        done_samples += len(doc["sample_ids"])
        on_chunk_done(doc, out, workqueue.done(dataset, shard_group, c, worker))
        yield Progress(done_samples, total, f"Worker {worker}: chunk {c} done")


def drained(dataset, shard_group: str) -> bool:
    """Whether every chunk of the group is done."""
    state = workqueue.progress(dataset, shard_group)
    return state["done"] == state["chunks"]


def write_merged_record(dataset, shard_group: str, record: dict, **results: Any) -> None:
    """Registers or replaces the run ``shard_group`` with ``record`` as its
    config and ``record`` + ``results`` as its results. Any worker may
    call it any number of times (two at once: the second updates)."""
    config = dataset.init_run(**record)
    if dataset.has_run(shard_group):
        dataset.update_run_config(shard_group, config)
    else:
        try:
            dataset.register_run(shard_group, config)
        except ValueError:  # another worker registered it first
            dataset.reload()
            dataset.update_run_config(shard_group, config)
    merged = dataset.init_run_results(shard_group, **record, **results)
    dataset.save_run_results(shard_group, merged, overwrite=True)


class Tally:
    """A worker's running counts over the chunks it finished."""

    def __init__(self, counts) -> None:
        self.totals = dict.fromkeys(counts, 0)
        self.failures: list[dict] = []
        self.chunks: list[int] = []

    def add(self, doc: dict, out: dict, marked: bool) -> None:
        """Adds a finished chunk's summary (``marked``: this worker marked it done)."""
        for k in self.totals:
            self.totals[k] += out.get(k, 0)
        self.failures.extend(out.get("failures", []))
        if marked:
            self.chunks.append(doc["chunk"])

    def fields(self) -> dict:
        """The counts, the chunks and the first 1,000 failures, for a summary."""
        return dict(self.totals, chunks=list(self.chunks), failures=self.failures[:1000])
