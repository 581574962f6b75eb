"""Labels of a view read in bulk as flat, aligned arrays.

One ``values()`` call reads every label of a field; the triage's runs work
on the arrays (one entry per label) and write back in bulk.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from ..common.label_vocab import AUTO_LABEL_ATTR

__all__ = ["flatten", "read_labels"]


def flatten(per_sample: list, fill=None) -> list:
    """One flat list from per-sample lists (None or empty lists add nothing)."""
    return list(itertools.chain.from_iterable(v if v else [] for v in per_sample))


def _floats(per_sample: list) -> np.ndarray:
    nan = math.nan
    flat = flatten(per_sample)
    return np.fromiter(
        (v if isinstance(v, (int, float)) and v is not True and v is not False else nan for v in flat),
        dtype=np.float64,
        count=len(flat),
    )


def read_labels(sample_collection, label_field: str, attrs: Sequence[str] = ()) -> dict:
    """Bulk read of every label of ``label_field`` in the view.

    Returns:
        dict of flat, aligned arrays: ``label_id`` (``ObjectId``: bulk
        writes take them as they are, converting a million strings back
        costs seconds), ``sample_id`` (str), ``label``,
        ``review`` and one float array per name in ``attrs`` (NaN where
        missing); ``queue`` when asked for
    """
    root = f"{label_field}.detections"
    text_attrs = [a for a in attrs if a in ("queue", AUTO_LABEL_ATTR)]
    float_attrs = [a for a in attrs if a not in text_attrs]
    paths = ["id", f"{root}._id", f"{root}.label", f"{root}.review"]
    paths += [f"{root}.{a}" for a in text_attrs + float_attrs]
    values = sample_collection.values(paths)
    sids, lids, labs, revs = values[:4]
    counts = [len(v) if v else 0 for v in lids]
    out = dict(
        sample_id=np.repeat(np.asarray(sids, dtype=object), counts),
        label_id=np.asarray(flatten(lids), dtype=object),
        label=np.asarray([l if isinstance(l, str) else "" for l in flatten(labs)], dtype=object),
        review=np.asarray(flatten(revs), dtype=object),
    )
    for name, vals in zip(text_attrs, values[4 : 4 + len(text_attrs)]):
        out[name] = np.asarray(flatten(vals), dtype=object)
    for name, vals in zip(float_attrs, values[4 + len(text_attrs) :]):
        out[name] = _floats(vals)
    return out
