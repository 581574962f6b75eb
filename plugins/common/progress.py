"""Progress events of long-running core generators, and how the SDK shows them.

Core work is written as generators that yield :class:`Progress` and return
a summary dict; operators forward the events to the App
(:mod:`.app_progress`), Python callers get a FiftyOne progress bar from
:func:`run`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator


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
