"""The database server's clock: the one clock every writer agrees on.

Workers on several machines (and the App server) disagree about the time;
times Stoplight compares across processes (``last_modified_at`` stamps,
heartbeats) come from MongoDB instead (``$currentDate``, ``$$NOW``, or
:func:`db_now` where a value is needed in Python).
"""

from __future__ import annotations

import datetime


def db_now() -> datetime.datetime:
    """The database server's current time (naive UTC, like FiftyOne's)."""
    import fiftyone.core.odm.database as fod

    now = fod.get_db_conn().command("hello")["localTime"]
    return now.replace(tzinfo=None) if now.tzinfo else now
