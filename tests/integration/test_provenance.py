"""Run records of processes that died: marked ``killed`` by the next run.

A run ended by SIGKILL cannot record its end. Here a real child process
registers a run and is killed; the next ``start_run`` on the dataset must
mark that record ``killed`` and leave alone the records of live processes,
of other hosts, and of finished runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import fiftyone as fo

from stoplight.plugins.common import owner, provenance

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {examples!r})
    from stoplight_import import import_stoplight
    import_stoplight()
    import fiftyone as fo
    from stoplight.plugins.common import provenance
    ds = fo.load_dataset(sys.argv[1])
    provenance.start_run(ds, sys.argv[2], method="test_child")
    print("registered", flush=True)
    if sys.argv[3] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
""")


def _child(ds, key, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(examples=str(REPO / "examples")), ds.name, key, mode],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "registered"
    return proc


def _status(ds, key):
    ds.reload()
    return ds.get_run_info(key).config.status


def test_dead_runs_are_marked_killed_and_nothing_else_changes():
    ds = fo.Dataset()
    ds.persistent = True  # the children load it by name
    try:
        dead = _child(ds, "dead", "die")
        dead.wait(60)
        assert dead.returncode == -signal.SIGKILL
        live = _child(ds, "live", "sleep")
        # a record from another host (cannot be checked: left alone), and a
        # record of this host whose pid was reused by a live process
        ds.register_run("elsewhere", ds.init_run(stoplight_method="x", status="running",
                                                 host="0000beef", pid=dead.pid))
        ds.register_run("reused", ds.init_run(stoplight_method="x", status="running",
                                              host=owner.host_id(), pid=live.pid,
                                              pid_started=owner.process_started(live.pid) - 100))
        finished = provenance.start_run(ds, "finished", method="x")
        provenance.finish_run(ds, "finished", finished, {"status": "completed", "num_x": 3})
        assert _status(ds, "dead") == "killed"  # start_run of "finished" noticed it
        assert _status(ds, "reused") == "killed"
        assert _status(ds, "live") == "running"
        assert _status(ds, "elsewhere") == "running"
        assert _status(ds, "finished") == "completed"
        info = ds.get_run_info("dead").config
        # the rest of the record is kept
        assert info.stoplight_method == "test_child" and info.pid == dead.pid
        assert info.noticed_dead_at is not None

        live.kill()
        live.wait(60)
        assert provenance.mark_dead_runs(ds) == ["live"]
        assert provenance.mark_dead_runs(ds) == []  # idempotent
    finally:
        for p in (locals().get("live"),):
            if p is not None and p.poll() is None:
                p.kill()
        ds.delete()


def test_run_results_load_safely_from_many_threads():
    """The App server answers panel events in threads that share one
    dataset: FiftyOne's own concurrent loads of one run's results interleave
    reads of one GridFS handle (most of 80 failed here with "'str' object
    has no attribute 'decode'"); :func:`provenance.load_run_results` must
    return every one whole."""
    import threading

    ds = fo.Dataset()
    try:
        cfg = ds.init_run()
        ds.register_run("r", cfg)
        ds.save_run_results("r", ds.init_run_results("r", calibration={"x": list(range(20_000))}))
        errors, loaded = [], []

        def load():
            try:
                loaded.append(len(provenance.load_run_results(ds, "r", cache=False).calibration["x"]))
            except Exception as e:  # noqa: BLE001 - the test collects every failure
                errors.append(repr(e))

        for _ in range(20):
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert errors == []
        assert loaded == [20_000] * 80
    finally:
        ds.delete()
