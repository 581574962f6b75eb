"""Run records in FiftyOne's runs registry.

Every Stoplight run registers a custom run on the dataset (see
``dataset.list_runs()``): its config holds the parameters, package
versions and start time, and is updated with the end time and counts when
the run ends, whether it completed or failed. The run's results hold the
full summary, including per-sample failures.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import logging
import os
import re
import threading
from typing import Any, Callable, Iterator

from . import db_clock, db_errors, heartbeats, owner

logger = logging.getLogger(__name__)

#: at most this many failures (or warnings) a run keeps verbatim in its record
MAX_RECORDED_FAILURES = 1000

PACKAGES = ("fiftyone", "torch", "torchvision", "transformers", "ultralytics", "open_clip_torch", "numpy")


#: held while FiftyOne reads stored results (runs, annotation runs). FiftyOne
#: reads them through one GridFS handle per run document, shared by every
#: thread holding the dataset (the App server answers panel events in
#: threads): two reads at once interleave its seek and read, and one gets
#: an empty string ("'str' object has no attribute 'decode'")
RESULTS_LOCK = threading.Lock()


def load_run_results(dataset, run_key: str, cache: bool = True):
    """``dataset.load_run_results(run_key, cache=cache)``, one thread at a
    time (see :data:`RESULTS_LOCK`)."""
    with RESULTS_LOCK:
        return dataset.load_run_results(run_key, cache=cache)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run's output depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_run_key(prefix: str) -> str:
    """A fresh, valid run key such as ``autolabels_20261127_213501_123``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S_%f")[:-3]
    base = re.sub(r"\W", "_", prefix)
    if not base or base[0].isdigit():
        base = "run_" + base
    return f"{base}_{stamp}"


def start_run(dataset, run_key: str, method: str, **params: Any) -> dict:
    """Registers a run in state ``running``; returns its config dict.

    Raises:
        ValueError: if ``run_key`` is not a valid identifier or is taken
    """
    if not run_key.isidentifier():
        raise ValueError(f"Parameter 'run_key' must be a valid identifier; got {run_key!r}")
    if dataset.has_run(run_key):
        raise ValueError(
            f"Run key {run_key!r} already exists on dataset '{dataset.name}'; "
            "choose another or delete it with dataset.delete_run()"
        )
    mark_dead_runs(dataset)
    record = dict(
        params,
        stoplight_method=method,
        status="running",
        started_at=_now(),
        ended_at=None,
        versions=package_versions(),
        host=owner.host_id(),
        pid=os.getpid(),
        pid_started=owner.process_started(),
    )
    dataset.register_run(run_key, dataset.init_run(**record))
    # stamped with the database's clock while the run runs: a run that
    # stops without recording its end is noticed from another host too
    heartbeats.start(dataset, run_key, host=record["host"], pid=record["pid"])
    return record


_UNSET = object()


def stoplight_runs(dataset, method: str | tuple[str, ...] | None = None, **match: Any) -> list[tuple[str, Any]]:
    """Stoplight's runs on ``dataset``, oldest first, as ``(key, config)``.

    Runs of other tools, and records FiftyOne cannot read, are skipped.

    Args:
        dataset: a FiftyOne dataset
        method: only runs of this ``stoplight_method`` (or of one of these);
            None for every Stoplight run
        **match: only runs whose config has these attribute values (e.g.
            ``label_field="autolabels", status="completed"``); a config
            without the attribute does not match

    Returns:
        ``(run_key, config)`` pairs sorted by ``started_at`` (then key)
    """
    methods = (method,) if isinstance(method, str) else method
    found = []
    for key in dataset.list_runs():
        try:
            config = dataset.get_run_info(key).config
        except Exception:  # noqa: BLE001 - a run of another tool, or unreadable
            continue
        m = getattr(config, "stoplight_method", None)
        if m is None or (methods is not None and m not in methods):
            continue
        if all(getattr(config, name, _UNSET) == value for name, value in match.items()):
            found.append((getattr(config, "started_at", "") or "", key, config))
    return [(key, config) for _, key, config in sorted(found, key=lambda t: (t[0], t[1]))]


def newest_run_key(runs: list[tuple[str, Any]], preferred: tuple[str | None, ...] = ()) -> str | None:
    """The key among ``runs`` (from :func:`stoplight_runs`) named first in
    ``preferred``, else the newest; None when ``runs`` is empty."""
    keys = [key for key, _ in runs]
    for wanted in preferred:
        if wanted is not None and wanted in keys:
            return wanted
    return keys[-1] if keys else None


def mark_dead_runs(dataset) -> list[str]:
    """Marks the runs still ``running`` that stopped without recording their end.

    A run ended by SIGKILL, the out-of-memory killer or a crash never
    records its end, nor does one that ended while the database was gone
    (its process may live on: an App server runs many runs). Without this
    their records would say ``running`` forever. A run is marked:

    - ``killed`` when it ran in this process-id space (:func:`owner.host_id`)
      and its process is gone;
    - ``stale`` when its heartbeat (:mod:`.heartbeats`) is older than
      ``heartbeats.stale_after()`` by the database's clock, whichever host
      ran it; records from before heartbeats existed count from their
      ``started_at`` and are given a day.

    A live run in another container (even one with the same host name) keeps
    beating and is left alone. Called by :func:`start_run`, so the next
    Stoplight run on a dataset tidies its registry.

    Returns:
        the keys of the runs marked
    """
    marked = []
    dataset.reload()  # the dead run registered itself from another process
    running = dict(stoplight_runs(dataset, status="running"))
    if not running:
        return marked
    beats = heartbeats.last_beats(dataset, running)
    now = db_clock.db_now()
    for key, config in running.items():
        status = _dead_status(config, beats.get(key), now)
        if status is None:
            continue
        record = {k: v for k, v in config.serialize().items()
                  if k not in ("cls", "type", "method") and not k.startswith("_")}
        record.update(status=status, noticed_dead_at=_now())
        dataset.update_run_config(key, dataset.init_run(**record))
        heartbeats.stop(dataset, key)
        logger.warning("Run %s on dataset '%s' stopped without recording its end; marked %s",
                       key, dataset.name, status)
        marked.append(key)
    return marked


#: records from before heartbeats: how long they may say "running"
LEGACY_STALE_S = 24 * 3600


def _dead_status(config, last_beat, now) -> str | None:
    """``killed``, ``stale`` or None (alive, or cannot tell) for a record
    that says ``running``."""
    pid = getattr(config, "pid", None)
    if getattr(config, "host", None) == owner.host_id() and isinstance(pid, int) and pid != os.getpid():
        if not owner.process_alive(pid, getattr(config, "pid_started", None)):
            return "killed"
    if last_beat is not None:
        age = (now - last_beat).total_seconds()
        return "stale" if age > heartbeats.stale_after() else None
    started = getattr(config, "started_at", None)
    try:
        started = datetime.datetime.fromisoformat(started).astimezone(datetime.timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError):
        return None
    # a record of this version always has a heartbeat while it runs; one
    # without (older, or the beat's first write failed) gets a day
    return "stale" if (now - started).total_seconds() > LEGACY_STALE_S else None


def finish_run(dataset, run_key: str, record: dict, summary: dict) -> None:
    """Stores the end time, status and counts of a run, and its summary."""
    counts = {k: v for k, v in summary.items() if k.startswith("num_")}
    status = summary.get("status", "completed")
    record = dict(record, status=status, ended_at=_now(), **counts)
    if status != "running":  # (scale-out workers record progress as "running")
        heartbeats.stop(dataset, run_key, delete=False)
    dataset.update_run_config(run_key, dataset.init_run(**record))
    if status != "running":
        heartbeats.stop(dataset, run_key)
    results = dataset.init_run_results(run_key, **{k: v for k, v in summary.items() if k != "run_key"})
    dataset.save_run_results(run_key, results, overwrite=True)


class RunOutcome:
    """What :func:`recorded_run` knows about a run: its status and summary."""

    def __init__(self) -> None:
        self.status = "failed"
        self.summary: dict = {}


@contextlib.contextmanager
def recorded_run(
    dataset,
    run_key: str,
    record: dict,
    make_summary: Callable[[str], dict],
    flush: Callable[[], None] | None = None,
) -> Iterator[RunOutcome]:
    """Records the end of a run started with :func:`start_run`, however it ends.

    The body's normal end makes the run ``completed``; ``GeneratorExit`` or
    ``KeyboardInterrupt`` (a generator closed early, an operator cancelled,
    Ctrl-C) ``interrupted``; any other exception ``failed``. Then, always:
    ``flush()`` keeps what was computed, ``make_summary(status)`` builds the
    summary, and :func:`finish_run` stores it. The body's exception is
    re-raised unchanged; a failure of the flush or of the record is raised
    only when the body succeeded (otherwise logged, so it never hides the
    error that ended the run). Use inside generator operators too::

        record = provenance.start_run(dataset, key, method="...", **params)
        with provenance.recorded_run(dataset, key, record, summary, flush) as run:
            ...  # may yield progress
        return run.summary

    Args:
        dataset: the dataset the run is registered on
        run_key: its key
        record: the config dict :func:`start_run` returned, or ``None``
            when the caller keeps the record itself (nothing is stored)
        make_summary: builds the summary dict from the final status
        flush: writes what is still buffered (called once, first)

    Yields:
        a :class:`RunOutcome`; ``summary`` is set once the block has ended
    """
    run = RunOutcome()
    error: BaseException | None = None
    try:
        yield run
        run.status = "completed"
    except (GeneratorExit, KeyboardInterrupt) as e:
        run.status, error = "interrupted", e
        raise
    except BaseException as e:
        error = e
        raise
    finally:
        late: Exception | None = None
        if error is not None and db_errors.is_connection_error(error):
            # the database is gone: flushing or recording would only wait
            # for more server-selection timeouts and bury the error. The
            # heartbeat stops, so the record is marked stale later
            flush = None
            record_end = False
            if record is not None:
                heartbeats.stop(dataset, run_key, delete=False)
        else:
            record_end = True
        if flush is not None:
            try:
                flush()
            except Exception as e:  # noqa: BLE001
                if error is None:
                    run.status, late = "failed", e
                else:
                    logger.warning("Run %s: could not write buffered results after %r: %s",
                                   run_key, error, e)
        try:
            run.summary = make_summary(run.status)
        except BaseException:
            if record is not None:
                # no end can be recorded: stop vouching for the run, so
                # that mark_dead_runs marks it stale
                heartbeats.stop(dataset, run_key, delete=False)
            raise
        try:
            if record_end and record is not None:
                finish_run(dataset, run_key, record, run.summary)
        except Exception as e:  # noqa: BLE001
            if error is None and late is None:
                late = e
            else:
                logger.warning("Run %s: could not record its end: %s", run_key, e)
        if late is not None:
            raise late
