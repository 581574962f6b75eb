"""Database faults (issue 7, item 5): MongoDB stopped in the middle of a run.

Each test starts its own ``mongod`` (the session's stays up), runs a victim
(:mod:`crash_victim`, forked) pointed at it, pauses the victim at a progress
event, stops that ``mongod`` (SIGKILL: a crash, or SIGTERM: a clean
shutdown), lets the victim go on, and checks:

- the victim fails with a clear error that names the database, the dataset
  and how to resume, within the configured server-selection timeout;
- after ``mongod`` restarts on the same data directory, the stored state is
  whole (each sample's labels written entirely or not at all) and a resumed
  run finishes the job exactly once.

The state is read with pymongo straight from the private database.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import imagekit
from conftest import _mongod_path
from conftest import free_port as _free_port
from victims import Victim, forkserver, run_to_completion  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

LABELS = "autolabels"
CLASSES = ["person", "bus"]
N_IMAGES = 16
#: how long a victim waits for a vanished server (pymongo's default is 30 s)
TIMEOUT_MS = 3000


# ------------------------------------------------- a mongod of the test's own


class PrivateMongod:
    """A ``mongod`` on 127.0.0.1 that can be stopped and restarted on its data."""

    def __init__(self, root: Path):
        self.dbpath = root / "db"
        self.dbpath.mkdir(parents=True)
        self.logpath = root / "mongod.log"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return (
            f"mongodb://{self.address}/?serverSelectionTimeoutMS={TIMEOUT_MS}"
            f"&connectTimeoutMS={TIMEOUT_MS}"
        )

    def start(self) -> None:
        log = open(self.logpath, "a")
        self.proc = subprocess.Popen(
            [_mongod_path(), "--dbpath", str(self.dbpath), "--bind_ip", "127.0.0.1",
             "--port", str(self.port), "--nounixsocket"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mongod exited early; see {self.logpath}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("mongod did not start within 60 s")

    def stop(self, sig=signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(60)

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.uri)


@pytest.fixture(scope="module")
def mongod(tmp_path_factory):
    """One private mongod for the module; each test uses its own database
    and leaves the server running."""
    server = PrivateMongod(tmp_path_factory.mktemp("private-mongod"))
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory):
    from PIL import Image

    out = tmp_path_factory.mktemp("dbfault-images")
    photos = [Image.open(p).convert("RGB") for p in imagekit.photo_paths()]
    paths = []
    for i in range(N_IMAGES):
        im = photos[i % len(photos)]
        w, h = im.size
        crop = im.crop(((i * 41) % (w // 3), 0, (i * 41) % (w // 3) + w // 2, h // 2)).resize((160, 120))
        paths.append(str(out / f"img{i:02d}.jpg"))
        crop.save(paths[-1], quality=90)
    return paths


def _sample_docs(server: PrivateMongod, db_name: str, dataset: str) -> list[dict]:
    with server.client() as client:
        db = client[db_name]
        coll = db["datasets"].find_one({"name": dataset})["sample_collection_name"]
        return list(db[coll].find({}, sort=[("_id", 1)]))


def _run_statuses(server, db_name, dataset) -> list[str]:
    with server.client() as client:
        db = client[db_name]
        runs = db["datasets"].find_one({"name": dataset}).get("runs", {})
        return sorted(db["runs"].find_one({"_id": rid})["config"]["status"] for rid in runs.values())


def _stop_while_paused(victim: Victim, server: PrivateMongod, sig) -> str:
    """Stops ``mongod`` while the victim sleeps at its pause; returns the
    victim's error message."""
    while (msg := victim.next()) is not None and msg[0] != "held":
        pass
    assert msg == ("held", "event"), f"the victim ended before the pause: {victim.end}"
    # mongod acknowledges a write (w=1, FiftyOne's default) before its journal
    # is flushed, every 100 ms: a crash loses the last ~100 ms of writes
    # (which a resume simply redoes). Waiting past that makes the count of
    # samples stored at the crash exact.
    time.sleep(0.5)
    server.stop(sig)
    t0 = time.monotonic()
    end = victim.wait_end(timeout=120)
    waited = time.monotonic() - t0
    assert end is not None and end[0] == "error", f"the victim did not fail: {end}"
    print(f"victim failed {waited:.1f} s after mongod stopped: {end[1]}")
    return end[1]


# -------------------------------------------------------------------- labeling


def test_labeling_with_mongod_killed_mid_run_fails_clearly_and_resumes_exactly_once(
    forkserver, mongod, image_paths, tiny_checkpoint
):
    db_name = f"dbfault-{uuid.uuid4().hex[:8]}"
    dataset = "photos"
    job = dict(dataset=dataset, database_uri=mongod.uri, database_name=db_name,
               checkpoint=tiny_checkpoint("owlv2"), step="label", batch_size=2, write_every=2)
    run_to_completion(forkserver, dict(job, step="create", create_from=image_paths))

    victim = Victim(forkserver, dict(job, pause_at_event=4, pause_s=2.5))
    message = _stop_while_paused(victim, mongod, signal.SIGKILL)
    assert message.startswith("DatabaseUnavailableError: Lost the connection to the MongoDB database")
    assert f"of dataset '{dataset}'" in message and f"field '{LABELS}'" in message
    assert mongod.address in message  # which server
    assert "re-run with overwrite=False" in message
    assert "Topology Description" not in message  # pymongo's page-long tail is cut

    mongod.start()  # same data directory: journal recovery after the crash
    docs = _sample_docs(mongod, db_name, dataset)
    assert len(docs) == N_IMAGES
    before = {}
    for doc in docs:
        if doc.get(LABELS) is None:
            continue
        dets = doc[LABELS]["detections"]
        assert all(len(d["class_scores"]) == len(CLASSES) and d["label"] in CLASSES for d in dets)
        before[doc["_id"]] = [d["_id"] for d in dets]
    # the pause came after 3 batches of 2, written every 2 samples
    assert len(before) == 6, sorted(before)
    # the killed run could not record its end: it still says "running"
    assert _run_statuses(mongod, db_name, dataset) == ["running"]

    run_to_completion(forkserver, job)
    after = _sample_docs(mongod, db_name, dataset)
    seen = []
    for doc in after:
        assert doc.get(LABELS) is not None, f"sample {doc['_id']} never labeled"
        ids = [d["_id"] for d in doc[LABELS]["detections"]]
        if doc["_id"] in before:
            assert ids == before[doc["_id"]], f"sample {doc['_id']} labeled twice"
        seen += ids
    assert len(seen) == len(set(seen))
    # the next run on the dataset marked the dead one "killed"
    assert _run_statuses(mongod, db_name, dataset) == ["completed", "killed"]


# ------------------------------------------------------------------- embedding


@pytest.fixture(scope="module")
def clip_ckpt(tmp_root):
    from stoplight.plugins.scoring import embeddings as E

    return E.build_random_clip(str(tmp_root / "checkpoints" / "clip-dbfault"))


@pytest.fixture(scope="module")
def embedding_fault(forkserver, mongod, image_paths, clip_ckpt):
    """An embedding run whose mongod is shut down (SIGTERM) mid-run, then
    restarted and resumed: ``(message, labels before, labels after)``."""
    db_name = f"dbfault-{uuid.uuid4().hex[:8]}"
    dataset = "photos"
    name, ckpt = clip_ckpt
    job = dict(dataset=dataset, database_uri=mongod.uri, database_name=db_name, step="embed",
               model_name=name, pretrained=ckpt, batch_size=6, write_every=6)
    run_to_completion(forkserver, dict(job, step="create", create_from=image_paths, with_labels=True))

    victim = Victim(forkserver, dict(job, pause_at_event=6, pause_s=2.5))
    message = _stop_while_paused(victim, mongod, signal.SIGTERM)
    mongod.start()

    def labels():
        return {d["_id"]: d.get("embedding") for doc in _sample_docs(mongod, db_name, dataset)
                for d in doc[LABELS]["detections"]}

    before = labels()
    run_to_completion(forkserver, job)
    return message, before, labels()


def test_embedding_with_mongod_stopped_mid_run_resumes_exactly_once(embedding_fault):
    _, before, after = embedding_fault
    done = {k: v for k, v in before.items() if v is not None}
    assert 0 < len(done) < len(before) == 3 * N_IMAGES
    assert set(after) == set(before)  # no label added or lost
    for lid, vec in after.items():
        assert vec is not None and len(vec) == 32, f"label {lid} has no embedding"
        if lid in done:
            assert vec == done[lid], f"label {lid} embedded twice"


def test_embedding_with_mongod_stopped_mid_run_fails_clearly(embedding_fault):
    message, _, _ = embedding_fault
    assert "database" in message.lower() and "photos" in message and "overwrite=False" in message
