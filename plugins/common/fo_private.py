"""FiftyOne internals Stoplight relies on, where FiftyOne has no public
accessor (checked in fiftyone 1.22): one place to look when FiftyOne
changes them.

Not yet here (used directly, see docs/architecture.md): uses outside
``plugins/panels`` of a view's ``_root_dataset`` and a dataset's
``_sample_collection`` / ``_frame_collection`` /
``_sample_collection_name``.
"""

from __future__ import annotations


def dataset_id(dataset):
    """The dataset's database id (a ``bson.ObjectId``; stable across renames,
    unlike ``dataset.name``). ``Dataset`` has no public ``id`` property."""
    return dataset._doc.id


def sample_collection(dataset):
    """The ``pymongo`` collection holding the dataset's sample documents
    (a dataset's, not a view's: no stages apply)."""
    return dataset._sample_collection


def root_dataset(sample_collection):
    """The dataset a dataset or view derives from: for a view of a patches,
    frames or clips dataset, the dataset those were generated from."""
    return sample_collection._root_dataset


def view_dataset(sample_collection):
    """The dataset a view is defined on (a generated one for a patches,
    frames or clips view); a dataset's own self."""
    return sample_collection._dataset


def view_stages(view, include_uuids: bool = False) -> list[dict]:
    """A view's stages as JSON-ready dicts (what FiftyOne stores for saved
    views); without uuids, equal views give equal lists."""
    return view._serialize(include_uuids=include_uuids)


def build_view(dataset, stages: list[dict]):
    """The view of ``dataset`` with the serialized ``stages`` (as
    :func:`view_stages` gives them)."""
    import fiftyone.core.view as fov

    return fov.DatasetView._build(dataset, stages)


def aggregate_view(sample_collection, pipeline: list[dict]):
    """The results of ``pipeline`` run after the collection's own stages
    (FiftyOne's public ``aggregate`` takes only its aggregation objects)."""
    return sample_collection._aggregate(pipeline=pipeline)
