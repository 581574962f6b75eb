"""Ordered background loading: work on item i+1.. while item i is used."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Callable, Iterable, Iterator


def prefetch(
    jobs: Iterable[tuple],
    load: Callable[..., Any],
    num_workers: int,
    ahead: int | None = None,
    name: str = "stoplight-load",
) -> Iterator[Any]:
    """Yields ``load(*job)`` for each job, in order, computed in threads.

    Decoding (PIL releases the GIL) and tensor preparation run in
    ``num_workers`` threads, up to ``ahead`` jobs (default ``num_workers``)
    in front of the consumer, so a GPU forward pass never waits for the
    next batch's images. ``num_workers=0`` loads in the caller's thread.
    Pending work is cancelled when the consumer stops early.
    """
    if num_workers == 0:
        for job in jobs:
            yield load(*job)
        return
    ahead = num_workers if ahead is None else ahead
    with cf.ThreadPoolExecutor(num_workers, thread_name_prefix=name) as pool:
        futures: list[cf.Future] = []
        try:
            for job in jobs:
                futures.append(pool.submit(load, *job))
                if len(futures) > ahead:
                    yield futures.pop(0).result()
            while futures:
                yield futures.pop(0).result()
        finally:
            for f in futures:
                f.cancel()
