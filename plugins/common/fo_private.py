"""FiftyOne internals Stoplight relies on, where FiftyOne has no public
accessor (checked in fiftyone 1.22): one place to look when FiftyOne
changes them. Each function wraps one private attribute or method, named
in its docstring; the rest of ``plugins`` calls these instead
(``tests/unit/test_layers.py`` checks it).
"""

from __future__ import annotations


def dataset_id(dataset):
    """The dataset's database id (a ``bson.ObjectId``; stable across renames,
    unlike ``dataset.name``). ``Dataset`` has no public ``id`` property:
    ``_doc.id``."""
    return dataset._doc.id


def sample_collection(dataset):
    """The ``pymongo`` collection holding the dataset's sample documents
    (a dataset's, not a view's: no stages apply): ``_sample_collection``."""
    return dataset._sample_collection


def sample_collection_name(dataset) -> str:
    """The name of the dataset's sample collection in MongoDB (unique per
    dataset, unchanged by a rename): ``_sample_collection_name``."""
    return dataset._sample_collection_name


def frame_collection(dataset):
    """The ``pymongo`` collection holding a video dataset's frame documents:
    ``_frame_collection``."""
    return dataset._frame_collection


def bulk_write(dataset, ops: list, ids: list | None = None, frames: bool = False):
    """``pymongo`` write operations run on the dataset's sample (or, with
    ``frames``, frame) collection, then the in-memory samples (frames) of
    ``ids`` reloaded, all of them when None: ``Dataset._bulk_write``."""
    return dataset._bulk_write(ops, ids=ids, frames=frames)


def reload_sample_docs(dataset, sample_ids: list) -> None:
    """Reloads the in-memory ``Sample`` objects of ``sample_ids`` from the
    database after a raw write: ``Sample._reload_docs``."""
    import fiftyone.core.sample as fos

    fos.Sample._reload_docs(dataset._sample_collection_name, sample_ids=sample_ids)


def root_dataset(sample_collection):
    """The dataset a dataset or view derives from: for a view of a patches,
    frames or clips dataset, the dataset those were generated from:
    ``_root_dataset``."""
    return sample_collection._root_dataset


def view_dataset(sample_collection):
    """The dataset a view is defined on (a generated one for a patches,
    frames or clips view); a dataset's own self: ``_dataset``."""
    return sample_collection._dataset


def is_patches(sample_collection) -> bool:
    """Whether the collection is a patches dataset or a view of one:
    ``_is_patches``."""
    return sample_collection._is_patches


def is_generated(dataset) -> bool:
    """Whether the dataset was generated from another (patches, frames,
    clips): ``_is_generated``, read as False where a collection lacks it."""
    return getattr(dataset, "_is_generated", False)


def stage_objects(view) -> list:
    """A view's ``ViewStage`` objects, in order (empty for a dataset's bare
    view): ``DatasetView._stages``."""
    return view._stages


def view_stages(view, include_uuids: bool = False) -> list[dict]:
    """A view's stages as JSON-ready dicts (what FiftyOne stores for saved
    views); without uuids, equal views give equal lists: ``_serialize``."""
    return view._serialize(include_uuids=include_uuids)


def build_view(dataset, stages: list[dict]):
    """The view of ``dataset`` with the serialized ``stages`` (as
    :func:`view_stages` gives them): ``DatasetView._build``."""
    import fiftyone.core.view as fov

    return fov.DatasetView._build(dataset, stages)


def aggregate_view(sample_collection, pipeline: list[dict]):
    """The results of ``pipeline`` run after the collection's own stages
    (FiftyOne's public ``aggregate`` takes only its aggregation objects):
    ``_aggregate``."""
    return sample_collection._aggregate(pipeline=pipeline)


def view_pipeline(sample_collection, pipeline: list[dict] | None = None) -> list[dict]:
    """The aggregation pipeline of the collection's own stages, followed by
    ``pipeline``, to run on its dataset's sample collection
    (:func:`sample_collection` of :func:`view_dataset`): ``_pipeline``."""
    return sample_collection._pipeline(pipeline=pipeline)
