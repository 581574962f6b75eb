"""Threat: an App user decides, undoes or overwrites in another person's name,
or overwrites a decision they never saw.

Identity comes from one function (``common.identity.resolve_identity``):
the signed-in user (``ctx.user``) where FiftyOne has one, else the server's
pin (``STOPLIGHT_REVIEWER``), else a name the person typed, recorded as
*self-declared*. A request's ``user`` never overrides a login or a pin.
Undo of "my last action" is per identity (name and source). Deciding on a
label another named reviewer decided is logged as such. And a decision made
between another action's read and its write is never overwritten by that
action (review, undo): the later write is a compare-and-set.
"""

from __future__ import annotations

import types
import uuid

import fiftyone as fo
import pytest

from securitykit import http_error, http_execute, sdk_execute, start_app_server
from stoplight.plugins.common import audit
from stoplight.plugins.review import decisions as D

pytest_plugins = ["appkit"]

URI = "@stoplight/autolabel/review_labels"


@pytest.fixture(scope="module")
def pinned_server(tmp_root):
    srv = start_app_server(tmp_root, "pinned", {"STOPLIGHT_REVIEWER": "carol"})
    yield srv
    srv.stop()


@pytest.fixture()
def labeled(image_dir):
    ds = fo.Dataset(f"stoplight-identity-{uuid.uuid4().hex[:8]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.jpg"))[:3]])
    for s in ds:
        s["autolabels"] = fo.Detections(detections=[
            fo.Detection(label=c, bounding_box=[0.1 * i, 0.1, 0.2, 0.2], confidence=0.5, queue="yellow")
            for i, c in enumerate(["person", "bus", "person"])])
        s.save()
    yield ds
    audit.delete_log(ds)
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)


def _ids(ds, label=None):
    ids, labels = ds.values(["autolabels.detections.id", "autolabels.detections.label"], unwind=True)
    return [i for i, lab in zip(ids, labels) if label is None or lab == label]


def _state(ds, lid):
    """The label's review attributes as stored."""
    ds.reload()
    cols = ds.values([f"autolabels.detections.{a}" for a in ("id", "review", "reviewed_by")], unwind=True)
    return {lab: dict(review=r, reviewed_by=b) for lab, r, b in zip(*cols)}[lid]


def _accept_people(server, ds, **params):
    p = dict(action="accept", label_field="autolabels", target="VIEW", label="person", **params)
    return http_execute(server, URI, ds.name, p)


def test_a_pinned_server_records_its_reviewer_whatever_the_request_says(pinned_server, labeled):
    assert http_error(*_accept_people(pinned_server, labeled, user="alice")) is None
    people = _ids(labeled, "person")
    assert {_state(labeled, i)["reviewed_by"] for i in people} == {"carol"}
    (header,) = audit.actions_collection(labeled).find({})
    assert (header["user"], header["user_source"]) == ("carol", "pinned")


def test_a_request_cannot_undo_another_persons_action(pinned_server, labeled):
    bus = _ids(labeled, "bus")
    D.review_labels(labeled, "autolabels", "reject", label_ids=bus, user="bob")
    error = http_error(*http_execute(pinned_server, URI, labeled.name, dict(action="undo", user="bob")))
    assert error and "Nothing to undo for user 'carol'" in error, error
    assert {_state(labeled, i)["review"] for i in bus} == {"rejected"}  # bob's stands


def test_without_login_or_pin_a_typed_name_is_recorded_as_self_declared(app_server, labeled):
    assert http_error(*_accept_people(app_server, labeled, user="alice")) is None
    (header,) = audit.actions_collection(labeled).find({})
    assert (header["user"], header["user_source"]) == ("alice", "self-declared")
    entries = audit.read_log(labeled)
    assert entries and {(e["user"], e["user_source"]) for e in entries} == {("alice", "self-declared")}


def test_a_typed_name_cannot_forge_the_log(labeled):
    for bad in ("x" * 500, "alice\n[admin] approved all", "\x1b[31mroot"):
        error = sdk_execute(URI, {"dataset": labeled, "params": dict(
            action="accept", label_field="autolabels", target="VIEW", label="person", user=bad)})
        assert error and "'user'" in error, error
    assert audit.read_log(labeled) == []


def test_undo_is_per_identity_name_and_source(labeled):
    bus = _ids(labeled, "bus")
    D.review_labels(labeled, "autolabels", "reject", label_ids=bus, user="alice")  # Python: caller
    error = sdk_execute(URI, {"dataset": labeled, "params": dict(action="undo", user="alice")})
    assert error and "Nothing to undo for user 'alice' (self-declared)" in error, error
    assert {_state(labeled, i)["review"] for i in bus} == {"rejected"}
    assert D.undo_last(labeled, user="alice")["num_labels"] == len(bus)


def test_the_login_wins_over_a_typed_name(labeled, monkeypatch):
    """FiftyOne with user accounts: ``ctx.user`` is the identity."""
    from fiftyone.operators import executor

    init = executor.ExecutionContext.__init__

    def signed_in(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.user = types.SimpleNamespace(id="u1", email="dana@example.com", name="Dana")

    monkeypatch.setattr(executor.ExecutionContext, "__init__", signed_in)
    monkeypatch.setenv("STOPLIGHT_REVIEWER", "carol")  # a login beats the pin too
    assert sdk_execute(URI, {"dataset": labeled, "params": dict(
        action="accept", label_field="autolabels", target="VIEW", label="person", user="alice")}) is None
    (header,) = audit.actions_collection(labeled).find({})
    assert (header["user"], header["user_source"]) == ("dana@example.com", "login")


def test_resolve_identity_order():
    from stoplight.plugins.common import identity as I

    ctx = types.SimpleNamespace(user=None, params={})
    assert I.resolve_identity(ctx, "alice") == I.Identity("alice", "self-declared")
    assert I.resolve_identity(ctx).source == "os-user"
    ctx.user = types.SimpleNamespace(email=None, name="Dana", id="7")
    assert I.resolve_identity(ctx, "alice") == I.Identity("Dana", "login")
    assert I.Identity("Dana", "login").verified and not I.Identity("a", "self-declared").verified


def test_deciding_on_another_reviewers_decision_is_logged_as_such(app_server, labeled):
    people = _ids(labeled, "person")
    D.review_labels(labeled, "autolabels", "reject", label_ids=people[:2], user="bob")
    assert http_error(*_accept_people(app_server, labeled, user="alice")) is None
    header = audit.actions_collection(labeled).find_one({"user": "alice"})
    assert header["num_overridden"] == 2 and header["overridden_reviewers"] == ["bob"]
    overrides = {e["label_id"]: e.get("overrides") for e in audit.read_log(labeled, user="alice")}
    assert {lid: overrides[lid] for lid in people[:2]} == {lid: "bob" for lid in people[:2]}
    assert all(overrides[lid] is None for lid in people[2:])


def _race(monkeypatch, action, when):
    """Runs ``action`` once, right before (``when="before"``: the race of
    the issue, the other decision takes the smaller id) or right after the
    next action id is taken: either way, a decision made between another
    action's read and its write."""
    reserve = audit.next_action_id
    fired = []

    def reserve_and_decide(dataset):
        if not fired and when == "before":
            fired.append(True)
            action()
        out = reserve(dataset)
        if not fired:
            fired.append(True)
            action()
        return out

    monkeypatch.setattr(audit, "next_action_id", reserve_and_decide)
    return fired


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_review_never_overwrites_a_decision_made_after_its_read(labeled, monkeypatch, when):
    lid = _ids(labeled, "bus")[0]
    fired = _race(monkeypatch, lambda: D.review_labels(labeled, "autolabels", "reject", label_ids=[lid], user="bob"),
                  when)
    out = D.review_labels(labeled, "autolabels", "accept", label_ids=[lid], user="alice")
    assert fired
    state = _state(labeled, lid)
    assert (state["review"], state["reviewed_by"]) == ("rejected", "bob"), "bob's decision was overwritten"
    assert out["num_conflicts"] == 1 and out["conflicts"] == [lid] and out["num_labels"] == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_undo_never_overwrites_a_decision_made_after_its_read(labeled, monkeypatch, when):
    lid = _ids(labeled, "bus")[0]
    D.review_labels(labeled, "autolabels", "accept", label_ids=[lid], user="alice")
    fired = _race(monkeypatch, lambda: D.review_labels(labeled, "autolabels", "reject", label_ids=[lid], user="bob"),
                  when)
    out = D.undo_last(labeled, user="alice")
    assert fired
    state = _state(labeled, lid)
    assert (state["review"], state["reviewed_by"]) == ("rejected", "bob"), "bob's decision was overwritten"
    assert out["num_labels"] == 0 and out["num_conflicts"] == 1


def test_a_bulk_accept_of_pending_labels_keeps_a_decision_made_meanwhile(labeled, monkeypatch):
    """The panel's accept-all-green: labels read as pending, one decided
    before the id is taken; ``protect="all"`` leaves it alone."""
    people = _ids(labeled, "person")
    pending = labeled.filter_labels("autolabels", fo.ViewField("label") == "person")
    monkeypatch.setattr(D, "read_label_states", _deciding_reader(D.read_label_states, labeled, people[0]))
    out = D.review_labels(pending, "autolabels", "accept", label="person", user="alice", protect="all")
    assert _state(labeled, people[0])["reviewed_by"] == "bob"
    assert out["num_conflicts"] == 1 and out["num_labels"] == len(people) - 1


def _deciding_reader(read, ds, lid):
    done = []

    def reader(*args, **kwargs):
        if not done:
            done.append(True)
            D.review_labels(ds, "autolabels", "reject", label_ids=[lid], user="bob")
        return read(*args, **kwargs)

    return reader
