"""Raw views of what a dataset holds in MongoDB, for before/after comparisons.

Tests snapshot the sample documents straight from the collection (not
through FiftyOne's objects, which would hide dynamic attributes and apply
defaults), and compare them with the attributes a step may write removed.
"""

from __future__ import annotations

import copy
import math
from typing import Iterable


def raw_docs(dataset) -> dict[str, dict]:
    """``{sample_id: document}`` as stored, without ``last_modified_at``."""
    out = {}
    for doc in dataset._sample_collection.find({}):
        doc.pop("last_modified_at", None)
        out[str(doc["_id"])] = doc
    return out


def without(docs: dict[str, dict], fields: Iterable[str] = (), label_attrs: Iterable[str] = (),
            label_field: str = "autolabels") -> dict[str, dict]:
    """A comparable copy of ``docs`` without sample ``fields`` and without
    the ``label_attrs`` of every label in ``label_field``.

    NaN floats become the string ``"NaN"``: ``nan != nan``, so documents
    holding one would never compare equal to themselves.
    """
    fields, label_attrs = set(fields), set(label_attrs)
    out = {}
    for sid, doc in docs.items():
        doc = {k: _nan_as_text(copy.deepcopy(v)) for k, v in doc.items() if k not in fields}
        dets = (doc.get(label_field) or {}).get("detections") if isinstance(doc.get(label_field), dict) else None
        for d in dets or []:
            for a in label_attrs:
                d.pop(a, None)
        out[sid] = doc
    return out


def non_finite_paths(value, path: str = "") -> list[str]:
    """Paths of every NaN or infinite float inside a document."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}[{i}]")]
    return []


def _nan_as_text(value):
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _nan_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_as_text(v) for v in value]
    return value
