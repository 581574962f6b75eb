"""Forwarding a core generator's progress to the App, for operators."""

from __future__ import annotations

from typing import Any, Generator, Iterator


def run_with_progress(ctx, gen: Iterator, what: str) -> Generator[Any, None, dict]:
    """Drives a core ``Progress`` generator from a generator operator.

    Use as ``summary = yield from run_with_progress(ctx, gen, "Labeling")``.
    Immediate runs yield ``set_progress`` operations to the App; delegated
    runs report through ``ctx.set_progress``. An error is notified to the
    App before it is re-raised (a generator's HTTP stream has already
    started, so an exception alone would end it silently), and the core
    generator is always closed, so a cancelled run records what it wrote.

    Returns:
        the core generator's summary
    """
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if ctx.delegated:
                ctx.set_progress(progress=p.fraction, label=p.label)
            else:
                yield ctx.ops.set_progress(progress=p.fraction, label=p.label)
    except Exception as e:
        if not ctx.delegated:
            yield ctx.ops.notify(f"{what} failed: {e}", variant="error")
        raise
    finally:
        gen.close()
