"""The operator through the App server's HTTP routes, as the App calls it.

A real ``fiftyone.server.main`` subprocess (``appkit.app_server``) serves
``/operators/resolve-type`` and ``/operators/execute/generator``; the
request bodies are those the App 1.22 sends. The server is another process,
so the datasets are persistent and deleted after each test.
"""

from __future__ import annotations

import fiftyone as fo
import pytest
from backendkit import owl_run_params

from appkit import operator_request, persistent_dataset, post_json, stream_json_lines

pytest_plugins = ["appkit"]

URI = "@stoplight/autolabel/zero_shot_detect"
CONTRACT_PARAMS = {
    "view_target", "backend", "checkpoint", "classes", "ontology", "label_field",
    "confidence_threshold", "batch_size", "device", "overwrite",
    "class_agnostic_nms", "nms_iou", "delegate",
}


@pytest.fixture()
def served_dataset(image_dir):
    """A persistent dataset of the real photos, visible to the App server."""
    with persistent_dataset("stoplight-http", image_dir) as ds:
        yield ds


def test_resolve_type_lists_backends_and_contract_params(app_server, served_dataset):
    from stoplight.plugins.autolabel.backends import available_backends

    r = post_json(
        app_server,
        "/operators/resolve-type",
        operator_request(URI, served_dataset.name, {}, target="inputs"),
    )
    assert r.status_code == 200, r.text[-2000:]
    form = r.json()
    props = form["type"]["properties"]
    assert CONTRACT_PARAMS <= set(props), sorted(CONTRACT_PARAMS - set(props))

    backend = props["backend"]
    assert backend["default"] == "owlv2"
    values = backend["type"]["values"]
    choices = [c["value"] for c in backend["view"]["choices"]]
    assert "owlv2" in values and "owlv2" in choices
    # the form offers exactly the backends the plugin registers
    assert sorted(values) == sorted(choices) == available_backends()
    assert {"owlvit", "grounding-dino", "yolo-world", "yoloe"} <= set(values)

    assert props["classes"]["type"]["name"] == "List"
    assert props["classes"]["type"]["element_type"]["name"] == "String"
    assert props["confidence_threshold"]["type"]["name"] == "Number"
    assert props["label_field"]["default"] == "autolabels"

    # the form is dynamic: the checkpoint hint follows the chosen backend
    r2 = post_json(
        app_server,
        "/operators/resolve-type",
        operator_request(URI, served_dataset.name, {"backend": "grounding-dino"}, target="inputs"),
    )
    assert r2.status_code == 200, r2.text[-2000:]
    from stoplight.plugins.autolabel.backends import get_backend

    hint = r2.json()["type"]["properties"]["checkpoint"]["view"]["description"]
    assert get_backend("grounding-dino").default_checkpoint in hint


def test_execute_generator_streams_progress_and_writes_labels(
    app_server, served_dataset, tiny_checkpoint
):
    ds = served_dataset
    params = owl_run_params(tiny_checkpoint, label_field="http_labels")
    r, lines = stream_json_lines(
        app_server,
        "/operators/execute/generator",
        operator_request(URI, ds.name, params),
    )
    assert r.status_code == 200, f"{r.text[-3000:]}\n--- server log ---\n{app_server.log_tail()}"
    assert r.headers["content-type"].startswith("application/json")
    messages = list(lines)

    # fiftyone 1.22 writes str(MessageType.SUCCESS): "MessageType.SUCCESS"
    assert all(str(m.get("type")).endswith("SUCCESS") for m in messages), messages
    invocations = [m["body"] for m in messages if m["cls"] == "InvocationRequest"]
    progress = [b["params"] for b in invocations if b["operator_uri"] == "set_progress"]
    # a first event (0 of N), then at least one per batch of 4 (9 images)
    assert len(progress) >= 1 + -(-len(ds) // 4), progress
    fractions = [p["progress"] for p in progress]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(p["label"] for p in progress)
    assert any("owlv2" in p["label"] for p in progress)
    uris = [b["operator_uri"] for b in invocations]
    assert "reload_dataset" in uris
    (output,) = [b["params"] for b in invocations if b["operator_uri"] == "show_output"]
    summary = output["results"]
    assert summary["num_processed_samples"] == len(ds)
    assert summary["num_failed_samples"] == 0

    # the labels are in the database, as this process sees it
    ds.reload()
    assert ds.get_field("http_labels").document_type is fo.Detections
    assert ds.exists("http_labels").count() == len(ds)
    labels = ds.distinct("http_labels.detections.label")
    assert labels and set(labels) <= {"person", "bus"}
    assert ds.count("http_labels.detections") == summary["num_labels"] > 0
    confidences = ds.values("http_labels.detections.confidence", unwind=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)

    # and the run is recorded
    runs = ds.list_runs()
    assert summary["run_key"] in runs and len(runs) == 1
    config = ds.get_run_info(summary["run_key"]).config
    assert config.label_field == "http_labels"
    assert config.backend == "owlv2"
    assert config.confidence_threshold == 0.0


def test_unknown_backend_is_rejected_naming_the_parameter(
    app_server, served_dataset, tiny_checkpoint
):
    ds = served_dataset
    params = owl_run_params(tiny_checkpoint, backend="nope", label_field="bad")
    r = post_json(app_server, "/operators/execute/generator", operator_request(URI, ds.name, params))
    assert r.status_code >= 400
    assert "backend" in r.text
    ds.reload()
    assert not ds.has_field("bad")
    assert ds.list_runs() == []


def _error_text(r, lines) -> str:
    """The error the App would show for a generator-route answer.

    An error answer (input validation fails before execution: HTTP 500 with
    "Path: <param>"), or an error the App shows from the stream (an error
    message, or an error notification). A 200 stream that just ends, which
    is what an exception raised inside a generator operator gives in
    fiftyone 1.22, shows the user nothing: that fails here.
    """
    if r.status_code >= 400:
        return r.text
    messages = list(lines)
    errors = [
        m for m in messages
        if not str(m.get("type")).endswith("SUCCESS")
        or m.get("error")
        or (m.get("body") or {}).get("error")
        or (
            (m.get("body") or {}).get("operator_uri") == "notify"
            and m["body"]["params"].get("variant") == "error"
        )
    ]
    assert errors, f"HTTP {r.status_code} and no error in the stream: {messages}"
    return str(errors)


def test_out_of_range_threshold_is_rejected_naming_the_parameter(
    app_server, served_dataset, tiny_checkpoint
):
    ds = served_dataset
    params = owl_run_params(tiny_checkpoint, confidence_threshold=2, label_field="bad")
    r, lines = stream_json_lines(
        app_server, "/operators/execute/generator", operator_request(URI, ds.name, params)
    )
    assert "confidence_threshold" in _error_text(r, lines)
    ds.reload()
    assert not ds.has_field("bad")
    assert ds.list_runs() == []


def test_missing_classes_error_reaches_the_app(app_server, served_dataset, tiny_checkpoint):
    ds = served_dataset
    params = owl_run_params(tiny_checkpoint, label_field="bad")
    del params["classes"]
    r, lines = stream_json_lines(
        app_server, "/operators/execute/generator", operator_request(URI, ds.name, params)
    )
    text = _error_text(r, lines)
    assert "classes" in text and "ontology" in text
    ds.reload()
    assert not ds.has_field("bad")
    assert ds.list_runs() == []
