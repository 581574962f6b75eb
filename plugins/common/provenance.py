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

from . import db_errors, owner

logger = logging.getLogger(__name__)

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
    return record


def mark_dead_runs(dataset) -> list[str]:
    """Marks ``killed`` the runs still ``running`` whose process is gone.

    A run ended by SIGKILL, the out-of-memory killer or a crash never
    records its end; without this its record would say ``running``
    forever. Only runs started on this host can be checked (their process
    id and start time are in the record); the others are left as they are.
    Called by :func:`start_run`, so the next Stoplight run on a dataset
    tidies its registry.

    Returns:
        the keys of the runs marked
    """
    marked = []
    dataset.reload()  # the dead run registered itself from another process
    for key in dataset.list_runs():
        try:
            config = dataset.get_run_info(key).config
        except Exception:  # noqa: BLE001 - not one of ours, or unreadable
            continue
        rec = {k: getattr(config, k, None) for k in ("stoplight_method", "status", "host", "pid")}
        if (rec["stoplight_method"] is None or rec["status"] != "running"
                or rec["host"] != owner.host_id() or not isinstance(rec["pid"], int)
                or rec["pid"] == os.getpid()):
            continue
        if owner.process_alive(rec["pid"], getattr(config, "pid_started", None)):
            continue
        record = {k: v for k, v in config.serialize().items()
                  if k not in ("cls", "type", "method") and not k.startswith("_")}
        record.update(status="killed", noticed_dead_at=_now())
        dataset.update_run_config(key, dataset.init_run(**record))
        logger.warning("Run %s on dataset '%s' was killed before it could record its end",
                       key, dataset.name)
        marked.append(key)
    return marked


def finish_run(dataset, run_key: str, record: dict, summary: dict) -> None:
    """Stores the end time, status and counts of a run, and its summary."""
    counts = {k: v for k, v in summary.items() if k.startswith("num_")}
    record = dict(record, status=summary.get("status", "completed"), ended_at=_now(), **counts)
    dataset.update_run_config(run_key, dataset.init_run(**record))
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
            # for more server-selection timeouts and bury the error
            flush = None
            record_end = False
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
        run.summary = make_summary(run.status)
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
