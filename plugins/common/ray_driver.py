"""The Ray driver of a run: a child process of the run (see :mod:`.ray_executor`).

:func:`main` reads the job from stdin, connects to the cluster, streams
the rows through Ray Data ``map_batches`` over an actor pool, and writes
one JSON event per line to the pipe its parent gave it: ``plan`` (pool
size), ``pass``, ``batch`` (an outcome batch), ``lost``, ``error``,
``end``. The parent owns every deadline: it ends this process (and so the
Ray job and its actors) when the run must stop.

Connection: the plugin's code is shipped to the cluster with the job
(``runtime_env`` ``working_dir``), so nodes need the Python packages but
not the plugin. An address nobody answers at is refused at once (Ray itself
would wait for minutes); a cluster that cannot hold one actor is refused
with its resources (Ray would wait forever).

Failures: a batch whose worker process or node dies is retried by Ray on
a restarted actor, at most ``max_retries`` times. The rows still missing
after that pass are tried once more, one row per call on a new pool (so
one image that kills every process reading it does not take its
batch-mates with it); the rows lost again are reported as ``lost`` and the
run records them as per-sample failures and goes on. An exception in a
worker's Python code is not retried: its batch comes back with status
``error`` and the run ends with its message.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from typing import Any

#: what of the plugin is not shipped to the cluster (tests, docs, environments)
SHIP_EXCLUDES = [
    "/tests", "/docs", "/benchmarks", "/examples", "/artifacts", "/checkpoints",
    ".git", ".venv", ".venv-labelstudio", "__pycache__", "*.pyc",
]
#: a file every copy of the plugin holds: how an actor finds the shipped one
_MARKER = os.path.join("plugins", "common", "ray_driver.py")
#: input blocks past this many are made coarser (per-block overhead)
_MAX_BLOCKS = 20000


def main() -> None:
    """Runs the job read from stdin; events go to the pipe ``sys.argv[3]``."""
    out = os.fdopen(int(sys.argv[3]), "w", encoding="utf-8", buffering=1)

    def emit(kind: str, **fields: Any) -> None:
        out.write(json.dumps(dict(fields, type=kind)) + "\n")

    try:
        spec = json.load(sys.stdin)
        drive(spec, emit)
        emit("end")
    except Exception as e:  # noqa: BLE001 - handed to the run, which raises it
        emit("error", message=_message(e))
    finally:
        out.close()


def drive(spec: dict, emit) -> None:
    """Connects, plans the pool, runs both passes, reports what was lost."""
    import ray

    executor, job = spec["executor"], spec["job"]
    _connect(ray, executor["address"], spec["root"])
    try:
        actors, capacity, gpus, cluster = plan_actors(ray, executor, job["device"])
        emit("plan", actors=actors, gpus_per_actor=gpus, cluster=cluster,
             driver_node=ray.get_runtime_context().get_node_id())
        remaining = dict.fromkeys(job["rows"]["sample_id"])
        index = {sid: i for i, sid in enumerate(job["rows"]["sample_id"])}
        # every batch as it is, the pool starting with the actors the cluster
        # holds now (one per node here, rather than all work on the first
        # actor up); then what is missing, one row at a time, on a new pool
        # on whatever is left of the cluster
        for batch_size, min_actors in ((job["batch_size"], min(actors, capacity)), (1, 1)):
            if not remaining:
                break
            emit("pass", batch_size=batch_size, rows=len(remaining))
            picked = [index[sid] for sid in remaining]
            rows = {k: [v[i] for i in picked] for k, v in job["rows"].items()}
            ds = _dataset(ray, spec, rows, batch_size, min_actors, actors, gpus)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                data = {k: v.tolist() for k, v in batch.items()}
                for sid in data["sample_id"]:
                    remaining.pop(sid, None)
                emit("batch", data=data)
        if remaining:
            attempts = 2 * (1 + executor["max_retries"])
            msg = (f"Lost on each of {attempts} attempts: the Ray worker process or node "
                   "handling it died each time (a crash in the image decoder or the model, "
                   "out of memory, a node lost); see the Ray logs")
            lost = list(remaining)
            emit("lost", data=dict(sample_id=lost, status=["lost"] * len(lost),
                                   error=[msg] * len(lost)))
    finally:
        ray.shutdown()


def _connect(ray, address: str, root: str) -> None:
    resolved = _resolve_address(address)
    if resolved not in (None, "auto"):
        _check_reachable(resolved)
    kwargs: dict[str, Any] = dict(
        runtime_env={"working_dir": root, "excludes": SHIP_EXCLUDES},
        logging_level="WARNING",
    )
    if resolved is None:
        kwargs.update(address="local", include_dashboard=False)
    else:
        kwargs.update(address=resolved)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RuntimeError(f"Cannot connect to the Ray cluster at {address!r}: {e}") from e
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run reports its own progress
    ctx.print_on_execution_start = False


def _resolve_address(address: str) -> str | None:
    """The GCS or client address ``address`` leads to (``None``: a new local Ray)."""
    if address == "local":
        return None
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            return os.environ["RAY_ADDRESS"]
        try:
            from ray._private.services import get_ray_address_from_environment
        except ImportError:  # Ray's internals moved: let ray.init find it
            return "auto"
        try:
            return get_ray_address_from_environment("auto", None)
        except ConnectionError as e:
            raise RuntimeError(
                "No running Ray cluster found on this machine (ray_address='auto'). Start one "
                "with `ray start --head`, set RAY_ADDRESS, or give its address"
            ) from e
    return address


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuses an address nobody answers at: ``ray.init`` would wait for
    minutes before giving up."""
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RuntimeError(
            f"No Ray cluster answers at {address} ({e}). Start one with `ray start --head` "
            "(see the README's 'Scale-out with Ray'), or check the address"
        ) from e


def plan_actors(ray, executor: dict, device: str | None) -> tuple[int, int, float, str]:
    """The pool's size, how many actors the cluster holds now, the GPUs per
    actor, and a description of the cluster.

    Raises:
        RuntimeError: when no alive node can hold one actor (Ray would wait
            for one forever), naming what the nodes have
    """
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = executor["cpus_per_actor"]
    gpus = executor["gpus_per_actor"]
    cluster_gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in nodes)
    wants_cpu = device is not None and str(device).startswith("cpu")
    if gpus is None:
        gpus = 1.0 if cluster_gpus and not wants_cpu else 0.0
    if gpus and wants_cpu:
        raise RuntimeError(f"ray_gpus_per_actor={gpus} with device='cpu': ask for no GPUs or "
                           "another device")
    if device is not None and str(device).startswith("cuda") and not gpus:
        raise RuntimeError(f"device={device!r} but the Ray cluster has no GPU for the actors "
                           f"({_describe(nodes)})")

    def fits(node) -> int:
        res = node.get("Resources", {})
        n = math.floor(res.get("CPU", 0) / cpus + 1e-9)
        if gpus:
            n = min(n, math.floor(res.get("GPU", 0) / gpus + 1e-9))
        return n

    capacity = sum(fits(n) for n in nodes)
    if capacity == 0:
        raise RuntimeError(
            f"No node of the Ray cluster can hold one actor of {cpus:g} CPU"
            f"{f' and {gpus:g} GPU' if gpus else ''} ({_describe(nodes)}); lower "
            "ray_cpus_per_actor / ray_gpus_per_actor or add nodes"
        )
    actors = executor["actors"] or capacity
    return actors, capacity, float(gpus), _describe(nodes)


def _describe(nodes) -> str:
    cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in nodes)
    gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in nodes)
    return f"{len(nodes)} alive node(s), {cpus:g} CPU, {gpus:g} GPU"


def _dataset(ray, spec: dict, rows: dict, batch_size: int, min_actors: int, max_actors: int,
             gpus: float):
    executor, job = spec["executor"], spec["job"]
    n = len(rows["sample_id"])
    # one block per batch (a lost block costs one batch), coarser past
    # _MAX_BLOCKS blocks so that the per-block overhead stays small
    per_block = batch_size * max(1, math.ceil(n / (batch_size * _MAX_BLOCKS)))
    items = [dict(zip(rows, values)) for values in zip(*rows.values())]
    ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(n / per_block)))
    ds = ds.map_batches(
        _actor_class(),
        fn_constructor_kwargs=dict(
            plugin_root=spec["root"], database=spec["database"], module=job["module"],
            factory=job["factory"], kwargs=job["kwargs"], marker=_MARKER, package=spec["package"],
        ),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=min_actors, max_size=max_actors),
        num_cpus=executor["cpus_per_actor"],
        num_gpus=gpus or None,
        # a dead worker's batch is retried on a restarted actor, but not
        # forever: a batch that kills every process it reaches would
        # otherwise stop the whole run (Ray Data's default is forever). Given
        # as a function: Ray Data applies it over its own defaults
        ray_remote_args_fn=_RetryBound(executor["max_retries"]),
    )
    ctx = ds.context
    ctx.max_errored_blocks = -1  # lost batches: tried again one by one, then reported
    ctx.wait_for_min_actors_s = int(executor["start_timeout_s"])
    return ds


class _RetryBound:
    """Actor options: restarted when its process dies, each batch retried at
    most ``retries`` times."""

    def __init__(self, retries: int) -> None:
        self.retries = retries

    def __call__(self) -> dict:
        return {"max_restarts": -1, "max_task_retries": self.retries}


def _message(error: BaseException) -> str:
    """The innermost message of an error chain (Ray wraps a cause in several
    layers of its own)."""
    seen = error
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        seen = seen.__cause__
    text = str(seen).strip()
    outer = str(error).strip()
    if seen is error or outer in text:
        return text or type(error).__name__
    return f"{outer.splitlines()[0]} ({type(seen).__name__}: {text.splitlines()[-1] if text else ''})"


def _actor_class():
    """The actor class every job runs (defined in a function so that Ray's
    cloudpickle ships it by value: the cluster cannot import this package by
    the name it has here). It references nothing of this package."""

    class StoplightWorker:
        def __init__(self, plugin_root, database, module, factory, kwargs, marker, package):
            import importlib
            import os
            import sys
            import types

            import ray

            # before anything imports fiftyone, which reads them once
            os.environ.update(database)
            root = os.getcwd() if os.path.isfile(os.path.join(os.getcwd(), marker)) else plugin_root
            if not os.path.isfile(os.path.join(root, marker)):
                raise RuntimeError(f"Stoplight's code is not on this Ray node (looked in "
                                   f"{os.getcwd()} and {plugin_root})")
            if package not in sys.modules:
                pkg = types.ModuleType(package)
                pkg.__path__ = [root]
                sys.modules[package] = pkg
            self._work = getattr(importlib.import_module(f"{package}.{module}"), factory)(**kwargs)
            self._node = ray.get_runtime_context().get_node_id()
            self._pid = os.getpid()

        def __call__(self, batch):
            import traceback

            columns = {k: v.tolist() for k, v in batch.items()}
            n = len(columns["sample_id"])
            try:
                out = self._work(columns)
            except Exception as e:  # noqa: BLE001 - the run ends with it
                tb = "".join(traceback.format_exception(e, limit=-4))
                out = dict(sample_id=columns["sample_id"], status=["error"] * n,
                           error=[f"{type(e).__name__}: {e}\n{tb}"] * n)
            m = len(out["sample_id"])
            out["ray_node"] = [self._node] * m
            out["ray_worker"] = [f"{self._node[:8]}:{self._pid}"] * m
            return out

    return StoplightWorker
