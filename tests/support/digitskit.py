"""The digits example dataset, partly verified and triaged, for the tests of
the panels, the review surface and the recall report.

Each test module builds its own copy (its own seed and folder), so that
the modules stay independent; the steps are the same everywhere: a share of
the samples tagged ``verified`` (:func:`tag_verified`; with the others'
``ground_truth`` removed: :func:`verified_digits`), triage calibrated on them against
``ground_truth``, queues assigned to every label of ``autolabels``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from digits_dataset import build_digits_dataset

from stoplight.plugins.triage import workflow

FIELD = "autolabels"


def tag_verified(ds, part: int = 2, seed: int = 0) -> None:
    """Tags one in ``part`` of the samples (drawn with ``seed``) ``verified``."""
    ids = ds.values("id")
    rng = np.random.default_rng(seed)
    ds.select(rng.choice(ids, size=len(ids) // part, replace=False)).tag_samples("verified")


def verified_digits(out_dir: Path, seed: int, copies: int = 1, part: int = 2, pick_seed: int = 0,
                    name: str | None = None) -> tuple:
    """The digits dataset with one in ``part`` samples (drawn with
    ``pick_seed``) tagged ``verified`` and ``ground_truth`` only on those:
    the others are what gets triaged, as in a real project.

    Returns:
        ``(dataset, info)`` as ``build_digits_dataset`` returns them (``info``
        has the full truth, to measure against)
    """
    kwargs = {} if name is None else dict(name=name)
    ds, info = build_digits_dataset(seed=seed, copies=copies, out_dir=str(out_dir), **kwargs)
    tag_verified(ds, part, pick_seed)
    ds.match_tags("verified", bool=False).set_field("ground_truth", None).save()
    return ds, info


def triaged_digits(out_dir: Path, seed: int, name: str | None = None, part: int = 2,
                   scope: str | None = "class", **assign_kwargs) -> tuple:
    """The digits dataset, one in ``part`` samples verified, triaged.

    Args:
        out_dir: where the digit images are written
        seed: the dataset's seed (each module its own)
        name: the dataset's name (``None``: the builder's default)
        part: one in ``part`` samples is tagged ``verified``
        scope: the calibration's ``scope``; ``"class"`` (the default here)
            leaves plenty of yellow labels to review on these easy digits,
            ``None`` uses the workflow's own default
        **assign_kwargs: passed on to ``workflow.assign_queues``

    Returns:
        ``(dataset, summary of assign_queues)``
    """
    kwargs = {} if name is None else dict(name=name)
    ds, _ = build_digits_dataset(seed=seed, copies=1, out_dir=str(out_dir), **kwargs)
    tag_verified(ds, part)
    calibrate = {} if scope is None else dict(scope=scope)
    workflow.calibrate_triage(ds.match_tags("verified"), FIELD, "ground_truth", target_precision=0.9,
                              **calibrate)
    summary = workflow.assign_queues(ds, FIELD, **assign_kwargs)
    return ds, summary
