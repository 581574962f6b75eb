"""Running a labeling-style batch job on a Ray cluster: the run's side.

A run that chooses the Ray executor hands its rows (sample ids and what its
workers need) to :class:`RayRun`, which drives them through Ray Data on the
cluster (:mod:`.ray_driver`) and yields each batch's outcome as it is done,
for progress and the run record. Actors load this plugin's code and their
model once, process batches with the same functions as the local pipeline
and write their results to MongoDB themselves; only small per-sample
outcomes travel back. Features give only their worker class and read the
outcomes (:mod:`..autolabel.ray_labeling`, :mod:`..scoring.ray_embeddings`).

The Ray driver runs in a child process of the run, in its own session:

- nothing of Ray (its connection, threads, signal handlers, log handlers)
  enters the process that runs the operator (the App server for an
  immediate run); two runs at once are two Ray jobs, on any clusters;
- a run that must stop (no batch done for ``stall_timeout_s``, an error,
  the user cancelling) ends its child, which ends the Ray job and with it
  every actor the run started, even one stuck in a batch that never
  returns; Ray cannot leave work running after the run has ended;
- the database settings go to the child and on to the actors as arguments
  (never into the job's environment, a log or a run record).

Failures and deadlines are described in :mod:`.ray_driver`. Importing this
module does not import Ray; :func:`require_ray` says how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

logger = logging.getLogger(__name__)

#: the Ray this plugin is tested with (an optional requirement)
RAY_REQUIREMENT = "ray[data]>=2.60,<3"
INSTALL_HINT = f"pip install '{RAY_REQUIREMENT}'"

#: upper bounds of the executor's settings (a request must not ask for more)
MAX_ACTORS = 4096
MAX_RETRIES = 10
MAX_TIMEOUT_S = 7 * 24 * 3600.0

#: the plugin's root folder (the driver and the actors load its code from it)
PLUGIN_ROOT = Path(__file__).resolve().parents[2]
#: the package name the plugin's code gets in the driver and the actors
PACKAGE = "_stoplight_on_ray"

#: loads the plugin by path in the child process and runs its driver
_CHILD = (
    "import importlib, sys, types\n"
    "root, name = sys.argv[1], sys.argv[2]\n"
    "pkg = types.ModuleType(name); pkg.__path__ = [root]; sys.modules[name] = pkg\n"
    "importlib.import_module(name + '.plugins.common.ray_driver').main()\n"
)


class RayRunError(RuntimeError):
    """A Ray run that cannot go on (stalled, a worker raised, no cluster)."""


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """Where and how a run executes on Ray.

    Args:
        address: ``"auto"`` (the cluster this machine runs, or the one
            ``RAY_ADDRESS`` names), a cluster address (``"host:6379"``,
            ``"ray://host:10001"`` with ``ray[client]``), or ``"local"`` (a
            private single-machine Ray started for the run and stopped after)
        actors: size of the actor pool; ``None`` uses as many as the
            cluster's nodes hold now
        cpus_per_actor: CPUs Ray reserves for each actor
        gpus_per_actor: GPUs per actor; ``None`` means 1 when the cluster has
            GPUs and the run's device is not ``"cpu"``, else 0
        max_retries: how many times a batch is tried again after its worker
            process or node died (per pass; see the module docstring)
        start_timeout_s: the run stops with an error when its first batch
            has not finished after this long (actors starting, models
            loading or downloading)
        stall_timeout_s: after that, the run stops with an error when no
            batch finishes for this long
    """

    address: str = "auto"
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    max_retries: int = 2
    start_timeout_s: float = 1800.0
    stall_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address.strip():
            raise ValueError(f"Parameter 'ray_address' must be 'auto', 'local' or a cluster address; "
                             f"got {self.address!r}")
        if self.actors is not None and not (_is_int(self.actors) and 1 <= self.actors <= MAX_ACTORS):
            raise ValueError(f"Parameter 'ray_actors' must be an integer in [1, {MAX_ACTORS}]; "
                             f"got {self.actors!r}")
        if not (_is_number(self.cpus_per_actor) and 0 < self.cpus_per_actor <= 1024):
            raise ValueError(f"Parameter 'ray_cpus_per_actor' must be in (0, 1024]; "
                             f"got {self.cpus_per_actor!r}")
        if self.gpus_per_actor is not None and not (
            _is_number(self.gpus_per_actor) and 0 <= self.gpus_per_actor <= 64
        ):
            raise ValueError(f"Parameter 'ray_gpus_per_actor' must be in [0, 64]; "
                             f"got {self.gpus_per_actor!r}")
        if not (_is_int(self.max_retries) and 0 <= self.max_retries <= MAX_RETRIES):
            raise ValueError(f"Parameter 'ray_max_retries' must be an integer in [0, {MAX_RETRIES}]; "
                             f"got {self.max_retries!r}")
        for name in ("start_timeout_s", "stall_timeout_s"):
            value = getattr(self, name)
            if not (_is_number(value) and 1 <= value <= MAX_TIMEOUT_S):
                raise ValueError(f"Parameter 'ray_{name}' must be in [1, {MAX_TIMEOUT_S:.0f}] "
                                 f"seconds; got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def executor_from(executor: Any) -> RayExecutor | None:
    """The Ray executor a run's ``executor`` argument asks for, or ``None``
    for the local one.

    Args:
        executor: ``"local"`` (or ``None``), ``"ray"`` (defaults of
            :class:`RayExecutor`), a :class:`RayExecutor`, or a dict of its
            fields

    Raises:
        ValueError: for anything else
        ImportError: when Ray is chosen but not installed
    """
    if executor is None or executor == "local":
        return None
    if executor == "ray":
        executor = RayExecutor()
    elif isinstance(executor, Mapping):
        unknown = set(executor) - {f.name for f in dataclasses.fields(RayExecutor)}
        if unknown:
            raise ValueError(f"Unknown Ray executor settings {sorted(unknown)}")
        executor = RayExecutor(**executor)
    if not isinstance(executor, RayExecutor):
        raise ValueError(f"Parameter 'executor' must be 'local', 'ray' or a RayExecutor; got {executor!r}")
    require_ray()
    return executor



def require_ray() -> None:
    """Checks that Ray Data is installed, without importing it here.

    Raises:
        ImportError: naming the install command when it is missing
    """
    import importlib.util

    missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"The Ray executor needs Ray Data, which is not installed here (no module "
            f"{', '.join(repr(m) for m in missing)}). Install it with: {INSTALL_HINT}"
        )


def database_settings() -> dict[str, str]:
    """The run's FiftyOne database settings, as environment variables for
    the actors (they must write to the database the run reads).

    When FiftyOne runs its own local MongoDB (no ``database_uri``), the
    address it listens on is given: actors on this machine reach it; for a
    cluster of several machines, set ``FIFTYONE_DATABASE_URI`` to a
    database every node can reach.
    """
    import fiftyone as fo

    uri = fo.config.database_uri
    if not uri:
        from fiftyone.core.odm.database import get_db_client

        host, port = get_db_client().address
        uri = f"mongodb://{host}:{port}"
    return {
        "FIFTYONE_DATABASE_URI": uri,
        "FIFTYONE_DATABASE_NAME": fo.config.database_name,
        "FIFTYONE_DATABASE_VALIDATION": str(bool(fo.config.database_validation)).lower(),
    }


@dataclasses.dataclass
class RayJob:
    """What a feature runs on the cluster.

    Args:
        module: the worker's module, relative to the plugin root (e.g.
            ``"plugins.autolabel.ray_labeling"``)
        factory: the worker class in it; ``factory(**kwargs)`` is built once
            per actor, then called with each batch (``{column: list}``) and
            returns ``{column: list}`` with at least ``sample_id``,
            ``status`` and ``error`` per row
        kwargs: plain, JSON-serializable settings for the worker, already
            checked by the run (actors never see a request)
        rows: the input columns (JSON-serializable), ``sample_id`` among them
        batch_size: rows per call
        device: the run's torch device (``None``: the actor's choice), used
            to decide GPUs per actor
    """

    module: str
    factory: str
    kwargs: dict
    rows: dict[str, list]
    batch_size: int
    device: str | None = None


def worker_module(name: str) -> str:
    """A module's name relative to the plugin root (what an actor imports),
    from its ``__name__`` (``<wherever the plugin is loaded>.plugins.x.y``)."""
    return name[name.rindex(".plugins.") + 1 :]


class RayRun:
    """One job on the cluster: :meth:`results` yields the outcome batches.

    During and after the run, ``actors`` is the pool size asked for,
    ``nodes`` maps each node that returned work to its row count,
    ``workers`` each worker process (``<node>:<pid>``; a restarted actor is
    a new process) to its row count, and ``lost`` lists the ids returned as
    ``lost``.
    """

    def __init__(self, executor: RayExecutor, job: RayJob) -> None:
        self.executor = executor
        self.job = job
        self.actors = 0
        self.gpus_per_actor = 0.0
        self.driver_node: str | None = None  # the node the driver process attached to
        self.nodes: dict[str, int] = {}
        self.workers: dict[str, int] = {}
        self.lost: list[str] = []

    def results(self) -> Iterator[dict[str, list]]:
        """Outcome batches as they finish (``{column: list}``), then one
        batch of the rows lost on every attempt (status ``lost``).

        Raises:
            RayRunError: when a worker's code raised, when the cluster cannot
                hold one actor or does not answer, or when no batch finished
                within ``start_timeout_s`` / ``stall_timeout_s``
        """
        require_ray()
        spec = dict(executor=dataclasses.asdict(self.executor), job=dataclasses.asdict(self.job),
                    database=database_settings(), root=str(PLUGIN_ROOT), package=PACKAGE)
        read_fd, write_fd = os.pipe()
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(PLUGIN_ROOT), PACKAGE, str(write_fd)],
                stdin=subprocess.PIPE, stdout=_log_fd(), pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        events = _reader(os.fdopen(read_fd, "r", encoding="utf-8"))
        try:
            _feed(child, spec)
            deadline = _Deadline(self.executor.start_timeout_s, "start_timeout_s")
            while True:
                try:
                    event = events.get(timeout=deadline.left())
                except queue.Empty:
                    raise RayRunError(
                        f"No batch finished on the Ray cluster for {deadline.seconds:.0f} s "
                        f"(ray_{deadline.name}): the run stops; what was written is kept, and "
                        "running again with overwrite=False continues"
                    ) from None
                kind = event.get("type")
                if kind == "plan":
                    self.actors, self.gpus_per_actor = event["actors"], event["gpus_per_actor"]
                    self.driver_node = event["driver_node"]
                    logger.info("Ray run on %s: %d actors (%s)", self.executor.address,
                                self.actors, event["cluster"])
                elif kind == "pass":
                    # a new pool of actors starts: loading models again
                    deadline = _Deadline(self.executor.start_timeout_s, "start_timeout_s")
                elif kind == "batch":
                    deadline = _Deadline(self.executor.stall_timeout_s, "stall_timeout_s")
                    out = event["data"]
                    self.count(out)
                    yield out
                elif kind == "lost":
                    self.lost = list(event["data"][ID_COLUMN])
                    yield event["data"]
                elif kind == "error":
                    raise RayRunError(event["message"])
                elif kind == "end":
                    return
                else:  # EOF: the driver died without a word
                    child.wait(30)
                    raise RayRunError(f"The Ray driver process exited (code {child.returncode}) "
                                      "before the run ended; see its output above")
        finally:
            _stop(child)

    def count(self, out: dict[str, list]) -> None:
        """Tallies one outcome batch (nodes, worker processes); a row with
        status ``error`` (a worker raised) ends the run with its message."""
        if STATUS_COLUMN in out and "error" in out[STATUS_COLUMN]:
            i = out[STATUS_COLUMN].index("error")
            raise RayRunError(f"A Ray worker ({out['ray_worker'][i]}) failed: {out[ERROR_COLUMN][i]}")
        for node, worker in zip(out["ray_node"], out["ray_worker"]):
            self.nodes[node] = self.nodes.get(node, 0) + 1
            self.workers[worker] = self.workers.get(worker, 0) + 1


#: per-row columns every worker returns (features add their own); ``lost``
#: rows are added by the driver, ``error`` rows end the run
ID_COLUMN, STATUS_COLUMN, ERROR_COLUMN = "sample_id", "status", "error"


def _log_fd() -> int:
    """Where the driver process's output goes: this process's stderr (Ray's
    and the actors' logs), or nowhere when it has none (a notebook's
    stderr is not a file)."""
    for fd in (lambda: sys.stderr.fileno(), lambda: 2):
        try:
            n = fd()
            os.fstat(n)
            return n
        except (AttributeError, OSError, ValueError):
            continue
    return subprocess.DEVNULL


class _Deadline:
    """``seconds`` from now, named after the setting that gave them."""

    def __init__(self, seconds: float, name: str) -> None:
        self.seconds, self.name = seconds, name
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())


def _feed(child: subprocess.Popen, spec: dict) -> None:
    """Sends the job to the driver process (its stdin, then closed)."""
    try:
        child.stdin.write(json.dumps(spec).encode())
        child.stdin.close()
    except BrokenPipeError:
        pass  # it died at once: its EOF on the event pipe says so


def _reader(stream) -> queue.Queue:
    """A queue of the driver's events (one JSON object per line); ``{}`` at EOF."""
    events: queue.Queue = queue.Queue()

    def read():
        with stream:
            for line in stream:
                try:
                    events.put(json.loads(line))
                except ValueError:
                    logger.warning("Unreadable line from the Ray driver: %r", line[:200])
        events.put({})

    threading.Thread(target=read, name="stoplight-ray-events", daemon=True).start()
    return events


def _stop(child: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Ends the driver process and its session (its Ray job ends with it)."""
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(child.pid, signal.SIGKILL)  # anything it left in its session
    except OSError:
        pass
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        logger.warning("The Ray driver process %d did not exit", child.pid)


def run_facts(run: RayRun) -> dict:
    """What a run record says about a Ray run: the executor's settings and
    how many actors, worker processes and nodes took part."""
    ex = run.executor
    return dict(
        executor="ray",
        ray_address=ex.address,
        ray_actors=run.actors,
        ray_cpus_per_actor=ex.cpus_per_actor,
        ray_gpus_per_actor=run.gpus_per_actor,
        ray_max_retries=ex.max_retries,
        num_ray_nodes=len(run.nodes),
        num_ray_workers=len(run.workers),
        num_lost_samples=len(run.lost),
        ray_nodes=dict(run.nodes),
        ray_workers=dict(run.workers),
    )
