"""The missing queue in the FiftyOne App, in headless Chromium: the
reviewer picks the candidates field in the review surface and adds a
missed object with one key (A), then dismisses one (R); each is checked
as stored (a new label in the label field, exactly one) and in the log.

Screenshots go to ``artifacts/review_queue/`` (not committed).
"""

from __future__ import annotations

import uuid

import pytest
from digitskit import verified_digits

from appkit import screenshot, served
from stoplight.plugins.autolabel.candidates import add_candidates_from_verified
from stoplight.plugins.common import audit
from test_review_queue_browser import REVIEWER, Surface

pytest_plugins = ["appkit"]

FIELD = "autolabels"
CANDIDATES = "autolabels_candidates"


@pytest.fixture(scope="module")
def with_candidates(tmp_root):
    name = f"stoplight-missing-{uuid.uuid4().hex[:8]}"
    ds, _ = verified_digits(tmp_root / "digits-missing-browser", seed=5, name=name)
    with served(ds):
        # two answers, then a third question
        assert add_candidates_from_verified(ds, "ground_truth", FIELD)["num_candidates"] >= 3
        yield ds


def _open(page, app_server, ds) -> Surface:
    """The surface with the reviewer's name given, showing the candidates
    field chosen in its field menu."""
    from playwright.sync_api import expect

    surface = Surface(page)
    surface.start(app_server, ds)
    page.locator('[data-cy="review-field"]').select_option(CANDIDATES)
    expect(page.locator('[data-cy="review-missing-help"]')).to_be_visible()
    surface.root.focus()
    expect(surface.root).to_be_focused()
    surface.wait_question()
    return surface


def _labels(ds):
    return [d for dets in ds.values(FIELD) if dets for d in dets.detections]


def _candidate(ds, label_id):
    (dets,) = ds.select_labels(ids=[label_id], fields=CANDIDATES).values(CANDIDATES)
    return dets.detections[0]


def test_a_missed_object_is_added_with_one_key(page, app_server, with_candidates, artifacts_dir):
    from playwright.sync_api import expect

    ds = with_candidates
    shots = artifacts_dir / "review_queue"
    shots.mkdir(parents=True, exist_ok=True)
    before = len(_labels(ds))
    surface = _open(page, app_server, ds)
    expect(page.locator('[data-cy="review-counts"]')).to_contain_text("Open candidates")
    screenshot(page, shots, "missing-question")
    first = surface.question()
    cand = _candidate(ds, first)
    surface.press("a")
    second = surface.wait_question(other_than=first)
    surface.saved()
    screenshot(page, shots, "missing-added")

    labels = _labels(ds)
    assert len(labels) == before + 1
    (new,) = [d for d in labels if d.has_field("added_from") and d["added_from"] == first]
    assert (new.label, new.bounding_box, new.review, new.reviewed_by) == (
        cand.label, cand.bounding_box, "accepted", REVIEWER)
    log = audit.read_log(ds, label_ids=[first])
    assert [(e["action"], e["user"], e["after"]["added_label_id"]) for e in log] == [("add", REVIEWER, new.id)]

    # R dismisses: no label added
    surface.press("r")
    surface.wait_question(other_than=second)
    surface.saved()
    assert _candidate(ds, second).review == "rejected" and len(_labels(ds)) == before + 1
    expect(page.locator('[data-cy="review-item-error"]')).to_have_count(0)
