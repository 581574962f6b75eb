"""Threat: run records that lie, and writers whose clocks disagree.

- A run that ends while the database is gone, in a process that lives on
  (an App server runs many runs), used to say ``running`` forever: the
  process-id check saw its process alive. Runs now stamp a heartbeat with
  the database's clock; one whose heartbeat is older than the limit is
  marked ``stale`` (by the database's clock).
- Host identity by a CRC of the host name made a live run in another
  container with the same host name look like a dead process here, and
  marked it ``killed``. The id now covers the PID namespace and boot, and a
  run with a fresh heartbeat is never marked.
- ``last_modified_at`` written by Stoplight comes from the database's clock,
  not the writing process's.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
import types
import uuid
import zlib
import socket

import fiftyone as fo
import pymongo.errors
import pytest

from stoplight.plugins.common import bulk, owner, provenance
from stoplight.plugins.review import decisions, label_states


def _db():
    import fiftyone.core.odm.database as fod

    return fod.get_db_conn()


def _db_now():
    now = _db().command("hello")["localTime"]
    return now.replace(tzinfo=None) if now.tzinfo else now


def _status(ds, key):
    ds.reload()
    return ds.get_run_info(key).config.status


def _beat(ds, key, at=None):
    """Stamps (or sets) a run's heartbeat document directly, as the run's
    own process would."""
    coll = _db()["stoplight_runs.heartbeats"]
    hid = f"{ds._doc.id}:{key}"
    if at is None:
        coll.update_one({"_id": hid}, {"$currentDate": {"at": True}}, upsert=True)
    else:
        coll.update_one({"_id": hid}, {"$set": {"at": at}}, upsert=True)


@pytest.fixture()
def ds():
    d = fo.Dataset(f"stoplight-runs-{uuid.uuid4().hex[:8]}")
    yield d
    d.delete()


def test_a_run_that_ended_with_the_database_gone_is_marked_stale(ds, monkeypatch):
    monkeypatch.setenv("STOPLIGHT_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("STOPLIGHT_RUN_STALE_S", "10")
    alive = provenance.start_run(ds, "alive", method="test")
    record = provenance.start_run(ds, "gone", method="test")
    with pytest.raises(pymongo.errors.AutoReconnect):
        with provenance.recorded_run(ds, "gone", record, lambda status: {"status": status}):
            raise pymongo.errors.AutoReconnect("the database went away")  # no end recorded
    assert _status(ds, "gone") == "running"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _beat(ds, "alive")  # this process keeps that one beating
        if provenance.mark_dead_runs(ds):
            break
        time.sleep(0.5)
    assert _status(ds, "gone") == "stale", "a run that cannot record its end says 'running' forever"
    assert _status(ds, "alive") == "running"
    provenance.finish_run(ds, "alive", alive, {"status": "completed"})
    assert _status(ds, "alive") == "completed"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(60)
    return proc.pid


def test_a_live_run_in_another_container_with_the_same_host_name_is_left_alone(ds):
    # what a container with this host name recorded before: CRC32 of the
    # name; its process id means nothing here
    crc = f"{zlib.crc32(socket.gethostname().encode()):08x}"
    for key in ("other_live", "other_dead"):
        ds.register_run(key, ds.init_run(stoplight_method="x", status="running", host=crc, pid=_dead_pid(),
                                         started_at=datetime.datetime.now(datetime.timezone.utc).isoformat()))
    _beat(ds, "other_live")  # it is beating: alive, wherever it is
    _beat(ds, "other_dead", at=_db_now() - datetime.timedelta(hours=1))
    marked = provenance.mark_dead_runs(ds)
    assert _status(ds, "other_live") == "running", "a live run elsewhere was marked"
    assert marked == ["other_dead"] and _status(ds, "other_dead") == "stale"


def test_the_host_id_covers_the_pid_namespace(monkeypatch):
    import os

    mine = owner.host_id()
    assert len(mine) == 16 and mine != owner.legacy_host_id()
    real_stat = os.stat

    def other_namespace(path, *args, **kwargs):
        out = real_stat(path, *args, **kwargs)
        if str(path) == "/proc/self/ns/pid":
            return types.SimpleNamespace(st_ino=out.st_ino + 1)
        return out

    monkeypatch.setattr(os, "stat", other_namespace)
    assert owner.host_id() != mine  # same host name, another container


def test_a_killed_process_of_this_host_is_still_noticed_at_once(ds):
    ds.register_run("dead", ds.init_run(stoplight_method="x", status="running", host=owner.host_id(),
                                        pid=_dead_pid(), started_at="2020-01-01T00:00:00+00:00"))
    _beat(ds, "dead")  # even with a fresh heartbeat: its process is gone
    assert provenance.mark_dead_runs(ds) == ["dead"] and _status(ds, "dead") == "killed"


class _FarFuture(datetime.datetime):
    """A process clock 75 years ahead."""

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2100, 1, 1, tzinfo=tz)

    @classmethod
    def utcnow(cls):
        return datetime.datetime(2100, 1, 1)


def test_last_modified_at_comes_from_the_database_clock(ds, monkeypatch):
    shim = types.SimpleNamespace(datetime=_FarFuture, timezone=datetime.timezone, timedelta=datetime.timedelta)
    for module in (bulk, decisions, label_states):
        monkeypatch.setattr(module, "datetime", shim, raising=False)
    ds.add_sample(fo.Sample(filepath="/tmp/x.jpg", autolabels=fo.Detections(
        detections=[fo.Detection(label="a", bounding_box=[0, 0, 1, 1])])))
    sid = ds.first().id
    lid = ds.first().autolabels.detections[0].id
    writes = {
        "review": lambda: decisions.review_labels(ds, "autolabels", "accept", label_ids=[lid], user="alice"),
        "label attrs": lambda: bulk.write_label_attrs(ds, "autolabels.detections", [sid], [lid], {"x": [1.0]}),
        "docs": lambda: bulk.write_docs(ds, "other", {sid: None}),
        "merge": lambda: bulk.write_detections_keeping(
            ds, "autolabels", {sid: {"_cls": "Detections", "detections": []}}, "review", ("accepted",)),
    }
    for what, write in writes.items():
        write()
        stamp = ds._sample_collection.find_one({}, {"last_modified_at": 1})["last_modified_at"]
        assert abs((stamp - _db_now()).total_seconds()) < 120, f"{what}: stamped {stamp} (the process clock)"


def test_a_run_whose_summary_fails_stops_beating(ds, monkeypatch):
    """The end cannot be recorded when building the summary fails: the
    record then says ``running``, so its heartbeat must stop too, or the
    process (an App server) would vouch for it for as long as it lives."""
    monkeypatch.setenv("STOPLIGHT_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("STOPLIGHT_RUN_STALE_S", "2")
    record = provenance.start_run(ds, "broken_summary", method="test")

    def summary(status):
        raise KeyError("a bug in the summary")

    with pytest.raises(KeyError):
        with provenance.recorded_run(ds, "broken_summary", record, summary):
            pass
    assert _status(ds, "broken_summary") == "running"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not provenance.mark_dead_runs(ds):
        time.sleep(0.5)
    assert _status(ds, "broken_summary") == "stale", "a run that did not record its end keeps beating"
