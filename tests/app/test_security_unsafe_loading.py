"""Threat: an App user makes the server run code through model loading.

``zero_shot_detect`` takes ``backend_options`` from the request. With
``{"trust_remote_code": true}`` transformers imports a model repository's
own Python code; with ``{"allow_pickle": true}`` a YOLO checkpoint is
unpickled, and any code in the pickle runs. Both must be unreachable from
an operator request (App form, HTTP execute endpoint, SDK
``execute_operator``, delegated and scale-out runs), and reachable only from
the Python API or the server's own configuration
(``STOPLIGHT_TRUST_REMOTE_CODE`` / ``STOPLIGHT_ALLOW_PICKLE``).

Each payload creates a marker directory when its code runs; the controls
show it does run when unsafe loading is on, so the refusals cannot pass
vacuously. A refused request must leave the whole database unchanged (no
labels, run, delegated operation, anything).
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from appkit import persistent_dataset
from securitykit import Payload, db_changes, db_snapshot, http_execute, sdk_execute

pytest_plugins = ["appkit"]

URI = "@stoplight/autolabel/zero_shot_detect"


@pytest.fixture()
def remote_code(tiny_checkpoint, tmp_path):
    """A transformers checkpoint whose config names its own code, which
    creates a marker directory when imported."""
    ckpt = tmp_path / f"remote-code-{uuid.uuid4().hex[:6]}"
    shutil.copytree(tiny_checkpoint("owlv2"), ckpt)
    marker = tmp_path / "remote-code-ran"
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "configuration_evil.py").write_text(
        "import os\n"
        f"os.makedirs({str(marker)!r}, exist_ok=True)\n"
        "from transformers import Owlv2Config\n\n\n"
        "class EvilConfig(Owlv2Config):\n"
        "    pass\n"
    )
    return "owlv2", str(ckpt), {"trust_remote_code": True}, marker


@pytest.fixture()
def pickled(tmp_path):
    """A YOLO checkpoint whose unpickling creates a marker directory."""
    import torch

    marker = tmp_path / "pickle-ran"
    path = tmp_path / "evil-yolo" / "model.pt"
    path.parent.mkdir()
    torch.save({"model": Payload(marker)}, path)
    return "yoloe", str(path), {"allow_pickle": True}, marker


@pytest.fixture(params=["remote_code", "pickled"])
def payload(request):
    return request.getfixturevalue(request.param)


@pytest.fixture()
def served(image_dir):
    with persistent_dataset("stoplight-sec", image_dir, "*.jpg", limit=2) as ds:
        yield ds


def _params(payload, **extra):
    backend, checkpoint, options, _ = payload
    return dict(backend=backend, checkpoint=checkpoint, classes=["person"], device="cpu",
                label_field="unsafe", backend_options=options, **extra)


def _assert_refused(text, payload, before):
    option = next(iter(payload[2]))
    assert not payload[3].exists(), "the payload's code ran"
    assert text is not None, "the request ran"
    assert option in text and "cannot be set by an operator request" in text, text[-2000:]
    assert db_changes(before, db_snapshot()) == []


@pytest.mark.parametrize("how", ["immediate", "generator", "delegated", "ray"])
def test_http_request_cannot_switch_on_unsafe_loading(app_server, served, payload, how):
    before = db_snapshot()
    extra = dict(request_delegation=True) if how == "delegated" else {}
    params = _params(payload, executor="ray") if how == "ray" else _params(payload)
    status, text = http_execute(app_server, URI, served.name, params, generator=how == "generator", **extra)
    assert status >= 400, text[-2000:]
    _assert_refused(text, payload, before)


@pytest.mark.parametrize("how", ["immediate", "delegated", "ray"])
def test_sdk_request_cannot_switch_on_unsafe_loading(dataset, payload, how):
    before = db_snapshot()
    params = _params(payload, executor="ray") if how == "ray" else _params(payload)
    error = sdk_execute(URI, {"dataset": dataset, "params": params}, request_delegation=how == "delegated")
    _assert_refused(error, payload, before)


def test_request_saying_false_is_no_refusal(dataset, tiny_checkpoint):
    params = dict(backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=["person"], device="cpu",
                  label_field="safe", backend_options={"trust_remote_code": False, "min_score": 0.0})
    assert sdk_execute(URI, {"dataset": dataset, "params": params}) is None
    assert dataset.has_field("safe")


def test_path_options_of_a_request_stay_inside_the_allowed_roots(dataset, tiny_checkpoint, tmp_path,
                                                                  monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("STOPLIGHT_ALLOWED_ROOTS", str(allowed))
    ckpt = allowed / "yoloe"
    shutil.copytree(tiny_checkpoint("yoloe"), ckpt)
    before = db_snapshot()
    for option, value in [("text_encoder_checkpoint", "/etc/passwd"),
                          ("text_embeddings", str(tmp_path / "outside.npz")),
                          ("text_embeddings", {"person": "/etc/hostname"}),
                          ("text_encoder", "local-dir:/etc")]:
        params = dict(backend="yoloe", checkpoint=str(ckpt), classes=["person"], device="cpu",
                      label_field="x", backend_options={option: value})
        error = sdk_execute(URI, {"dataset": dataset, "params": params})
        assert error and f"backend_options.{option}" in error and "allowed" in error, error
    assert db_changes(before, db_snapshot()) == []


def test_server_side_trust_list_allows_the_listed_checkpoint_only(dataset, pickled, tmp_path, monkeypatch):
    """The administrator's switch works, and is the control: the payload
    does run once unsafe loading is on."""
    backend, checkpoint, _, marker = pickled
    other = tmp_path / "other.pt"
    shutil.copy(checkpoint, other)
    monkeypatch.setenv("STOPLIGHT_ALLOW_PICKLE", str(other))
    params = dict(backend=backend, checkpoint=checkpoint, classes=["person"], device="cpu", label_field="x")
    sdk_execute(URI, {"dataset": dataset, "params": params})
    assert not marker.exists(), "a checkpoint the server does not list was unpickled"
    monkeypatch.setenv("STOPLIGHT_ALLOW_PICKLE", f"{other},{checkpoint}")
    sdk_execute(URI, {"dataset": dataset, "params": params})
    assert marker.exists(), "the control: a listed checkpoint is loaded with pickle allowed"


def test_python_api_keeps_the_explicit_opt_in(dataset, remote_code):
    """The Python API caller already runs code here: its opt-in works (the
    control for the remote-code payload)."""
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    backend, checkpoint, options, marker = remote_code
    try:  # the payload's config class is no detector: the load fails after the import
        zero_shot_detect(dataset, backend=backend, checkpoint=checkpoint, classes=["person"], device="cpu",
                         backend_options=options, progress=False)
    except ValueError:
        pass
    assert marker.exists()
