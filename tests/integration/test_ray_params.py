"""The Ray executor without a cluster: requests, settings, optional install.

What an operator request may ask of Ray (only clusters the server allows,
bounded settings), what the retired work queue's parameters say now, that
Ray run keys cannot overwrite other runs, and that the plugin works
without Ray installed while choosing Ray then names the install command.
(Runs on a real cluster: tests/integration/test_ray.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest

from stoplight.plugins.common import ray_executor
from stoplight.plugins.common.ray_executor import RayExecutor, executor_from
from stoplight.plugins.common.ray_params import executor_from_params

DETECT = "@stoplight/autolabel/zero_shot_detect"
EMBED = "@stoplight/autolabel/compute_label_embeddings"
REPO = Path(__file__).resolve().parents[2]


def test_requests_name_only_clusters_the_server_allows(monkeypatch):
    monkeypatch.delenv("STOPLIGHT_RAY_ADDRESSES", raising=False)
    assert executor_from_params({}) == "local"
    assert executor_from_params({"executor": "ray"}) == RayExecutor(address="auto")
    with pytest.raises(ValueError, match="'evil.example:6379' is not a Ray cluster this server allows"):
        executor_from_params({"executor": "ray", "ray_address": "evil.example:6379"})
    with pytest.raises(ValueError, match="'local' is not a Ray cluster"):
        executor_from_params({"executor": "ray", "ray_address": "local"})
    monkeypatch.setenv("STOPLIGHT_RAY_ADDRESSES", "head:6379, local")
    ex = executor_from_params({"executor": "ray", "ray_address": "head:6379", "ray_actors": 3,
                               "ray_gpus_per_actor": 0.5})
    assert ex == RayExecutor(address="head:6379", actors=3, gpus_per_actor=0.5)
    assert executor_from_params({"executor": "ray", "ray_address": "local"}).address == "local"
    with pytest.raises(ValueError, match="'executor' must be 'local' or 'ray'"):
        executor_from_params({"executor": "dask"})


@pytest.mark.parametrize("settings, message", [
    (dict(actors=0), "ray_actors"),
    (dict(actors=10**6), "ray_actors"),
    (dict(actors=True), "ray_actors"),
    (dict(cpus_per_actor=0), "ray_cpus_per_actor"),
    (dict(gpus_per_actor=-1), "ray_gpus_per_actor"),
    (dict(max_retries=-1), "ray_max_retries"),
    (dict(max_retries=1000), "ray_max_retries"),
    (dict(stall_timeout_s=0), "ray_stall_timeout_s"),
    (dict(stall_timeout_s=float("inf")), "ray_stall_timeout_s"),
    (dict(start_timeout_s=10**9), "ray_start_timeout_s"),
    (dict(address=""), "ray_address"),
])
def test_executor_settings_are_bounded(settings, message):
    """No setting waits or retries without end (the work queue's unbounded
    lease_s let workers wait forever), nor asks for unbounded resources."""
    with pytest.raises(ValueError, match=message):
        RayExecutor(**settings)


def test_executor_argument_forms():
    assert executor_from("local") is None and executor_from(None) is None
    assert executor_from("ray") == RayExecutor()
    assert executor_from({"address": "local", "actors": 2}) == RayExecutor(address="local", actors=2)
    with pytest.raises(ValueError, match="Unknown Ray executor settings"):
        executor_from({"adress": "local"})
    with pytest.raises(ValueError, match="'executor' must be"):
        executor_from("threads")


@pytest.mark.parametrize("uri", [DETECT, EMBED])
@pytest.mark.parametrize("param", ["shard_group", "chunk_size", "lease_s"])
@pytest.mark.parametrize("delegated", [False, True])
def test_retired_work_queue_parameters_say_what_replaced_them(dataset, uri, param, delegated):
    """Refused before anything runs or is queued, naming the Ray executor."""
    from fiftyone.operators.delegated import DelegatedOperationService

    params = {param: "big_run1" if param == "shard_group" else 64, "delegate": delegated}
    with pytest.raises(Exception, match=f"'{param}' belonged to the MongoDB work queue.*executor='ray'"):
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": params},
                             request_delegation=delegated)
    assert dataset.list_runs() == []
    assert DelegatedOperationService().list_operations(dataset_name=dataset.name) == []


def test_operator_refuses_a_cluster_the_server_does_not_allow(dataset, monkeypatch):
    monkeypatch.setenv("STOPLIGHT_RAY_ADDRESSES", "10.0.0.5:6379")
    params = dict(executor="ray", ray_address="attacker.example:6379", classes=["person"])
    # refused by the form's own list (FiftyOne's validation), and by execute
    with pytest.raises(Exception, match="ray_address. Reason: Invalid enum value"):
        foo.execute_operator(DETECT, ctx={"dataset": dataset, "params": params})
    assert dataset.list_runs() == [] and not dataset.has_field("autolabels")


def test_forms_offer_the_executor_choice(dataset, monkeypatch):
    """The executor fields; the cluster list is the server's, never free text."""
    import asyncio

    from fiftyone.operators.executor import resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    monkeypatch.setenv("STOPLIGHT_RAY_ADDRESSES", "head:6379")

    def props(uri, params):
        request = dict(dataset_name=dataset.name, params=params, view=[], selected=[],
                       selected_labels=[])
        return asyncio.run(resolve_type(OperatorRegistry(), uri, request)).to_json()["type"]["properties"]

    for uri in (DETECT, EMBED):
        local = props(uri, {})
        assert "executor" in local and "ray_address" not in local and "shard_group" not in local
        ray_form = props(uri, {"executor": "ray"})
        assert ray_form["ray_address"]["type"]["values"] == ["auto", "head:6379"]
        assert "ray_actors" in ray_form


def test_ray_run_keys_cannot_overwrite_other_runs(dataset, tiny_checkpoint):
    """A run key naming an existing run (a calibration, a hand-off) is
    refused before anything runs; that run's record stays (the work queue's
    shard_group overwrote it)."""
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    dataset.register_run("calibration_1", dataset.init_run(stoplight_method="calibrate_triage",
                                                            note="keep me"))
    before = dataset.get_run_info("calibration_1").config.serialize()
    with pytest.raises(ValueError, match="'calibration_1' already exists"):
        zero_shot_detect(dataset, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"),
                         classes=["person"], run_key="calibration_1", progress=False,
                         executor=RayExecutor(address="local"))
    assert dataset.get_run_info("calibration_1").config.serialize() == before
    assert not dataset.has_field("autolabels")


def test_ray_is_optional(tmp_path):
    """Without Ray the plugin imports, registers its operators and labels
    locally; choosing Ray then says how to install it."""
    script = f"""
import sys
sys.modules["ray"] = None  # as if not installed: importing it fails
sys.path.insert(0, {str(REPO / 'examples')!r})
from stoplight_import import import_stoplight
import_stoplight()
from stoplight.plugins.common.ray_executor import executor_from, require_ray
import importlib.util
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "ray" else real(name, *a)
try:
    executor_from("ray")
except ImportError as e:
    print("ERROR", e)
print("RAY_LOADED", any(m == "ray" or m.startswith("ray.") for m, v in sys.modules.items() if v))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ERROR The Ray executor needs Ray Data, which is not installed here" in out.stdout
    assert "pip install 'ray[data]" in out.stdout
    assert "RAY_LOADED False" in out.stdout


def test_a_ray_worker_error_ends_the_run_with_its_message(monkeypatch):
    """A worker that raises (not a lost process) is not retried: the run
    stops with the worker's message."""
    run = ray_executor.RayRun(RayExecutor(address="local"), ray_executor.RayJob(
        module="m", factory="f", kwargs={}, rows={"sample_id": ["a"]}, batch_size=1))
    with pytest.raises(ray_executor.RayRunError, match=r"A Ray worker \(n1:7\) failed: ValueError: boom"):
        run.count(dict(sample_id=["a"], status=["error"], error=["ValueError: boom"],
                       ray_node=["n1"], ray_worker=["n1:7"]))


def _worker(dataset, tiny_checkpoint, overwrite=False):
    """A labeling actor's state, built here as Ray builds it on a node."""
    from stoplight.plugins.autolabel.ray_labeling import LabelingWorker

    return LabelingWorker(
        dataset.name, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), device="cpu",
        fp16=None, backend_options=None, ontology={"person": "person"}, label_field="autolabels",
        confidence_threshold=0.0, class_agnostic_nms=False, nms_iou=0.5, batch_size=2,
        overwrite=overwrite,
    )


def _doc(n=1, label="person"):
    from stoplight.plugins.common.bulk import new_object_ids

    return {"_cls": "Detections", "detections": [
        {"_id": oid, "_cls": "Detection", "attributes": {}, "tags": [], "label": label,
         "bounding_box": [0.1, 0.1, 0.2, 0.2], "confidence": 0.5} for oid in new_object_ids(n)]}


def test_an_actor_writes_each_sample_once(dataset, tiny_checkpoint):
    """Two attempts at one batch (a retried batch whose first worker was
    presumed dead but wrote): the second writes only what the first did
    not, and says which samples it wrote; the first's labels stay."""
    import fiftyone as fo

    from stoplight.plugins.common.bulk import declare_field

    declare_field(dataset, "autolabels", fo.Detections)
    ids = dataset.values("id")[:3]
    first, second = _worker(dataset, tiny_checkpoint), _worker(dataset, tiny_checkpoint)
    rows = {sid: {} for sid in ids}
    assert first.write({ids[0]: _doc()}, rows) == {ids[0]}
    kept = dataset.select(ids[0]).values("autolabels.detections.id")[0]
    written = second.write({sid: _doc() for sid in ids}, rows)
    assert written == set(ids[1:])
    assert dataset.select(ids[0]).values("autolabels.detections.id")[0] == kept


def test_a_refused_label_document_fails_its_sample_only_on_ray(dataset, tiny_checkpoint):
    """A document over MongoDB's 16 MB limit: that sample fails, its
    batch-mates are written, the run goes on (as in a local run)."""
    import fiftyone as fo

    from stoplight.plugins.common.bulk import declare_field

    declare_field(dataset, "autolabels", fo.Detections)
    ids = dataset.values("id")[:3]
    worker = _worker(dataset, tiny_checkpoint)
    huge = _doc(n=1, label="x" * (17 * 1024 * 1024))
    docs = {ids[0]: _doc(), ids[1]: huge, ids[2]: _doc()}
    rows = {sid: {"status": "skipped"} for sid in ids}
    assert worker.write(docs, rows) == {ids[0], ids[2]}
    assert rows[ids[1]]["status"] == "failed"
    assert "refused the labels of this sample" in rows[ids[1]]["error"]
    dataset.reload()
    assert dataset.select(ids[1]).values("autolabels")[0] is None
    assert all(d is not None for d in dataset.select([ids[0], ids[2]]).values("autolabels"))


def test_a_lost_database_ends_the_ray_run_saying_how_to_resume(dataset, tiny_checkpoint,
                                                               monkeypatch):
    """Unlike a refused document, a database that stopped answering is not
    one sample's failure: the actor raises (the run ends with its message)."""
    import fiftyone as fo
    from pymongo.errors import ServerSelectionTimeoutError

    from stoplight.plugins.autolabel import ray_labeling
    from stoplight.plugins.common.bulk import declare_field
    from stoplight.plugins.common.db_errors import DatabaseUnavailableError

    declare_field(dataset, "autolabels", fo.Detections)
    ids = dataset.values("id")[:2]
    worker = _worker(dataset, tiny_checkpoint)

    def gone(*args, **kwargs):
        raise ValueError("bulk write failed") from ServerSelectionTimeoutError("db:27017 timed out")

    monkeypatch.setattr(ray_labeling, "write_labels", gone)
    rows = {sid: {"status": "skipped"} for sid in ids}
    with pytest.raises(DatabaseUnavailableError, match="Lost the connection.*overwrite=False"):
        worker.write({sid: _doc() for sid in ids}, rows)
    assert all(r["status"] == "skipped" for r in rows.values())
