"""The executor choice of an operator request: form fields and their checks.

Shared by the operators that can run on Ray (``zero_shot_detect``,
``compute_label_embeddings``). A request may only name a Ray cluster the
server allows: the App's execute endpoint accepts any parameter, and the
driver hands the database's address to the cluster it connects to, so an
address of the requester's choosing would send it there. The server lists
the addresses it allows in ``STOPLIGHT_RAY_ADDRESSES`` (comma-separated;
``auto`` is always allowed: the cluster this machine runs or the one
``RAY_ADDRESS`` names, both server-side settings). ``local`` (a private Ray
started inside the server process's machine for the run) is allowed only
when listed.

The Python API takes any :class:`.ray_executor.RayExecutor`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from .operator_forms import choices
from .ray_executor import RayExecutor

#: the server's list of Ray cluster addresses a request may use
ALLOWED_ENV = "STOPLIGHT_RAY_ADDRESSES"

#: parameters of the retired MongoDB work queue
RETIRED = ("shard_group", "chunk_size", "lease_s")


def allowed_addresses() -> list[str]:
    """``auto``, then the addresses the server lists in ``STOPLIGHT_RAY_ADDRESSES``."""
    listed = [a.strip() for a in os.environ.get(ALLOWED_ENV, "").split(",") if a.strip()]
    return ["auto"] + [a for a in listed if a != "auto"]


def refuse_retired(params: Mapping[str, Any]) -> None:
    """Refuses the retired work queue's parameters, naming what replaced them.

    Raises:
        ValueError: when ``shard_group``, ``chunk_size`` or ``lease_s`` is set
    """
    for name in RETIRED:
        if params.get(name) not in (None, ""):
            raise ValueError(
                f"Parameter '{name}' belonged to the MongoDB work queue, which is gone: runs "
                "scale out on Ray now. Use executor='ray' and ray_address (a Ray cluster the "
                f"server allows: {', '.join(allowed_addresses())}); see the README's "
                "'Scale-out with Ray'"
            )


def executor_from_params(params: Mapping[str, Any]) -> str | RayExecutor:
    """The executor a request asks for: ``"local"`` or a checked
    :class:`RayExecutor`.

    Raises:
        ValueError: for a retired scale-out parameter (naming what replaced
            it), an unknown executor, an address the server does not allow,
            or settings out of bounds
    """
    refuse_retired(params)
    executor = params.get("executor") or "local"
    if executor == "local":
        return "local"
    if executor != "ray":
        raise ValueError(f"Parameter 'executor' must be 'local' or 'ray'; got {executor!r}")
    address = params.get("ray_address") or "auto"
    allowed = allowed_addresses()
    if address not in allowed:
        raise ValueError(
            f"Parameter 'ray_address': {address!r} is not a Ray cluster this server allows "
            f"({', '.join(allowed)}; the server lists them in {ALLOWED_ENV})"
        )
    settings = dict(address=address)
    for key, name in (("ray_actors", "actors"), ("ray_cpus_per_actor", "cpus_per_actor"),
                      ("ray_gpus_per_actor", "gpus_per_actor")):
        if params.get(key) is not None:
            settings[name] = params[key]
    return RayExecutor(**settings)  # checks the bounds


def ray_inputs(ctx, inputs) -> None:
    """The executor fields of an operator's form.

    Also refuses the retired work queue's parameters (no form sends them):
    FiftyOne resolves the form before it runs or queues a request, so such
    a request is refused before anything is queued.
    """
    import fiftyone.operators.types as types

    refuse_retired(ctx.params)
    executors = types.RadioGroup()
    executors.add_choice("local", label="This process")
    executors.add_choice("ray", label="Ray cluster",
                         description="A pool of Ray actors, one per GPU (or CPU), on every node")
    inputs.enum("executor", executors.values(), default="local", label="Run on", view=executors)
    if ctx.params.get("executor") != "ray":
        return
    addresses = choices(types.Dropdown(), allowed_addresses())
    inputs.enum(
        "ray_address", addresses.values(), default="auto", label="Ray cluster", view=addresses,
        description=f"'auto': the cluster this machine runs (ray start) or RAY_ADDRESS; "
                    f"others as the server lists them in {ALLOWED_ENV}",
    )
    inputs.int("ray_actors", min=1, label="Actors",
               description="Empty: as many as the cluster holds now (one per GPU, or per CPU)")
    inputs.float("ray_gpus_per_actor", min=0.0, label="GPUs per actor",
                 description="Empty: 1 when the cluster has GPUs")
