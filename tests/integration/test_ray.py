"""Scale-out on Ray (issue 21), on a real two-node cluster on this machine.

The cluster (:mod:`ray_cluster`): a head node and a second node, each a
separate ``ray start`` process tree with 1 CPU, so that a pool of two
actors puts one actor on each node. Runs connect to it the way users'
runs do (``RayExecutor(address=...)``: Stoplight ships its code and the
database settings to the actors). Checked: labels and embeddings written
by actors on both nodes equal what the local pipeline writes; a node
SIGKILLed mid-run, a batch that kills every worker process it reaches, a
batch that never finishes, a cluster too small for one actor, an address
nobody answers at, all end with every sample handled once and nothing a
person decided touched, or with a clear error within a deadline.

Everything waits on conditions (progress events, the database, the
cluster's node list) with generous deadlines: the machine is loaded.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import fiftyone as fo
import numpy as np
import pytest

from ray_cluster import LocalCluster, free_port, private_auth

# Ray reads its authentication settings when imported: the test cluster's
# own token, set before that (never the user's ~/.ray/auth_token)
AUTH = private_auth()
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ.update(AUTH)
ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray[data] (tests/requirements.txt)")

from stoplight.plugins.autolabel.pipeline import zero_shot_detect  # noqa: E402
from stoplight.plugins.common.ray_executor import RayExecutor, RayRunError  # noqa: E402

pytestmark = pytest.mark.slow

BACKEND = "owlv2"
CLASSES = ["person", "bus"]


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, 1 CPU each; stopped even if a test fails."""
    with LocalCluster(cpus=1, auth=AUTH) as c:
        c.add_node()
        c.connect()
        try:
            c.wait_for_nodes(2)
        finally:
            ray.shutdown()
        yield c


@pytest.fixture()
def two_nodes(cluster):
    """The cluster with its second node alive (started again after a kill);
    ``cluster.ids`` maps each alive node to its Ray node id."""
    if len(cluster.nodes) < 2 or not cluster.nodes[-1].alive():
        cluster.add_node()
    cluster.connect()
    try:
        cluster.wait_for_nodes(2)
        cluster.ids = {node: cluster.node_id(node) for node in cluster.nodes if node.alive()}
    finally:
        ray.shutdown()
    return cluster


@pytest.fixture()
def kill_second_node(two_nodes, monkeypatch):
    """``arm(after, snapshot)``: during the next Ray run, once both nodes
    have returned work and ``after`` rows are done, SIGKILL every process of
    the second node (the driver is attached to the head) and store
    ``snapshot()`` of what was written then. Returns what it saw."""
    import sys

    from fiftyone.operators.registry import OperatorRegistry

    seen: dict = {}

    def arm(after: int, snapshot):
        victim = two_nodes.nodes[-1]
        victim_id = two_nodes.ids[victim]
        OperatorRegistry().list_operators()  # the operators' own copy of the plugin, loaded
        copies = [m for name, m in list(sys.modules.items())
                  if name.endswith(".plugins.common.ray_executor") and m is not None]
        for module in copies:  # the SDK's (stoplight.*) and the operators' copy
            real_count = module.RayRun.count

            def count(run, out, real_count=real_count):
                real_count(run, out)  # the run's own tally of outcome batches
                if seen or victim_id not in run.nodes or sum(run.workers.values()) < after:
                    return
                assert run.driver_node != victim_id, "the driver is attached to the node to kill"
                two_nodes.kill(victim)
                seen.update(at=sum(run.workers.values()), snapshot=snapshot())

            monkeypatch.setattr(module.RayRun, "count", count)
        return seen

    return arm


def _stoplight_workers(cluster) -> list[int]:
    """The Stoplight actor processes alive on the cluster's nodes."""
    from ray_cluster import session_pids

    out = []
    for node in cluster.nodes:
        for pid in session_pids(node.sid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"StoplightWorker" in f.read():
                        out.append(pid)
            except OSError:
                pass
    return out


def _wait_until(cond, what: str, timeout: float = 180.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.5)


def _dataset(image_dir, n: int) -> fo.Dataset:
    paths = sorted(str(p) for p in image_dir.glob("*.*"))
    ds = fo.Dataset(f"stoplight-ray-{uuid.uuid4().hex[:8]}")
    ds.add_samples([fo.Sample(filepath=p) for p in (paths * (n // len(paths) + 1))[:n]])
    return ds


@pytest.fixture()
def images(image_dir):
    made = []

    def make(n):
        made.append(_dataset(image_dir, n))
        return made[-1]

    yield make
    for ds in made:
        if fo.dataset_exists(ds.name):
            ds.delete()


def _labels(ds, field="autolabels") -> dict:
    """``{sample id: [(label id, label, box, review)]}``."""
    ds.reload()
    out = {}
    for sid, dets in zip(*ds.values(["id", field])):
        out[sid] = None if dets is None else [
            (d.id, d.label, tuple(round(v, 6) for v in d.bounding_box), d.get_field("review")
             if d.has_field("review") else None)
            for d in dets.detections
        ]
    return out


def _same_predictions(got: list, want: list, with_review: bool = True) -> bool:
    """Whether two samples' labels (of :func:`_labels`, ids aside) are the
    same predictions. Boxes agree to 1e-5: a Ray actor and this process may
    sum in another order (their own thread pools), which moves the 6th
    decimal; a different prediction moves far more."""
    key = (lambda x: (x[1], x[3])) if with_review else (lambda x: x[1])
    return len(got) == len(want) and all(
        key(g) == key(w) and np.allclose(g[2], w[2], rtol=0, atol=1e-5) for g, w in zip(got, want)
    )


def _detect(ds, tiny_checkpoint, **kw):
    params = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES,
                  confidence_threshold=0.0, device="cpu", progress=False)
    return zero_shot_detect(ds, **dict(params, **kw))


def _decide(ds, field="autolabels") -> dict:
    """Accepts the first label of the first sample, rejects that of the
    second (as the review operator stores them); returns their ids."""
    ds.reload()
    decided = {}
    for sample, decision in zip(ds.limit(2), ("accepted", "rejected")):
        det = sample[field].detections[0]
        det["review"] = decision
        det["reviewed_by"] = "alice"
        sample.save()
        decided[det.id] = decision
    return decided


def test_labeling_on_two_nodes_interrupted_resumed_overwritten(two_nodes, images,
                                                               tiny_checkpoint, monkeypatch):
    """A run stopped after its first batch ends its Ray job and actors and
    keeps what was written; the resumed run (the App's immediate operator)
    labels the rest once; an overwrite over decided labels writes what the
    local pipeline writes, keeping the decisions. Actors on both nodes take
    part."""
    import fiftyone.operators as foo

    from stoplight.plugins.autolabel.pipeline import iter_zero_shot_detect

    n = 24
    local, distributed = images(n), images(n)
    ex = RayExecutor(address=two_nodes.address, actors=2)
    params = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES,
                  confidence_threshold=0.0, device="cpu", batch_size=2)

    gen = iter_zero_shot_detect(distributed, executor=ex, **params)
    for p in gen:
        if p.done > 0:
            break
    gen.close()  # as a cancelled operator does
    (first,) = distributed.list_runs()
    assert distributed.get_run_info(first).config.status == "interrupted"
    _wait_until(lambda: not _stoplight_workers(two_nodes), "an actor outlived its run")
    partial = {sid: v for sid, v in _labels(distributed).items() if v is not None}
    assert partial, "the first batch's labels were not kept"

    monkeypatch.setenv("STOPLIGHT_RAY_ADDRESSES", two_nodes.address)
    result = foo.execute_operator(
        "@stoplight/autolabel/zero_shot_detect",
        ctx={"dataset": distributed, "params": dict(
            params, executor="ray", ray_address=two_nodes.address, ray_actors=2)},
    )
    assert result.error is None, result.error
    (key,) = set(distributed.list_runs()) - {first}
    resumed = distributed.get_run_info(key).config
    assert resumed.status == "completed" and resumed.executor == "ray"
    assert resumed.num_skipped_samples == len(partial)
    assert resumed.num_processed_samples == n - len(partial)
    after = _labels(distributed)
    assert all(after[sid] == labels for sid, labels in partial.items())  # same label ids

    _detect(local, tiny_checkpoint, batch_size=2)
    decided = _decide(distributed)
    _decide(local)
    summary = _detect(distributed, tiny_checkpoint, batch_size=2, overwrite=True, executor=ex)
    expected = _detect(local, tiny_checkpoint, batch_size=2, overwrite=True)
    got, want = _labels(distributed), _labels(local)
    # built alike: the i-th samples of both hold the same image
    for g, w in zip(got.values(), want.values()):
        assert _same_predictions(g, w), (g, w)
    kept = {x[0]: x[3] for labels in got.values() for x in labels if x[3]}
    assert kept == decided  # the same labels, same ids, same decisions
    for key in ("num_processed_samples", "num_labels", "num_kept_decisions"):
        assert summary[key] == expected[key], key
    assert summary["num_processed_samples"] == n and summary["num_failed_samples"] == 0
    assert summary["num_kept_decisions"] == 2
    assert summary["num_ray_nodes"] == 2 and summary["num_ray_workers"] == 2
    cfg = distributed.get_run_info(summary["run_key"]).config
    assert cfg.status == "completed" and cfg.executor == "ray"
    assert cfg.num_ray_nodes == 2 and cfg.num_processed_samples == n


def test_a_node_killed_mid_run_every_sample_labeled_once(two_nodes, images, tiny_checkpoint,
                                                        kill_second_node):
    """SIGKILL of every process of the second node while its actor labels:
    Ray retries its batches elsewhere; what it wrote stays as written; every
    sample ends labeled once; the decided labels stay as they are."""
    n = 60
    ds, reference = images(n), images(n)
    _detect(reference, tiny_checkpoint, batch_size=2)
    # a few samples a person already reviewed: skipped, never touched
    _detect(ds.limit(4), tiny_checkpoint)
    _decide(ds)
    before_run = {sid: v for sid, v in _labels(ds).items() if v is not None}
    killed = kill_second_node(
        8, lambda: {sid: v for sid, v in _labels(ds).items() if v is not None}
    )

    summary = _detect(ds, tiny_checkpoint, batch_size=2,
                      executor=RayExecutor(address=two_nodes.address, actors=2))
    assert killed, "the run ended before both nodes had labeled"
    assert killed["at"] < n - 4, "the node was killed too late to matter"

    after = _labels(ds)
    assert all(v is not None for v in after.values()), "a sample was left unlabeled"
    for sid, labels in killed["snapshot"].items():
        assert after[sid] == labels  # written before the kill: kept as written (same ids)
    for sid, labels in before_run.items():
        assert after[sid] == labels  # reviewed before the run: untouched
    ids = [x[0] for labels in after.values() for x in labels]
    assert len(ids) == len(set(ids))
    # each sample holds the model's labels once: as the local run wrote them
    for (sid, got), want in zip(after.items(), _labels(reference).values()):
        if sid not in before_run:
            assert _same_predictions(got, want, with_review=False), (got, want)
    assert summary["num_failed_samples"] == 0
    assert summary["num_processed_samples"] + summary["num_skipped_samples"] == n
    assert summary["num_ray_nodes"] == 2
    assert ds.get_run_info(summary["run_key"]).config.status == "completed"


def _fifo_killer(fifo: str, stop: threading.Event, kills: list) -> threading.Thread:
    """SIGKILLs every process that reads ``fifo``: a sample that crashes
    whichever worker process reads it, every time.

    A reader blocks in open() until a writer comes: the killer's
    non-blocking open for writing succeeds only then; the reader's open
    returns, its descriptor names the FIFO, and the reader is killed before
    the killer closes its end (so it never reads an empty file instead)."""
    target = os.path.realpath(fifo)

    def readers() -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        found.append(int(pid))
                        break
                except OSError:
                    pass
        return found

    def run():
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                time.sleep(0.1)
                continue
            try:
                deadline = time.time() + 60
                victims = readers()
                while not victims and time.time() < deadline:
                    time.sleep(0.05)
                    victims = readers()
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)  # a dying process may be found twice: count pids
                # the write end stays open until the victims are dead (a reader
                # must never see an empty file instead)
                while set(victims) & set(readers()) and time.time() < deadline:
                    time.sleep(0.05)
            finally:
                os.close(fd)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_sample_that_kills_every_worker_is_one_failure(two_nodes, images, tiny_checkpoint,
                                                        tmp_path):
    """A sample whose reading kills the process every time: after bounded
    retries it is recorded as a failure, its batch-mates are labeled, and
    the run completes (the home-made queue let such a chunk kill every
    worker in turn)."""
    ds = images(9)
    fifo = str(tmp_path / "poison.jpg")
    os.mkfifo(fifo)
    poison = fo.Sample(filepath=fifo)
    ds.add_sample(poison)
    stop, kills = threading.Event(), []
    killer = _fifo_killer(fifo, stop, kills)
    try:
        summary = _detect(ds, tiny_checkpoint, batch_size=5,
                          executor=RayExecutor(address=two_nodes.address, actors=2, max_retries=0))
    finally:
        stop.set()
        killer.join(10)
    labels = _labels(ds)
    assert labels.pop(poison.id) is None
    assert all(v is not None for v in labels.values()), "a batch-mate of the poison was not labeled"
    assert summary["num_processed_samples"] == 9 and summary["num_failed_samples"] == 1
    (failure,) = summary["failures"]
    assert failure["sample_id"] == poison.id and failure["filepath"] == fifo
    assert "died" in failure["error"]
    # once with its batch (max_retries=0), once alone: bounded
    assert len(set(kills)) == 2 * (1 + 0), kills
    assert ds.get_run_info(summary["run_key"]).config.status == "completed"


def test_deadlines_and_clear_errors(two_nodes, images, tiny_checkpoint):
    """A run never waits forever: no batch done in time, a cluster too small
    for one actor, an address nobody answers at: each a clear error, and
    the record of the stopped run says so."""
    ds = images(4)
    with pytest.raises(RayRunError, match="ray_start_timeout_s"):
        _detect(ds, tiny_checkpoint, executor=RayExecutor(address=two_nodes.address,
                                                          start_timeout_s=1))
    (key,) = ds.list_runs()
    assert ds.get_run_info(key).config.status == "failed"

    with pytest.raises(RayRunError, match="No node of the Ray cluster can hold one actor"):
        _detect(ds, tiny_checkpoint, device=None,
                executor=RayExecutor(address=two_nodes.address, gpus_per_actor=1))
    with pytest.raises(RayRunError, match="No Ray cluster answers at 127.0.0.1:"):
        _detect(ds, tiny_checkpoint, executor=RayExecutor(address=f"127.0.0.1:{free_port()}"))
    assert ds.count("autolabels") == 0
    # the stopped run's Ray job ended with its driver: no actor is left behind
    _wait_until(lambda: not _stoplight_workers(two_nodes), "an actor outlived its run")


# ------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def tiny_clip(tmp_root):
    from stoplight.plugins.scoring.embeddings import build_random_clip

    return build_random_clip(str(tmp_root / "checkpoints" / "clip-ray"))


def _labeled(ds, tiny_checkpoint, per_image=2):
    """``ds`` labeled by the local pipeline, ``per_image`` labels each."""
    _detect(ds, tiny_checkpoint)
    dets = ds.values("autolabels")
    for d in dets:
        d.detections = d.detections[:per_image]
    ds.set_values("autolabels", dets)
    return ds


def _embeddings(ds) -> dict:
    """``{label id: embedding or None}``."""
    ds.reload()
    return {d.id: (d.get_field("embedding") if d.has_field("embedding") else None)
            for dets in ds.values("autolabels") for d in dets.detections}


def test_embeddings_with_a_node_killed_from_the_delegated_operator(
    two_nodes, images, tiny_checkpoint, tiny_clip, monkeypatch, kill_second_node
):
    """``compute_label_embeddings`` queued as a delegated operation with
    executor='ray': actors on both nodes, the second node SIGKILLed mid-run;
    every label embedded once (what the dead node wrote stays), vectors equal
    to the local run's, review decisions untouched, the run's record is what
    score_labels reads."""
    import numpy as np

    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from stoplight.plugins.scoring.embeddings import compute_label_embeddings
    from stoplight.plugins.scoring.scores import latest_embeddings_run

    n = 40
    ds, reference = _labeled(images(n), tiny_checkpoint), _labeled(images(n), tiny_checkpoint)
    decided = _decide(ds)
    name, ckpt = tiny_clip
    compute_label_embeddings(reference, model_name=name, pretrained=ckpt, device="cpu",
                             progress=False)
    monkeypatch.setenv("STOPLIGHT_RAY_ADDRESSES", two_nodes.address)

    killed = kill_second_node(
        8, lambda: {k: v for k, v in _embeddings(ds).items() if v is not None}
    )
    params = dict(label_field="autolabels", model_name=name, pretrained=ckpt, device="cpu",
                  batch_size=4, delegate=True, executor="ray", ray_address=two_nodes.address,
                  ray_actors=2)
    result = foo.execute_operator("@stoplight/autolabel/compute_label_embeddings",
                                  ctx={"dataset": ds, "params": params}, request_delegation=True)
    assert result.delegated
    DelegatedOperationService().execute_queued_operations(dataset_name=ds.name)
    (op,) = DelegatedOperationService().list_operations(dataset_name=ds.name)
    assert op.run_state == "completed", op.run_state
    assert killed, "the run ended before both nodes had returned work"

    emb = _embeddings(ds)
    assert emb and all(v is not None for v in emb.values()), "a label was left unembedded"
    for lid, v in killed["snapshot"].items():
        assert emb[lid] == v  # written before the kill: kept as written
    want = list(_embeddings(reference).values())
    assert np.allclose(np.array(list(emb.values())), np.array(want), atol=1e-4)
    kept = {x[0]: x[3] for labels in _labels(ds).values() for x in labels if x[3]}
    assert kept == decided

    key, results = latest_embeddings_run(ds, "autolabels", "embedding")
    cfg = ds.get_run_info(key).config
    assert cfg.status == "completed" and cfg.executor == "ray" and cfg.num_ray_nodes == 2
    assert cfg.num_embedded_labels == len(emb) and cfg.num_failed_labels == 0
    _, ref_results = latest_embeddings_run(reference, "autolabels", "embedding")
    assert list(results.prompts) == list(ref_results.prompts)
    assert np.allclose(np.array(results.text_embeddings), np.array(ref_results.text_embeddings),
                       atol=1e-4)
