"""Results Stoplight stores beside FiftyOne's documents in its database,
to be reused later: one collection per kind of result, one document per
string key (e.g. ``"<dataset id>/<label field>/cells"``).

Storing only ever saves time: a result that cannot be written (a
read-only database user) is logged and computed again next time.
"""

from __future__ import annotations

import logging
import re

import pymongo.errors

logger = logging.getLogger(__name__)


def collection(name: str):
    """The ``pymongo`` collection ``name`` of FiftyOne's database."""
    from fiftyone.core.odm.database import get_db_conn

    return get_db_conn()[name]


def read(name: str, key: str, fields: dict | None = None) -> dict | None:
    """The document stored under ``key`` in ``name`` (only ``fields``, a
    projection, when given), or None."""
    return collection(name).find_one({"_id": key}, fields)


def write(name: str, key: str, doc: dict) -> bool:
    """Stores ``doc`` under ``key`` in ``name``, replacing what was there.

    Returns:
        whether it was stored (a database error is logged, not raised)
    """
    try:
        collection(name).replace_one({"_id": key}, doc, upsert=True)
    except pymongo.errors.PyMongoError as e:
        logger.warning("Results '%s' not stored: %s", key, e)
        return False
    return True


def forget(name: str, prefix: str) -> int:
    """Deletes the documents of ``name`` whose key starts with ``prefix``.

    Returns:
        the number of documents deleted
    """
    return collection(name).delete_many({"_id": {"$regex": f"^{re.escape(prefix)}"}}).deleted_count
