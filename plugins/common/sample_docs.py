"""Sample documents read as stored, by id: for a few fields of a few
samples, without building ``fo.Sample`` objects (FiftyOne has no public
query for raw documents)."""

from __future__ import annotations

from typing import Iterable, Iterator

from .fo_private import sample_collection


def read_sample_docs(dataset, sample_ids: Iterable, fields: dict) -> Iterator[dict]:
    """The stored documents of the samples ``sample_ids`` (ObjectIds) that
    exist, in no particular order.

    Args:
        dataset: a dataset (not a view: no stages apply)
        sample_ids: ObjectIds
        fields: a MongoDB projection, e.g. ``{"filepath": 1}``
    """
    return sample_collection(dataset).find({"_id": {"$in": list(sample_ids)}}, fields)
