"""Starting and killing :mod:`crash_victim` runs from tests.

Victims are forked from a ``multiprocessing`` forkserver that preloaded
:mod:`crash_victim` (torch, transformers, open_clip, FiftyOne, Stoplight),
so a trial costs a fork and a model load instead of seconds of imports.
They report through a pipe: ``("event", done, total)`` per progress event,
``("held", method)`` when a hold point is reached, then ``("done",
status)`` or ``("error", message)``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import time
from pathlib import Path

import pytest

import crash_victim


@pytest.fixture(scope="module")
def forkserver():
    """The forkserver context, its server started with crash_victim loaded."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["crash_victim"])
    # Python 3.11's forkserver ignores the parent's sys.path when it
    # preloads (and swallows the ImportError): PYTHONPATH gets it there
    old = os.environ.get("PYTHONPATH")
    here = str(Path(crash_victim.__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [old])])
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    return ctx


class Victim:
    """One forked run of ``job``."""

    def __init__(self, ctx, job: dict):
        self._conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=crash_victim.run_in_child, args=(job, child), daemon=True)
        self.proc.start()
        child.close()
        self.events = 0
        self.end = None  # ("done", status) or ("error", message)

    def next(self, timeout: float = 120):
        """The next message, or ``None`` once the victim is gone."""
        if self.end is not None:
            return None
        assert self._conn.poll(timeout), "the victim stopped reporting"
        try:
            msg = self._conn.recv()
        except EOFError:
            return None
        if msg[0] == "event":
            self.events += 1
        elif msg[0] in ("done", "error"):
            self.end = msg
        return msg

    def wait_events(self, n: int, timeout: float = 120) -> None:
        """Waits for ``n`` events in all (or for the end)."""
        while self.events < n and self.end is None:
            if self.next(timeout) is None:
                return

    def wait_end(self, timeout: float = 120):
        while self.end is None:
            if self.next(timeout) is None:
                break
        self.proc.join(timeout)
        return self.end

    def kill(self) -> None:
        """SIGKILL; then collects an end message sent just before, if any."""
        self.proc.kill()
        self.proc.join(60)
        assert self.proc.exitcode is not None
        while self.end is None and self._conn.poll(0):
            if self.next() is None:
                break
        self._conn.close()


def kill_at_random_point(ctx, job: dict, rng, max_events: int, max_delay: float):
    """Starts ``job`` and SIGKILLs it after a random number of events in
    ``[0, max_events]`` plus a random delay in ``[0, max_delay]`` s, or (one
    draw in ``max_events + 2``) after a random 0-1.5 s from the fork, which
    lands in model loading or run registration.

    Returns:
        ``(events_seen, end)``; ``end`` is ``None`` if the run was killed
        before it finished
    """
    victim = Victim(ctx, job)
    after_events = int(rng.integers(-1, max_events + 1))
    delay = float(rng.uniform(0, max_delay))
    if after_events < 0:
        time.sleep(float(rng.uniform(0, 1.5)))
    else:
        victim.wait_events(after_events)
        time.sleep(delay)
    victim.kill()
    assert victim.end is None or victim.end[0] == "done", f"the victim failed on its own: {victim.end}"
    return victim.events, victim.end


def run_to_completion(ctx, job: dict):
    end = Victim(ctx, job).wait_end()
    assert end == ("done", "completed"), end
