"""Threat: an App user sends the server's annotation-tool credentials to a
host of their choice, stores credentials in the database, or loads a tool's
answers over decisions or in a name they choose.

The App server here is configured the way an administrator would: the
Label Studio URL and API key as plugin secrets (environment variables in
open-source FiftyOne). A real Label Studio (``labelstudiokit``) is the
configured tool; a recording HTTP server plays the attacker's host. A
request may not name a host or carry credentials (refused before anything
runs or is queued); a hand-off through the App works with the server's
secrets, and no secret ever appears in any stored document or the server's
log. Answers loaded from the tool never overwrite a decision made in
Stoplight meanwhile, and are recorded as the tool's, whoever asks.
"""

from __future__ import annotations

import http.server
import threading
import uuid

import fiftyone as fo
import pytest

import labelstudiokit as lsk
from conftest import free_port
from securitykit import (db_changes, db_snapshot, find_in_db, http_error, http_execute, sdk_execute,
                         start_app_server)
from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions
from stoplight.plugins.review.handoff import load_review_answers, send_for_review

pytest_plugins = ["appkit"]

SEND = "@stoplight/autolabel/send_for_review"
LOAD = "@stoplight/autolabel/load_review_answers"
FIELD = "autolabels"
CLASSES = ("person", "bus", "car", "tie")


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def _answer(self):
        type(self).requests.append((self.command, self.path, dict(self.headers)))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def attacker():
    """A host the attacker controls: records every request it gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def label_studio(tmp_root):
    with lsk.running_label_studio(tmp_root / f"label-studio-sec-{uuid.uuid4().hex[:6]}") as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_root, label_studio):
    srv = start_app_server(tmp_root, "handoff", {
        "FIFTYONE_LABELSTUDIO_URL": label_studio.url,
        "FIFTYONE_LABELSTUDIO_API_KEY": label_studio.api_key,
    })
    yield srv
    srv.stop()


@pytest.fixture()
def queued(image_dir):
    ds = fo.Dataset(f"sec-ho-{uuid.uuid4().hex[:6]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=str(image_dir / p)) for p in ("bus.jpg", "zidane.jpg")])
    for s_i, s in enumerate(ds):
        s[FIELD] = fo.Detections(detections=[
            fo.Detection(label=CLASSES[(s_i + j) % 4], bounding_box=[0.05 + 0.3 * j, 0.1, 0.2, 0.3],
                         confidence=0.5, queue="yellow", review_rank=1 + j + 2 * s_i)
            for j in range(2)])
        s.save()
    yield ds
    audit.delete_log(ds)
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)


def _no_secret_stored(*secrets):
    hits = find_in_db(secrets)
    assert hits == [], f"a secret is stored: {hits}"


def test_a_request_naming_a_host_gets_no_credential(server, queued, attacker, label_studio):
    _Recorder.requests.clear()
    before = db_snapshot()
    for extra in ({}, {"request_delegation": True}):
        params = dict(label_field=FIELD, anno_key=f"k{uuid.uuid4().hex[:6]}", url=attacker.url)
        error = http_error(*http_execute(server, SEND, queued.name, params, **extra))
        sent = [h.get("Authorization") for _, _, h in _Recorder.requests]
        assert sent == [], f"the attacker's host was contacted, with {sent}"
        assert error and "'url'" in error and "cannot be given in an operator request" in error, error
    error = http_error(*http_execute(server, LOAD, queued.name, dict(anno_key="any", url=attacker.url)))
    assert _Recorder.requests == [], "the attacker's host was contacted"
    assert error and "'url'" in error, error
    assert db_changes(before, db_snapshot()) == []
    _no_secret_stored(label_studio.api_key)


def test_credentials_in_a_request_are_never_stored(server, queued, attacker):
    before = db_snapshot()
    secret = f"sentinel-{uuid.uuid4().hex}"
    for extra in ({}, {"request_delegation": True}):
        for params in (dict(api_key=secret), dict(username="eve", password=secret)):
            params.update(label_field=FIELD, anno_key=f"k{uuid.uuid4().hex[:6]}", delegate=True)
            error = http_error(*http_execute(server, SEND, queued.name, params, **extra))
            assert error and "cannot be given in an operator request" in error, error
        error = http_error(*http_execute(server, LOAD, queued.name, dict(anno_key="any", api_key=secret), **extra))
        assert error and "'api_key'" in error, error
    assert db_changes(before, db_snapshot()) == []  # no delegated operation either
    _no_secret_stored(secret)
    # the SDK's execute_operator goes through the same check
    error = sdk_execute(SEND, {"dataset": queued, "params": dict(label_field=FIELD, anno_key="sdk", api_key=secret)},
                        request_delegation=True)
    assert error and "cannot be given" in error
    _no_secret_stored(secret)


def test_a_hand_off_through_the_app_uses_the_servers_secrets_and_stores_none(server, queued, label_studio):
    anno_key = f"app{uuid.uuid4().hex[:6]}"
    out = http_execute(server, SEND, queued.name, dict(label_field=FIELD, anno_key=anno_key, user="alice"))
    assert http_error(*out) is None, out[1][-2000:]
    assert label_studio.api_key not in out[1]
    queued.reload()  # the App server registered the annotation run
    results = queued.load_annotation_results(anno_key, url=label_studio.url, api_key=label_studio.api_key)
    for task in lsk.tasks(label_studio, results.project_id):
        lsk.submit(label_studio, task["id"], [])  # every box deleted
    out = http_execute(server, LOAD, queued.name, dict(anno_key=anno_key, user="bob"))
    assert http_error(*out) is None, out[1][-2000:]
    queued.reload()
    reviewed = set(queued.values(f"{FIELD}.detections.reviewed_by", unwind=True))
    assert reviewed == {f"labelstudio:{anno_key}"}, "the tool's answers were recorded in a requested name"
    (load,) = queued.load_run_results(f"handoff_{anno_key}").loads
    assert (load["loaded_by"], load["loaded_by_source"]) == ("bob", "self-declared")
    assert queued.get_run_info(f"handoff_{anno_key}").config.url == label_studio.url
    _no_secret_stored(label_studio.api_key)
    assert label_studio.api_key not in server.log_path.read_text(errors="replace")


def test_answers_are_loaded_only_from_the_configured_host(server, queued, label_studio, attacker):
    """A hand-off sent (from Python) to another server: the App does not
    load it with its own credentials."""
    anno_key = f"py{uuid.uuid4().hex[:6]}"
    send_for_review(queued, FIELD, anno_key, url=label_studio.url, api_key=label_studio.api_key)
    import fiftyone.core.annotation as foan

    config = queued.get_annotation_info(anno_key).config
    config.url = attacker.url  # as if it had been sent to the attacker's host
    foan.AnnotationMethod.update_run_config(queued, anno_key, config)
    queued.reload()
    _Recorder.requests.clear()
    error = http_error(*http_execute(server, LOAD, queued.name, dict(anno_key=anno_key)))
    assert error and "another labelstudio server" in error, error
    assert _Recorder.requests == []


def test_answers_never_overwrite_a_decision_made_while_they_load(queued, label_studio, monkeypatch):
    ds = queued
    anno_key = f"race{uuid.uuid4().hex[:6]}"
    creds = dict(url=label_studio.url, api_key=label_studio.api_key)
    send_for_review(ds, FIELD, anno_key, **creds)
    results = ds.load_annotation_results(anno_key, **creds)
    for task in lsk.tasks(label_studio, results.project_id):
        lsk.submit(label_studio, task["id"], [])  # every box deleted: all rejected
    lid = ds.values(f"{FIELD}.detections.id", unwind=True)[0]
    reserve = audit.next_action_id
    fired = []

    def decide_then_reserve(dataset):
        # the load has read every label as undecided; alice accepts one
        # now, before the load takes its action id
        if not fired:
            fired.append(True)  # before: alice's own action takes an id too
            decisions.review_labels(ds, FIELD, "accept", label_ids=[lid], user="alice")
        return reserve(dataset)

    monkeypatch.setattr(audit, "next_action_id", decide_then_reserve)
    out = load_review_answers(ds, anno_key, **creds)
    assert fired
    ds.reload()
    state = {i: (r, b) for i, r, b in zip(*ds.values(
        [f"{FIELD}.detections.{a}" for a in ("id", "review", "reviewed_by")], unwind=True))}
    assert state[lid] == ("accepted", "alice"), "alice's decision was overwritten by the tool's answer"
    assert out["num_conflicts"] == 1 and out["conflicts"][0]["label_id"] == lid
    assert out["num_rejected"] == len(state) - 1
