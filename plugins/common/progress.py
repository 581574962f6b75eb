"""Progress events of long-running core generators, and how the SDK shows them.

Core work is written as generators that yield :class:`Progress` and return
a summary dict; operators forward the events to the App
(:mod:`.app_progress`), Python callers get a FiftyOne progress bar from
:func:`run`. :func:`sdk_function` derives the plain function Python callers
use from the generator, so that each run's signature and docstring are
written once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable, Iterator, Sequence


@dataclasses.dataclass
class Progress:
    """One progress event: ``done`` of ``total`` units handled."""

    done: int
    total: int
    label: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def drive(gen: Iterator[Progress], callback: Callable[[Progress], None]) -> dict:
    """Runs a progress generator to its end; returns its summary.

    If the callback raises (a user interrupt, a closed connection), the
    generator is closed at once so that it records its partial work.
    """
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            callback(event)
    except BaseException:
        gen.close()
        raise


def run(gen: Iterator[Progress], progress: bool | Callable[[Progress], None] = True) -> dict:
    """Runs a progress generator with a FiftyOne progress bar (``True``),
    silently (``False``) or reporting to a callable; returns its summary."""
    if callable(progress):
        return drive(gen, progress)
    if not progress:
        return drive(gen, lambda p: None)

    import fiftyone.core.utils as fou

    bar = None
    last = 0

    def update(p: Progress):
        nonlocal bar, last
        if bar is None:
            bar = fou.ProgressBar(total=p.total)
            bar.start()
        bar.update(p.done - last)
        last = p.done

    try:
        return drive(gen, update)
    finally:
        if bar is not None:
            bar.close()


def sdk_function(
    iter_fn: Callable[..., Iterator[Progress]], name: str, hidden: Sequence[str] = (), progress: bool = True
) -> Callable[..., dict]:
    """The SDK function of a progress generator: runs it to its end.

    The derived function takes the generator's parameters (less
    ``hidden``, which keep their defaults) plus a last one, ``progress``
    (as :func:`run`: a progress bar by default, ``False``, or a callable),
    and returns the generator's summary. Its signature and docstring are
    the generator's, so ``help()`` and :func:`inspect.signature` show the
    full parameter list (operators read defaults from it).

    Example usage::

        def iter_label(sample_collection, batch_size: int = 8) -> Iterator[Progress]:
            ...  # the one docstring, written for both forms

        label = sdk_function(iter_label, "label")
        summary = label(dataset, batch_size=4)  # with a progress bar

    Args:
        iter_fn: a generator function yielding :class:`Progress` and
            returning a summary dict; its parameters may be passed by name
        name: the derived function's name (``__name__`` and
            ``__qualname__``)
        hidden: parameters of the generator the SDK does not offer (e.g.
            ``record_run``, for callers that keep their own run record)
        progress: the default of the derived function's ``progress``

    Returns:
        the function ``name(*args, progress=True, **kwargs) -> dict``
    """
    signature = inspect.signature(iter_fn)
    params = []
    for param in signature.parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            # the call below passes every argument by name
            raise TypeError(f"{iter_fn.__name__}: parameter {param.name!r} cannot be passed by name")
        if param.name in hidden:
            if param.default is param.empty:
                raise TypeError(f"{iter_fn.__name__}: hidden parameter {param.name!r} needs a default")
            continue
        params.append(param)
    if "progress" in signature.parameters:
        raise TypeError(f"{iter_fn.__name__} already has a parameter 'progress'")
    # last, and of the kind of the parameter before it, so that the
    # signature stays valid (no positional parameter after a keyword-only one)
    kind = params[-1].kind if params else inspect.Parameter.POSITIONAL_OR_KEYWORD
    params.append(
        inspect.Parameter(
            "progress", kind, default=progress, annotation="bool | Callable[[Progress], None]"
        )
    )
    sdk_signature = signature.replace(parameters=params, return_annotation="dict")

    def sdk(*args, **kwargs) -> dict:
        bound = sdk_signature.bind(*args, **kwargs)
        shown = bound.arguments.pop("progress", progress)
        return run(iter_fn(**bound.arguments), shown)

    functools.update_wrapper(sdk, iter_fn)
    sdk.__name__ = name
    sdk.__qualname__ = name
    sdk.__signature__ = sdk_signature
    sdk.__annotations__ = {p.name: p.annotation for p in params} | {"return": "dict"}
    # help() and inspect follow __signature__; __wrapped__ would make
    # tools that unwrap show the generator's parameters instead
    del sdk.__wrapped__
    return sdk
