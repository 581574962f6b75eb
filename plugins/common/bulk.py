"""Bulk label writes straight to MongoDB.

``set_values`` is FiftyOne's fast path, but it builds and validates a
mongoengine document per label (about 0.6 ms per detection here), which
costs more than a GPU forward pass once detectors run at hundreds of images
per second. Stoplight builds the label documents itself (plain dicts in
FiftyOne's own serialized layout, from values it has already validated) and
writes them with the same bulk ``UpdateOne`` operations ``set_values``
issues (one atomic update per sample, unordered), reloading in-memory
samples afterwards and keeping ``last_modified_at`` as FiftyOne does (stamped
with the database's clock, :data:`DB_NOW`).

What a bulk write of plain documents still spends, and what is done about
it (``benchmarks/bench_writes.py``):

- Python's cyclic garbage collector: building tens of thousands of small
  dicts and lists triggers full collections that scan every object a
  FiftyOne process holds (~450k); :func:`gc_paused` suspends it while label
  documents are built and written (they hold no reference cycles).
- ObjectIds: :func:`new_object_ids` makes a block of them from one counter
  reservation instead of taking the lock and the clock once per label.
- Round trips: FiftyOne's default latency batcher starts at one operation
  per batch and grows by 8x, so a 256-sample chunk costs ~4 round trips;
  :func:`_bulk_write` sends the chunk as one ``bulk_write`` (pymongo still
  splits it at the server's message limits).
"""

from __future__ import annotations

import contextlib
import gc
import struct
import time
from typing import Iterator, Mapping, Sequence

from . import fo_private
from .label_attrs import check_writable


#: the update part that stamps ``last_modified_at`` with the database
#: server's clock: writers on several machines agree on one clock (FiftyOne
#: itself stamps its own writes with the writing process's clock)
DB_NOW = {"$currentDate": {"last_modified_at": True}}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Suspends Python's cyclic garbage collector for the ``with`` block.

    Reference counting still frees everything the block drops; only the
    cycle detector waits. Label documents are trees (no cycles), so nothing
    accumulates, and the collector no longer rescans the whole process
    every few hundred new containers. The previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def new_object_ids(n: int) -> list:
    """Returns ``n`` new, distinct ``bson.ObjectId`` s in increasing order.

    Same layout as ``ObjectId()`` (4-byte time, 5-byte per-process random,
    3-byte counter) and the same process-wide counter, reserved once for the
    whole block under bson's own lock, so they never collide with ids made
    elsewhere in the process. Falls back to ``ObjectId()`` per id if bson's
    internals differ from the ones this relies on.
    """
    from bson import ObjectId

    lock = getattr(ObjectId, "_inc_lock", None)
    random5 = getattr(ObjectId, "_random", None)
    if n <= 0:
        return []
    if lock is None or random5 is None or not isinstance(getattr(ObjectId, "_inc", None), int):
        return [ObjectId() for _ in range(n)]
    with lock:
        inc = ObjectId._inc
        ObjectId._inc = (inc + n) % 0x1000000
    prefix = struct.pack(">I", int(time.time())) + random5()
    return [ObjectId(prefix + ((inc + j) & 0xFFFFFF).to_bytes(3, "big")) for j in range(n)]


def _bulk_write(sample_collection, ops: list, ids: list) -> int:
    """FiftyOne's ``Dataset._bulk_write`` in one batch: its ``bulk_write``
    (unordered; a refused operation raises ``ValueError`` with MongoDB's
    message) with ``batcher=False``, then the reload of in-memory samples.
    Returns the number of documents the operations' filters matched."""
    import fiftyone.core.odm as foo

    dataset = fo_private.view_dataset(sample_collection)
    results = foo.bulk_write(ops, fo_private.sample_collection(dataset), ordered=False, batcher=False)
    fo_private.reload_sample_docs(dataset, ids)
    return sum(r.matched_count for r in results)


def declare_field(dataset, field: str, doc_type, list_attrs: Mapping[str, type] = None,
                  info: dict | None = None) -> None:
    """Declares ``field`` (an embedded label document) and its attributes.

    Args:
        dataset: the dataset
        field: the sample field name
        doc_type: the label class, e.g. ``fo.Detections``
        list_attrs: ``{attr: fiftyone field class}`` of list-of-number
            attributes on each element (e.g. ``{"class_scores":
            fo.FloatField}``), declared so the App and ``get_field_schema``
            show them
        info: the field's ``info`` if it is created here (in the same
            database update; e.g. :func:`.field_owner.purpose_info`)
    """
    import fiftyone as fo

    if not dataset.has_field(field):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=doc_type, info=info)
    list_name = getattr(doc_type, "_LABEL_LIST_FIELD", None)
    for attr, subfield in (list_attrs or {}).items():
        path = f"{field}.{list_name}.{attr}" if list_name else f"{field}.{attr}"
        if not dataset.has_field(path):
            dataset.add_sample_field(path, fo.ListField, subfield=subfield)


def write_docs(sample_collection, field: str, docs: Mapping[str, dict]) -> None:
    """Sets ``field`` of each sample id in ``docs`` to its document."""
    from bson import ObjectId
    from pymongo import UpdateOne

    if not docs:
        return
    ids = list(docs)
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": {field: docs[sid]}, **DB_NOW}) for sid in ids]
    _bulk_write(sample_collection, ops, ids)


#: samples per bulk request of :func:`write_label_attrs`
_WRITE_CHUNK = 5000


def write_label_attrs(
    sample_collection,
    list_path: str,
    sample_ids,
    label_ids,
    values: Mapping[str, "list | object"],
    owned: Sequence[str] = (),
    unless: Mapping[str, Sequence] | None = None,
) -> None:
    """Sets several attributes of many labels with one update per sample.

    Each label is addressed by its ``_id`` through MongoDB's filtered
    positional operator (``<list_path>.$[l0].<attr>``), so only the named
    attributes change: nothing else on the label (a review decision, say)
    is rewritten, and a label list reordered meanwhile is still safe. One
    call replaces ``len(values)`` ``set_label_values`` calls (~0.3 ms per
    label and attribute each).

    Args:
        sample_collection: the collection whose dataset holds the labels
        list_path: e.g. ``"autolabels.detections"``
        sample_ids: ``(N,)`` owning sample id of each label
        label_ids: ``(N,)`` label ids
        values: ``{attr: (N,) values}``; ``None`` values are written as null
        owned: the protected attributes (:mod:`.label_attrs`) this writer
            owns; any other protected attribute in ``values`` is refused
        unless: ``{attr: values}``: a label whose stored ``attr`` is one
            of ``values`` when the update runs is left alone (e.g.
            ``{"review": ["accepted", "rejected"]}``: a decision a person
            makes while a run computes is never written over). MongoDB
            checks it in the same atomic update as the write

    Raises:
        ValueError: for a protected attribute the writer does not own
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    check_writable(values, owned)

    by_sample: dict[str, list[int]] = {}
    for i, sid in enumerate(sample_ids):
        by_sample.setdefault(sid, []).append(i)
    owners = list(by_sample)
    # Operations are built and sent per chunk of samples: all of them at
    # once would hold ~1.5 GB of update documents at 1M labels.
    for c in range(0, len(owners), _WRITE_CHUNK):
        chunk = owners[c : c + _WRITE_CHUNK]
        ops = []
        for sid in chunk:
            update = {}
            filters = []
            for j, i in enumerate(by_sample[sid]):
                cond = {f"l{j}._id": ObjectId(label_ids[i])}
                for attr, vals in (unless or {}).items():
                    # $nin also matches labels without the attribute
                    cond[f"l{j}.{attr}"] = {"$nin": list(vals)}
                filters.append(cond)
                for attr, vals in values.items():
                    update[f"{list_path}.$[l{j}].{attr}"] = vals[i]
            ops.append(UpdateOne({"_id": ObjectId(sid)}, {"$set": update, **DB_NOW}, array_filters=filters))
        _bulk_write(sample_collection, ops, chunk)


def read_label_vectors(
    sample_collection, list_path: str, attr: str
) -> tuple[list[str], list[str], "np.ndarray"]:
    """Reads a list-of-numbers attribute of every label into one array.

    ``values()`` turns each number into a Python float inside nested lists
    (17.5 s for 100k 512-d vectors in ``score_labels``, and ~24 bytes per
    number: 12 GB at 1M). Here the collection's own pipeline (so views and
    label filters apply) plus an inclusion ``$project`` of the label ids and
    the attribute returns raw BSON batches; the labels are located by
    walking the bytes, and the vectors, when they have one layout (same
    length, all doubles, which is how Python floats are stored), are cut
    out of the bytes with strided numpy views. Other vectors (integers,
    other lengths) are decoded the ordinary way.

    Args:
        sample_collection: a dataset or view
        list_path: the label list, e.g. ``"autolabels.detections"``
        attr: the attribute, e.g. ``"embedding"``; labels where it is
            missing, null or not a list are left out

    Returns:
        ``(sample_ids, label_ids, vectors)``: aligned lists of ids and an
        ``(N, D)`` float32 array (``(0, 0)`` when no label has one)

    Raises:
        ValueError: if two vectors have different lengths (names a label)
    """
    import numpy as np

    parts = list_path.split(".")
    stages = [{"$project": {f"{list_path}._id": 1, f"{list_path}.{attr}": 1}}]
    pipeline = fo_private.view_pipeline(sample_collection, stages)
    coll = fo_private.sample_collection(fo_private.view_dataset(sample_collection))
    sample_ids: list[str] = []
    label_ids: list[str] = []
    chunks = []
    for raw in coll.aggregate_raw_batches(pipeline, allowDiskUse=True):
        # decoded batch by batch: the raw vectors of all labels at once
        # would take ~6.5 KB per 512-d label
        arrays: list[bytes] = []
        first = len(label_ids)
        _walk_batch(bytes(raw), parts, attr, sample_ids, label_ids, arrays)
        if arrays:
            chunk = _decode_arrays(arrays, label_ids[first:])
            if chunks and chunk.shape[1] != chunks[0].shape[1]:
                raise ValueError(
                    f"Label {label_ids[first]}: vector of length {chunk.shape[1]}, "
                    f"others have {chunks[0].shape[1]}"
                )
            chunks.append(chunk)
    if not chunks:
        return [], [], np.zeros((0, 0), np.float32)
    return sample_ids, label_ids, np.concatenate(chunks)


def _elements(buf: bytes, start: int, end: int):
    """``(type, name, value offset, value end)`` of the BSON elements of the
    document (or array) whose bytes are ``buf[start:end]``."""
    pos = start + 4
    while pos < end - 1:
        etype = buf[pos]
        name_end = buf.index(b"\0", pos + 1)
        name = buf[pos + 1 : name_end]
        v = name_end + 1
        if etype in (0x03, 0x04):  # document, array: int32 size first
            v_end = v + int.from_bytes(buf[v : v + 4], "little")
        elif etype == 0x07:  # ObjectId
            v_end = v + 12
        elif etype == 0x01 or etype == 0x12 or etype == 0x09:  # double, int64, date
            v_end = v + 8
        elif etype == 0x10:  # int32
            v_end = v + 4
        elif etype == 0x08:  # bool
            v_end = v + 1
        elif etype in (0x0A, 0x06):  # null, undefined
            v_end = v
        elif etype == 0x02:  # string
            v_end = v + 4 + int.from_bytes(buf[v : v + 4], "little")
        else:  # anything else never appears in this projection's path
            raise ValueError(f"unexpected BSON type {etype:#x} at {name!r}")
        yield etype, name, v, v_end
        pos = v_end


def _walk_batch(buf, parts, attr, sample_ids, label_ids, arrays) -> None:
    """Appends the ids and raw array bytes of every label of a raw batch."""
    key = attr.encode()
    pos = 0
    while pos < len(buf):
        doc_end = pos + int.from_bytes(buf[pos : pos + 4], "little")
        sid = None
        level = (pos, doc_end)
        # down the embedded documents of the path to the label array
        for depth, part in enumerate(parts):
            if level is None:
                break
            nxt = None
            want = 0x04 if depth == len(parts) - 1 else 0x03
            for etype, name, v, v_end in _elements(buf, *level):
                if depth == 0 and name == b"_id" and etype == 0x07:
                    sid = buf[v:v_end].hex()
                if name == part.encode():
                    nxt = (v, v_end) if etype == want else None
            level = nxt
        if level is not None and sid is not None:
            for etype, _, v, v_end in _elements(buf, *level):
                if etype != 0x03:
                    continue
                lid = arr = None
                for ltype, lname, lv, lv_end in _elements(buf, v, v_end):
                    if lname == b"_id" and ltype == 0x07:
                        lid = buf[lv:lv_end].hex()
                    elif lname == key and ltype == 0x04:
                        arr = buf[lv:lv_end]
                if lid is not None and arr is not None:
                    sample_ids.append(sid)
                    label_ids.append(lid)
                    arrays.append(arr)
        pos = doc_end


def _decode_arrays(arrays: list[bytes], label_ids: list[str]):
    """``(N, D)`` float32 from raw BSON arrays (one layout: strided views)."""
    import numpy as np
    from bson import decode as bson_decode
    from numpy.lib.stride_tricks import as_strided

    size = len(arrays[0])
    runs = _double_runs(arrays[0])
    same = [len(a) == size for a in arrays]
    out = None
    if runs is not None:
        dim = sum(r[2] for r in runs)
        idx = [i for i, ok in enumerate(same) if ok]
        flat = np.frombuffer(b"".join(arrays[i] for i in idx), dtype=np.uint8)
        n = len(idx)
        fast = np.empty((n, dim), dtype=np.float32)
        good = np.ones(n, dtype=bool)
        col = 0
        for first, stride, count, keylen in runs:
            # element: type byte, key, NUL, 8-byte little-endian double
            types = as_strided(flat[first - keylen - 2 :], (n, count), (size, stride))
            good &= (types == 0x01).all(axis=1)
            vals = as_strided(flat[first:], (n, count, 8), (size, stride, 1))
            fast[:, col : col + count] = np.ascontiguousarray(vals).view("<f8")[..., 0]
            col += count
        out = np.empty((len(arrays), dim), dtype=np.float32)
        out[idx] = fast
        for j in np.flatnonzero(~good):
            same[idx[j]] = False
    for i in (i for i, ok in enumerate(same) if not ok):
        doc = bson_decode(arrays[i])
        v = np.asarray([np.nan if x is None else x for x in doc.values()], dtype=np.float32)
        if out is None:
            out = np.empty((len(arrays), v.shape[0]), dtype=np.float32)
        if v.shape[0] != out.shape[1]:
            raise ValueError(
                f"Label {label_ids[i]}: vector of length {v.shape[0]}, others have {out.shape[1]}"
            )
        out[i] = v
    return out


def _double_runs(arr: bytes):
    """Runs ``(first value offset, stride, count, key length)`` of an
    all-double BSON array's elements, by key length (keys "0".."9" are one
    byte, "10".."99" two, ...); None if an element is not a double."""
    runs = []
    p = 4
    while p < len(arr) - 1:
        if arr[p] != 0x01:
            return None
        key_end = arr.index(b"\0", p + 1)
        keylen = key_end - p - 1
        value = key_end + 1
        if runs and runs[-1][3] == keylen:
            first, stride, count, _ = runs[-1]
            runs[-1] = (first, stride, count + 1, keylen)
        else:
            runs.append((value, 10 + keylen, 1, keylen))
        p = value + 8
    return runs or None


def write_detections_keeping(
    sample_collection,
    field: str,
    docs: Mapping[str, dict],
    keep_attr: str,
    keep_values,
    only_if: Mapping | None = None,
) -> int:
    """Like :func:`write_docs` for label-list documents, but the labels of the
    stored list whose ``keep_attr`` is in ``keep_values`` (human decisions)
    stay, ahead of the new ones.

    The merge happens inside MongoDB (an update pipeline, atomic per
    sample), so a decision a person makes while the new labels are being
    computed is kept too; there is no read-modify-write window.

    Args:
        sample_collection: the collection whose dataset holds the samples
        field: the label-list field, e.g. ``"autolabels"``
        docs: ``{sample_id: document}`` with the new labels in the list
            (``"detections"``)
        keep_attr: the label attribute that marks labels to keep
        keep_values: the values of it that do
        only_if: a further MongoDB filter on each sample, checked in the
            same atomic update (e.g. ``{field: None}``: only samples still
            without labels, so that a retried batch never labels a sample
            twice)

    Returns:
        the number of samples written
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    if not docs:
        return 0
    keep = list(keep_values)
    ops = []
    for sid, doc in docs.items():
        list_name = next(k for k, v in doc.items() if isinstance(v, list))
        rest = {k: v for k, v in doc.items() if k != list_name}
        stored = {"$ifNull": [f"${field}.{list_name}", []]}
        kept = {"$filter": {"input": stored, "as": "l", "cond": {"$in": [f"$$l.{keep_attr}", keep]}}}
        merged = {"$mergeObjects": [
            {"$literal": rest},
            {list_name: {"$concatArrays": [kept, {"$literal": doc[list_name]}]}},
        ]}
        ops.append(UpdateOne({"_id": ObjectId(sid), **(only_if or {})},
                             [{"$set": {field: merged, "last_modified_at": "$$NOW"}}]))
    return _bulk_write(sample_collection, ops, list(docs))
