"""The SDK function derived from a progress generator (``common.progress.sdk_function``)."""

from __future__ import annotations

import inspect

import pytest

from stoplight.plugins.autolabel.pipeline import iter_zero_shot_detect, zero_shot_detect
from stoplight.plugins.autolabel.segment import iter_segment_labels, segment_labels
from stoplight.plugins.autolabel.tracking import iter_track_labels, track_labels
from stoplight.plugins.common.progress import Progress, sdk_function
from stoplight.plugins.scoring.embeddings import compute_label_embeddings, iter_compute_label_embeddings
from stoplight.plugins.scoring.scores import iter_score_labels, score_labels
from stoplight.plugins.triage.workflow import (
    assign_queues, calibrate_triage, iter_assign_queues, iter_calibrate_triage,
)


def iter_count(items, step: int = 1, record_run: bool = True):
    """Counts ``items``.

    Args:
        items: what to count
        step: items per event
    """
    for i in range(0, len(items), step):
        yield Progress(min(i + step, len(items)), len(items))
    return dict(num=len(items), step=step, record_run=record_run)


def test_derived_function_runs_the_generator_to_its_end():
    count = sdk_function(iter_count, "count", hidden=("record_run",))
    events = []
    assert count([1, 2, 3], 2, progress=events.append) == dict(num=3, step=2, record_run=True)
    assert [(p.done, p.total) for p in events] == [(2, 3), (3, 3)]
    assert count(items=[1], progress=False) == dict(num=1, step=1, record_run=True)
    # hidden parameters are not offered; unknown ones fail as on a plain function
    with pytest.raises(TypeError, match="record_run"):
        count([1], record_run=False)
    with pytest.raises(TypeError):
        count()


def test_derived_function_has_the_generators_signature_and_docstring():
    count = sdk_function(iter_count, "count", hidden=("record_run",))
    assert count.__name__ == count.__qualname__ == "count"
    assert count.__doc__ == iter_count.__doc__
    params = inspect.signature(count).parameters
    assert list(params) == ["items", "step", "progress"]
    assert params["step"].default == 1 and params["progress"].default is True


def test_interrupting_the_callback_closes_the_generator():
    closed = []

    def iter_slow(n: int):
        try:
            for i in range(n):
                yield Progress(i, n)
        finally:
            closed.append(True)
        return {}

    def stop(p):
        if p.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sdk_function(iter_slow, "slow")(5, progress=stop)
    assert closed == [True]


@pytest.mark.parametrize("iter_fn, sdk_fn, hidden, shown", [
    (iter_zero_shot_detect, zero_shot_detect, {"record_run"}, True),
    (iter_segment_labels, segment_labels, set(), True),
    (iter_track_labels, track_labels, set(), True),
    (iter_score_labels, score_labels, set(), True),
    (iter_compute_label_embeddings, compute_label_embeddings, {"record_run"}, True),
    # the triage runs are quick: no bar unless asked (as before)
    (iter_calibrate_triage, calibrate_triage, set(), False),
    (iter_assign_queues, assign_queues, set(), False),
])
def test_long_runs_are_defined_once(iter_fn, sdk_fn, hidden, shown):
    gen_params = inspect.signature(iter_fn).parameters
    sdk_params = inspect.signature(sdk_fn).parameters
    assert list(sdk_params) == [n for n in gen_params if n not in hidden] + ["progress"]
    assert sdk_params["progress"].default is shown
    assert all(sdk_params[n].default == gen_params[n].default for n in gen_params if n not in hidden)
    assert sdk_fn.__doc__ == iter_fn.__doc__ and "Example usage::" in sdk_fn.__doc__
    assert sdk_fn.__name__ == iter_fn.__name__.removeprefix("iter_")
