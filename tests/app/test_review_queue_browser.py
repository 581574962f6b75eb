"""The review surface in the FiftyOne App, in headless Chromium, driven
from the keyboard only.

A real App server, a real persistent dataset (the digits example,
calibrated and triaged), the review_queue panel opened from the grid's
"+" menu; from then on only keys: the reviewer's name, then accept,
reject, unsure, previous/next and undo (and, when the review core has
corrections, change class and fix box). After each answer the test waits
until the surface says everything is saved and checks the label as stored
and the audit log.

Screenshots of every step go to ``artifacts/review_queue/`` (not committed).
"""

from __future__ import annotations

import importlib.util
import uuid

import pytest
from digitskit import triaged_digits

from appkit import UI_TIMEOUT_MS, open_panel, served, step_shots, wait_for_grid
from stoplight.plugins.common import audit

pytest_plugins = ["appkit"]

FIELD = "autolabels"
REVIEWER = "Grace Hopper"
HAS_CORRECTIONS = importlib.util.find_spec("stoplight.plugins.review.corrections") is not None


@pytest.fixture(scope="module")
def triaged(tmp_root):
    name = f"stoplight-review-queue-{uuid.uuid4().hex[:8]}"
    # per class: plenty of yellow labels to review
    ds, _ = triaged_digits(tmp_root / "digits-review-queue-browser", seed=4, name=name, scope="class")
    with served(ds):
        yield ds


@pytest.fixture()
def shots(artifacts_dir, request):
    return step_shots(artifacts_dir / "review_queue", request.node.name.replace("test_", ""))


class Surface:
    """The review surface on a page: keys in, what it shows out."""

    def __init__(self, page):
        self.page = page
        self.root = page.locator('[data-cy="review-queue"]')

    def open(self, app_server, ds) -> None:
        self.start(app_server, ds)
        self.wait_question()

    def start(self, app_server, ds) -> None:
        """Opens the surface on ``ds`` and gives the reviewer's name (keys
        only); the surface has the focus."""
        from playwright.sync_api import expect

        page = self.page
        page.goto(f"{app_server.url}/datasets/{ds.name}")
        wait_for_grid(page, drawn=False)
        # the App server keeps the last session's view and panels
        page.locator('[data-cy="btn-clear-view-bar"]').click()
        open_panel(page, "review_queue")
        # the name field takes the focus when the panel opens; a panel that
        # was open already (the server keeps it) needs a click into it, as a
        # person gives it. Keyboard only from here.
        name = page.locator('[data-cy="review-name-input"]')
        name.click()
        expect(name).to_be_focused()
        page.keyboard.type(REVIEWER)
        page.keyboard.press("Enter")
        expect(self.root).to_be_focused()

    def question(self) -> str:
        return self.root.get_attribute("data-question-id") or ""

    def wait_question(self, other_than: str | None = None) -> str:
        """Waits for a question (other than ``other_than``) drawn on screen."""
        self.page.wait_for_function(
            """(old) => {
                const root = document.querySelector('[data-cy="review-queue"]');
                const id = root && root.dataset.questionId;
                if (!id || id === old) return false;
                // the crop is drawn: some pixel is not blank
                const c = root.querySelector('[data-cy="review-crop"]');
                if (!c || !c.width) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 0; i < d.length; i += 4 * 97) if (d[i] + d[i + 1] + d[i + 2] > 30) return true;
                return false;
            }""",
            arg=other_than or "",
            timeout=UI_TIMEOUT_MS,
        )
        return self.question()

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def saved(self) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator('[data-cy="review-pending"]')).to_have_text("all saved")


def _state(ds, label_id):
    view = ds.select_labels(ids=[label_id], fields=FIELD)
    # one sample, one label (not unwound: a box is a list itself)
    review, by, label, box = (
        v[0][0] for v in view.values([f"{FIELD}.detections.{a}" for a in ("review", "reviewed_by", "label", "bounding_box")])
    )
    return dict(review=review, reviewed_by=by, label=label, bounding_box=box)


def _log(ds, label_id):
    return [(e["action"], e["user"], e["after"].get("review")) for e in audit.read_log(ds, label_ids=[label_id])]


def _fail(page, shots, app_server):
    try:
        shots(page, "failure")
    finally:
        print("--- page errors ---\n" + "\n".join(page.console_errors))
        print("--- App server log ---\n" + app_server.log_tail())


def test_review_queue_from_the_keyboard(app_server, triaged, shots, page):
    from playwright.sync_api import expect

    ds = triaged
    s = Surface(page)
    try:
        s.open(app_server, ds)
        first = s.question()
        expect(page.locator('[data-cy="review-class"]')).to_have_text(_state(ds, first)["label"])
        expect(page.locator('[data-cy="review-left"]')).not_to_have_text("…")
        left0 = int(page.locator('[data-cy="review-left"]').inner_text().replace(",", ""))
        shots(page, "01-first-question")

        # accept: the next question at once; stored and logged under the name
        s.press("a")
        second = s.wait_question(first)
        s.saved()
        assert _state(ds, first)["review"] == "accepted" and _state(ds, first)["reviewed_by"] == REVIEWER
        assert _log(ds, first) == [("accept", REVIEWER, "accepted")]
        expect(page.locator('[data-cy="review-left"]')).to_have_text(f"{left0 - 1:,}")
        shots(page, "02-accepted")

        # reject
        s.press("r")
        third = s.wait_question(second)
        s.saved()
        assert _state(ds, second)["review"] == "rejected"
        assert _log(ds, second) == [("reject", REVIEWER, "rejected")]

        # unsure: nothing stored, the next question
        s.press("s")
        fourth = s.wait_question(third)
        s.saved()
        assert _state(ds, third)["review"] in (None, "pending") and _log(ds, third) == []

        # previous shows the rejected one as answered; next comes back
        s.press("ArrowLeft")
        s.press("ArrowLeft")
        s.wait_question(fourth)
        assert s.question() == second
        expect(page.locator('[data-cy="review-status"]')).to_have_text("You rejected this label.")
        s.press("ArrowRight")
        s.press("ArrowRight")
        s.wait_question(second)
        assert s.question() == fourth

        # undo takes the rejection back and shows that label again
        s.press("u")
        s.wait_question(fourth)
        assert s.question() == second
        s.saved()
        assert _state(ds, second)["review"] in (None, "pending")
        assert [a for a, _, _ in _log(ds, second)] == ["reject", "undo"]
        assert _state(ds, first)["review"] == "accepted"  # the earlier answer stays
        # and answer it again
        s.press("a")
        s.wait_question(second)
        s.saved()
        assert _state(ds, second)["review"] == "accepted"
        shots(page, "03-undone-and-answered-again")
        assert not [e for e in page.console_errors if "pageerror" in e and "entry is loading" not in e]
    except BaseException:
        _fail(page, shots, app_server)
        raise


@pytest.mark.skipif(not HAS_CORRECTIONS, reason="the review core has no corrections (review.corrections) yet")
def test_review_queue_corrections_from_the_keyboard(app_server, triaged, shots, page):
    from playwright.sync_api import expect

    ds = triaged
    s = Surface(page)
    try:
        s.open(app_server, ds)

        # change class: C, type a class, Enter
        lid = s.question()
        before = _state(ds, lid)
        new_class = "0" if before["label"] != "0" else "1"
        s.press("c")
        expect(page.locator('[data-cy="review-class-input"]')).to_be_focused()
        page.keyboard.type(new_class)
        shots(page, "01-change-class")
        page.keyboard.press("Enter")
        nxt = s.wait_question(lid)
        s.saved()
        after = _state(ds, lid)
        assert after["review"] == "corrected" and after["label"] == new_class and after["reviewed_by"] == REVIEWER
        assert after["bounding_box"] == pytest.approx(before["bounding_box"])
        log = audit.read_log(ds, label_ids=[lid])
        assert [e["action"] for e in log] == ["correct"]
        assert log[0]["before"]["label"] == before["label"] and log[0]["after"]["label"] == new_class

        # fix the box: B, Tab to the left edge, Shift+Left twice (20 px), Enter
        lid2 = nxt
        label0, box0 = _state(ds, lid2)["label"], _state(ds, lid2)["bounding_box"]
        from PIL import Image

        with Image.open(ds[ds.select_labels(ids=[lid2]).first().id].filepath) as im:
            width = im.width
        s.press("b")
        expect(s.root).to_have_attribute("data-mode", "box")
        s.press("Tab")
        s.press("Shift+ArrowLeft")
        s.press("Shift+ArrowLeft")
        shots(page, "02-fix-box")
        s.press("Enter")
        lid3 = s.wait_question(lid2)
        s.saved()
        fixed = _state(ds, lid2)
        assert fixed["review"] == "corrected" and fixed["label"] == label0
        assert fixed["bounding_box"][0] == pytest.approx(max(0.0, box0[0] - 20 / width), abs=1e-4)
        assert fixed["bounding_box"][0] + fixed["bounding_box"][2] == pytest.approx(box0[0] + box0[2], abs=1e-4)
        assert fixed["bounding_box"][1:2] == pytest.approx(box0[1:2], abs=1e-5)
        assert fixed["bounding_box"][3] == pytest.approx(box0[3], abs=1e-5)  # stored to 6 decimals
        assert [e["action"] for e in audit.read_log(ds, label_ids=[lid2])] == ["correct"]

        # undo: the box is back, the label pending again
        s.press("u")
        assert s.wait_question(lid3) == lid2
        s.saved()
        restored = _state(ds, lid2)
        assert restored["bounding_box"] == pytest.approx(box0) and restored["review"] in (None, "pending")
        assert [e["action"] for e in audit.read_log(ds, label_ids=[lid2])] == ["correct", "undo"]
        shots(page, "03-correction-undone")
        assert not [e for e in page.console_errors if "pageerror" in e and "entry is loading" not in e]
    except BaseException:
        _fail(page, shots, app_server)
        raise
