"""FiftyOne internals Stoplight relies on, where FiftyOne has no public
accessor (checked in fiftyone 1.22): one place to look when FiftyOne
changes them.

Not yet here (used directly, see docs/architecture.md): a view's
``_root_dataset`` and a dataset's ``_sample_collection`` /
``_frame_collection`` / ``_sample_collection_name``.
"""

from __future__ import annotations


def dataset_id(dataset):
    """The dataset's database id (a ``bson.ObjectId``; stable across renames,
    unlike ``dataset.name``). ``Dataset`` has no public ``id`` property."""
    return dataset._doc.id
