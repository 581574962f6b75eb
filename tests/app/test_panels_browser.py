"""Both panels in the FiftyOne App, in headless Chromium, end to end.

A real App server, a real persistent dataset (digit canvases with a real
classifier's auto-labels, calibrated and triaged; label map precomputed with
PCA), a user's clicks:

- verification queues: the panel shows the database's counts and the next
  questions as crops at the top; a click on the green queue, then on a
  bar, changes the grid to exactly those labels and draws only the field
  under review; *Show all* restores both; the label tooltip leads with
  class, confidence, queue and P(correct); a label selected in the sample
  modal is accepted with the panel's button and the decision is in the
  database; *Accept all green* asks first, then is recorded as bulk;
  *Undo* changes the database and the panel's counts.
- label map: the points are drawn (as many as the panel says), a click on a
  point opens its sample, a box selection shows exactly the selected labels'
  samples in the grid, and the map, redrawn for that view (and again
  coloured by class), keeps exactly those points highlighted and the others
  dimmed; *Show all* dims nothing.

Screenshots of every step go to ``artifacts/panels/`` (not committed).
Selectors: FiftyOne's ``data-cy`` attributes for App chrome, visible text
and table structure for the panels, Plotly's SVG classes for the charts
(their points are located from the drawn elements, never from guessed
pixel positions).
"""

from __future__ import annotations

import json
import re
import time
import uuid

import numpy as np
import pytest
from digitskit import triaged_digits, verified_digits

from appkit import (
    UI_TIMEOUT_MS, close_modal, hover_until_visible, open_panel, request_params, samples_text, served, step_shots,
    wait_for_grid,
)
from stoplight.plugins.panels.label_map import core as label_map
from stoplight.plugins.panels.shared import queue_stats
from stoplight.plugins.triage import workflow

pytest_plugins = ["appkit"]

FIELD = "autolabels"


@pytest.fixture(scope="module")
def triaged(tmp_root):
    """A persistent triaged digits dataset with a stored PCA label map."""
    name = f"stoplight-panels-{uuid.uuid4().hex[:8]}"
    # per class: plenty of yellow labels to review
    ds, _ = triaged_digits(tmp_root / "digits-browser", seed=3, name=name, scope="class")
    with served(ds):
        label_map.compute_label_map(ds, FIELD, method="pca")
        yield ds


@pytest.fixture()
def shots(artifacts_dir, request):
    return step_shots(artifacts_dir / "panels", request.node.name.replace("test_", ""))


@pytest.fixture()
def panel_events(page):
    """Every panel event the App sends and each answer, in order, with the
    seconds since the test started and the size of a ``data`` parameter:
    printed when a test fails (races between events are what break these
    tests)."""
    log: list[str] = []
    t0 = time.monotonic()
    page.panel_in_flight = 0

    def entry(r, what: str) -> None:
        request = r if what == ">" else r.request
        if "/operators/execute" not in request.url:
            return
        page.panel_in_flight += 1 if what == ">" else -1
        try:
            body = json.loads(request.post_data or "{}")
        except ValueError:
            return
        params = body.get("params") or {}
        method = params.get("__method__") or body.get("operator_uri", "").split("#")[-1]
        data = params.get("data")
        size = f" data={len(data)}" if isinstance(data, list) else ""
        if "value" in params:
            size += f" value={str(params['value'])[:40]!r}"
        status = "" if what == ">" else f" {r.status}"
        state = params.get("panel_state") or {}
        if what == ">" and "color_by" in state:  # what the label map draws with
            size += f" color_by={state.get('color_by')}/{(state.get('top') or {}).get('color_by')}"
        log.append(f"{time.monotonic() - t0:7.2f} {what} {body.get('operator_uri', '').split('/')[-1].split('#')[0]}:{method}{size}{status}")

    page.on("request", lambda r: entry(r, ">"))
    page.on("response", lambda r: entry(r, "<"))
    page.panel_events = log
    return log


def _open_dataset(page, app_server, ds) -> None:
    """The dataset page with an empty view (the App server keeps the last
    view of its session across page loads)."""
    from playwright.sync_api import expect

    page.goto(f"{app_server.url}/datasets/{ds.name}")
    wait_for_grid(page, drawn=False)
    page.locator('[data-cy="btn-clear-view-bar"]').click()
    expect(page.locator('[data-cy="entry-counts"]')).to_contain_text(samples_text(len(ds)))


def _is_event(request, method: str) -> bool:
    try:
        body = json.loads(request.post_data or "{}")
    except ValueError:
        return False
    uri = body.get("operator_uri") or ""
    return uri.endswith(f"#{method}") or (body.get("params") or {}).get("__method__") == method


def _panel_event(page, method: str, with_data: bool = False):
    """Waits for the App server's answer to the panel event ``method``
    (``with_data``: only an event whose ``data`` parameter is not empty)."""
    return page.expect_response(
        lambda r: "/operators/execute" in r.url and _is_event(r.request, method)
        and (not with_data or bool(request_params(r.request).get("data"))),
        timeout=UI_TIMEOUT_MS,
    )


def _wait_until_answered(page) -> None:
    """Waits until the App server has answered every operator request the
    page sent (``panel_events`` counts them)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while page.panel_in_flight > 0:
        assert time.monotonic() < deadline, "\n".join(page.panel_events)
        page.wait_for_timeout(100)  # polls the counter; the page's events run meanwhile


def _center(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _page_errors(page) -> list[str]:
    # "entry is loading": the App's grid throws it (and recovers) when the
    # view changes while its previous page is still loading; fast panel
    # clicks provoke it, it is not an error of the panel
    return [e for e in page.console_errors if "pageerror" in e and "entry is loading" not in e]


def _labels(ds, *attrs):
    return ds.values([f"{FIELD}.detections.{a}" for a in ("id", *attrs)], unwind=True)


def _fail_artifacts(page, shots, app_server):
    try:
        shots(page, "failure")
    finally:
        print("--- panel events (> sent, < answered) ---\n" + "\n".join(getattr(page, "panel_events", [])))
        print("--- App server log ---\n" + app_server.log_tail())


def test_verification_queues_panel(app_server, triaged, shots, page, panel_events):
    from playwright.sync_api import expect

    ds = triaged
    summary = queue_stats.summarize_counts(queue_stats.count_labels(ds, FIELD))
    counts = page.locator('[data-cy="entry-counts"]')
    try:
        _open_dataset(page, app_server, ds)

        # 1. the panel shows the database's counts per queue
        open_panel(page, "verification_queues")
        queues = page.locator("table").filter(has_text="Expected precision")
        green_row = queues.locator("tbody tr").filter(has=page.get_by_role("cell", name="green", exact=True))
        expect(green_row).to_contain_text(str(summary["queues"]["green"]["count"]))
        for q in ("yellow", "red"):
            row = queues.locator("tbody tr").filter(has=page.get_by_role("cell", name=q, exact=True))
            expect(row.locator("td").nth(1)).to_have_text(str(summary["queues"][q]["count"]))
        progress = page.locator("p").filter(has_text="Review progress")
        expect(progress).to_contain_text(f"0 of {summary['total']:,} labels decided")
        expect(page.locator(".js-plotly-plot .barlayer")).to_have_count(1)
        # recall on the verified images: a line of text and the labeling
        # threshold's curve (recall band, recall, precision)
        rec = workflow.triage_report(ds, FIELD)["recall"]
        recall_line = page.locator("p").filter(has_text="verified objects")
        expect(recall_line).to_contain_text(
            f"the auto-labels find {100 * rec['auto']['overall']['estimate']:.1f} %")
        expect(page.locator("p").filter(has_text="Labeling threshold")).to_contain_text(
            f"+{rec['curve'][0]['added_labels']:,} labels")
        curve = page.locator(".js-plotly-plot").filter(has=page.locator("text.legendtext", has_text="recall interval"))
        expect(curve.locator(".scatterlayer .trace")).to_have_count(4)
        expect(curve.locator("text.legendtext", has_text="precision")).to_have_count(1)
        # every threshold drawn as a point of the recall line
        expect(curve.locator(".scatterlayer .trace").nth(2).locator(".point")).to_have_count(len(rec["curve"]))
        # the next questions at the top, as crops
        crops = page.locator("img[src^='data:image/jpeg;base64,']")
        expect(crops.first).to_be_visible()
        assert crops.count() == min(8, summary["yellow_open"])
        shots(page, "01-panel")

        # 2. a click on the green queue shows exactly the green labels
        with _panel_event(page, "on_queue_cell"):
            green_row.get_by_role("cell", name="green", exact=True).click()
        n_green = len(queue_stats.drilldown_view(ds, FIELD, queue="green"))
        expect(counts).to_contain_text(samples_text(n_green))
        expect(page.get_by_text(re.compile(r"Showing queue green"))).to_be_visible()
        # the counts still describe the whole view
        expect(green_row.locator("td").nth(1)).to_have_text(str(summary["queues"]["green"]["count"]))
        # only the field under review is drawn
        checkbox = lambda path: page.locator(f'[data-cy="checkbox-{path}"] input').first  # noqa: E731
        expect(checkbox("ground_truth")).not_to_be_checked()
        expect(checkbox(FIELD)).to_be_checked()
        shots(page, "02-green-queue-in-grid")

        # 3. a click on a bar: the yellow part of the class with most yellow
        cls = max(summary["classes"], key=lambda c: summary["by_class"][c]["yellow"])
        k = summary["classes"].index(cls)
        bar = page.locator(".js-plotly-plot .barlayer .trace").nth(1).locator("path").nth(k)
        with _panel_event(page, "on_bar_click"):
            page.mouse.click(*_center(bar.bounding_box()))
        n_bar = len(queue_stats.drilldown_view(ds, FIELD, queue="yellow", label=cls))
        expect(page.get_by_text(re.compile(f"Showing label {cls}, queue yellow|Showing queue yellow, label {cls}"))).to_be_visible()
        expect(counts).to_contain_text(samples_text(n_bar))
        shots(page, "03-bar-in-grid")
        with _panel_event(page, "show_all"):
            page.get_by_role("button", name="Show all").click()
        expect(counts).to_contain_text(samples_text(len(ds)))
        expect(checkbox("ground_truth")).to_be_checked()

        # 4. the first yellow label to review opens in the modal; select it there
        first = queue_stats.next_yellow(ds, FIELD, 1)[0]
        upcoming = page.locator("table").filter(has_text="P(correct)")
        with _panel_event(page, "on_next_cell"):
            upcoming.locator("tbody tr").first.locator("td").first.click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible()
        expect(modal).to_contain_text(first["sample_id"])
        ids, boxes = ds.values([f"{FIELD}.detections.id", f"{FIELD}.detections.bounding_box"])
        box = {i: b for li, lb in zip(ids, boxes) for i, b in zip(li, lb)}[first["label_id"]]
        canvas = modal.locator("canvas").first
        expect(canvas).to_be_visible()
        c = canvas.bounding_box()
        side = min(c["width"], c["height"])  # square canvases, fitted and centred
        x0, y0 = c["x"] + (c["width"] - side) / 2, c["y"] + (c["height"] - side) / 2
        cx, cy = x0 + (box[0] + box[2] / 2) * side, y0 + (box[1] + box[3] / 2) * side
        # the looker takes clicks on labels once it has drawn them: hover
        # until its tooltip shows a label, then click
        hover_until_visible(page, page.locator('[data-cy^="attribute-"]').first, cx, cy,
                            "the modal never showed the label's tooltip")
        page.mouse.click(cx, cy)
        # the tooltip leads with class, confidence, queue and P(correct);
        # the scores and the embedding come after
        page.mouse.move(x0 + (box[0] + box[2] * 0.4) * side, y0 + (box[1] + box[3] * 0.4) * side, steps=4)
        attrs = page.locator('[data-cy^="attribute-"]')
        expect(attrs.first).to_be_visible()
        names = [a.get_attribute("data-cy")[len("attribute-"):] for a in attrs.all()]
        assert names[:4] == ["label", "confidence", "queue", "p_correct"], names
        assert names.index("review_rank") < min(names.index(a) for a in ("class_scores", "embedding")), names
        shots(page, "04-label-selected-in-modal")
        close_modal(page, modal)
        accept_selected = page.get_by_role("button", name=re.compile(r"Accept selected \(1 label"))
        expect(accept_selected).to_be_enabled()
        shots(page, "05-one-label-selected")

        # 5. accept it: the decision is in the database, the counts follow
        with _panel_event(page, "accept_selected"):
            accept_selected.click()
        expect(progress).to_contain_text(f"1 of {summary['total']:,} labels decided")
        review = dict(zip(*_labels(ds, "review")))
        assert review[first["label_id"]] == "accepted"
        assert sum(r == "accepted" for r in review.values()) == 1
        yellow_row = queues.locator("tbody tr").filter(has=page.get_by_role("cell", name="yellow", exact=True))
        expect(yellow_row.locator("td").nth(3)).to_have_text("1")
        shots(page, "06-accepted-selected")

        # 6. accept all green, then undo it
        n_pending_green = summary["queues"]["green"]["pending"]
        with _panel_event(page, "accept_green"):
            page.get_by_role("button", name=re.compile(r"Accept all green")).click()
        # it asks first: nothing is decided before the confirmation
        confirm = page.get_by_role("button", name=f"Yes, accept {n_pending_green:,} green labels")
        expect(confirm).to_be_visible()
        assert sum(r == "accepted" for r in _labels(ds, "review")[1]) == 1
        with _panel_event(page, "confirm_bulk"):
            confirm.click()
        expect(green_row.locator("td").nth(3)).to_have_text(str(n_pending_green))
        expect(green_row.locator("td").nth(6)).to_have_text(str(n_pending_green))  # in bulk
        expect(page.locator("p").filter(has_text="accepted in bulk")).to_be_visible()
        _, queue, review, bulk = _labels(ds, "queue", "review", "review_bulk")
        assert sum(q == "green" and r == "accepted" and b is True
                   for q, r, b in zip(queue, review, bulk)) == n_pending_green
        shots(page, "07-accepted-all-green")
        with _panel_event(page, "undo"):
            page.get_by_role("button", name="Undo").click()
        expect(green_row.locator("td").nth(3)).to_have_text("0")
        _, review = _labels(ds, "review")
        assert sum(r == "accepted" for r in review) == 1
        shots(page, "08-undone")
        assert not _page_errors(page), page.console_errors
    except BaseException:
        _fail_artifacts(page, shots, app_server)
        raise


def _box_select_mode(page, plot, area: dict) -> None:
    """Switches the map to box selection with its mode-bar button.

    The panel redraws the map several times after it opens (one answer per
    App event); a redraw that lands right on the click can undo the mode
    change, so the click is repeated until Plotly reports the mode."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        page.mouse.move(*_center(area))  # the mode bar shows on hover
        plot.locator('[data-title="Box Select"]').click()
        try:
            page.wait_for_function("gd => gd._fullLayout && gd._fullLayout.dragmode === 'select'",
                                   arg=plot.element_handle(), timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("the label map never switched to box selection")


def _wait_for_highlight(page, ids: set | None, n_points: int) -> None:
    """Waits until the label map draws ``n_points`` points of which exactly
    those whose label id is in ``ids`` are highlighted (opaque) and the
    others dimmed; with ``ids=None``, until no point is dimmed. Each drawn
    point carries its label id (Plotly binds the trace's ``ids`` to it)."""
    try:
        page.wait_for_function(
            """([ids, n]) => {
                const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
                    gd => [...gd.querySelectorAll('text.legendtext')].some(t => t.textContent.includes('/')));
                if (!plot) return false;
                const points = [...plot.querySelectorAll('.scatterlayer path.point')];
                if (points.length !== n) return false;
                const want = ids === null ? null : new Set(ids);
                let lit = 0;
                for (const p of points) {
                    const id = p.__data__ && p.__data__.id;
                    const opacity = parseFloat(getComputedStyle(p).opacity);
                    if (want === null || want.has(id)) {
                        if (opacity < 0.5) return false;
                        lit += 1;
                    } else if (opacity > 0.2) {
                        return false;
                    }
                }
                return want === null ? lit === n : lit === want.size;
            }""",
            arg=[None if ids is None else sorted(ids), n_points],
            timeout=UI_TIMEOUT_MS,
        )
    except BaseException:
        print("--- map traces: name, points by opacity ---", page.evaluate(
            """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd =>
                [...gd.querySelectorAll('.scatterlayer .trace')].map(t => {
                    const c = {};
                    t.querySelectorAll('path.point').forEach(p => {
                        const o = getComputedStyle(p).opacity; c[o] = (c[o] || 0) + 1; });
                    const cd = t.__data__ && t.__data__[0];
                    return [cd && cd.trace ? cd.trace.name : null, t.getAttribute('style'), c]; }))"""))
        print("--- map traces: input name, points; full name ---", page.evaluate(
            """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => [
                (gd.data || []).map(t => [t.name, (t.x || []).length, (t.selectedpoints || []).length]),
                (gd._fullData || []).map(t => t.name)])"""))
        raise


def test_label_map_panel(app_server, triaged, shots, page, panel_events):
    from playwright.sync_api import expect

    ds = triaged
    n_labels = ds.count(f"{FIELD}.detections")
    counts = page.locator('[data-cy="entry-counts"]')
    sample_of = {lid: sid for sid, lids in zip(*ds.values(["id", f"{FIELD}.detections.id"])) for lid in lids}
    try:
        _open_dataset(page, app_server, ds)

        # 1. the map draws every label (fewer than the per-colour cap)
        open_panel(page, "label_map")
        expect(page.get_by_text(re.compile(rf"PCA map of {n_labels:,} labels"))).to_be_visible()
        plot = page.locator(".js-plotly-plot").filter(has=page.locator("text.legendtext", has_text="/"))
        points = plot.locator(".scatterlayer path.point")
        expect(points).to_have_count(n_labels)
        expect(plot.locator("text.legendtext").first).to_contain_text("green (")
        shots(page, "01-map")

        # 2. a click on a point opens its sample
        with _panel_event(page, "on_point_click") as clicked:
            page.mouse.click(*_center(points.nth(0).bounding_box()))
        label_id = request_params(clicked.value.request).get("id")
        assert label_id in sample_of
        modal = page.locator('[data-cy="modal-content"]')
        # the modal opens on that sample; its sidebar shows the id only once
        # the field has rendered, which a loaded CI machine may not reach
        # within the timeout, so the id is checked through the App's URL
        expect(modal).to_be_visible()
        page.wait_for_function(
            "id => window.location.href.includes(id) || document.body.innerText.includes(id)",
            arg=sample_of[label_id], timeout=UI_TIMEOUT_MS,
        )
        shots(page, "02-point-opens-sample")
        close_modal(page, modal)

        # 3. a box selection over the left half shows exactly those labels
        area = plot.locator(".nsewdrag").first.bounding_box()
        _box_select_mode(page, plot, area)
        with _panel_event(page, "on_map_selected", with_data=True) as selected:
            page.mouse.move(area["x"] + 3, area["y"] + 3)
            page.mouse.down()
            page.mouse.move(area["x"] + area["width"] * 0.45, area["y"] + area["height"] - 3, steps=12)
            page.mouse.up()
        # Plotly sends empty selections of its own (on a plain click, and
        # when it redraws the map after the view changed); the panel ignores
        # them (they used to reset the grid when they came after the App had
        # applied the real selection: the old flake)
        ids = {p["id"] for p in request_params(selected.value.request).get("data") or []}
        assert 0 < len(ids) < n_labels
        n_samples = len({sample_of[i] for i in ids})
        expect(page.get_by_text(f"{len(ids):,} label(s) selected on the map")).to_be_visible()
        view_ids = set(ds.select_labels(ids=list(ids), fields=FIELD).values(f"{FIELD}.detections.id", unwind=True))
        assert view_ids == ids
        # the map may share its pane with the grid (panels stay open between
        # tests and the App remembers where): bring the grid to the front
        if not counts.is_visible():
            page.get_by_text("Samples", exact=True).first.click()
        expect(counts).to_contain_text(samples_text(n_samples))
        shots(page, "03-box-selection-in-grid")

        # 4. the map, redrawn for the new view, keeps exactly the selected
        # points highlighted and the others dimmed (Plotly's own selection
        # is cleared by the redraw: the panel's traces carry it) ...
        open_panel(page, "label_map")
        _wait_for_highlight(page, ids, n_labels)
        shots(page, "04-selection-highlighted")
        # ... also when the map is redrawn coloured by class
        with _panel_event(page, "on_change_color_by"):
            page.locator("xpath=//*[normalize-space()='Colour by']/following::*[@role='combobox'][1]").click()
            page.locator('[role="option"][data-value="class"]').click()
        expect(plot.locator("text.legendtext").first).not_to_contain_text("green (")
        _wait_for_highlight(page, ids, n_labels)
        # the App sends more events around the change (on_change_view, with
        # the state as it was): once all are answered, the map is still
        # coloured by class (one of them used to redraw it by queue)
        _wait_until_answered(page)
        classes = sorted(ds.distinct(f"{FIELD}.detections.label"))
        expect(plot.locator("text.legendtext")).to_have_text(
            [re.compile(rf"^{re.escape(c)} \(") for c in classes])
        _wait_for_highlight(page, ids, n_labels)
        shots(page, "05-highlight-coloured-by-class")
        # 5. Show all: the whole view, nothing dimmed
        # (the map's own button: the queues panel, open since the first
        # test, has one too)
        with _panel_event(page, "show_all"):
            page.locator("xpath=//button[contains(normalize-space(), 'Recompute map')]"
                         "/following::button[contains(normalize-space(), 'Show all')][1]").click()
        _wait_for_highlight(page, None, n_labels)
        shots(page, "06-show-all")
        assert not _page_errors(page), page.console_errors
    except BaseException:
        _fail_artifacts(page, shots, app_server)
        raise


@pytest.fixture(scope="module")
def weakly_triaged(tmp_root):
    """A persistent digits dataset calibrated on few verified images and
    confidence alone (little green): an audit has something to certify.
    Returns it and each auto-label's truth (for the simulated reviewer)."""
    name = f"stoplight-audit-{uuid.uuid4().hex[:8]}"
    ds, info = verified_digits(tmp_root / "digits-audit-browser", seed=5, part=10, pick_seed=2, name=name)
    truth = dict(zip(ds.values(f"{FIELD}.detections.id", unwind=True), ~np.asarray(info["wrong"])))
    workflow.calibrate_triage(ds.match_tags("verified"), FIELD, "ground_truth", signals=["confidence"],
                              scope="class")
    workflow.assign_queues(ds, FIELD, diversity_attr=None)
    with served(ds):
        yield ds, truth


def test_audit_green_in_the_panel(app_server, weakly_triaged, shots, page, panel_events):
    """Start an audit from the panel, answer its questions (the first ones
    with the panel's buttons on the label shown alone in the grid, the rest
    through the SDK as another reviewer would), and see it certified."""
    from playwright.sync_api import expect

    from stoplight.plugins.review.decisions import review_labels
    from stoplight.plugins.triage.green_audit import peek_audit

    ds, truth = weakly_triaged
    plan = workflow.latest_audit_plan(ds, FIELD, "triage")
    assert plan and plan["thresholds"], plan
    counts = page.locator('[data-cy="entry-counts"]')
    try:
        _open_dataset(page, app_server, ds)
        open_panel(page, "verification_queues")
        # 1. the plan, as a question a person can act on
        expect(page.get_by_text(re.compile(rf"Answer ~{plan['sample']} questions to certify"))).to_be_visible()
        shots(page, "01-plan")
        # 2. start the audit
        with _panel_event(page, "start_audit"):
            page.get_by_role("button", name=re.compile(r"Start audit")).click()
        progress = page.get_by_text(re.compile(r"0 of \d+ answered"))
        expect(progress).to_be_visible()
        ds.reload()  # the App server started the audit
        audit = peek_audit(ds, "audit")
        assert audit["status"] == "needs_answers" and audit["pending"]
        shots(page, "02-started")
        # 3. the next audit label opens; answer it and the next one with the buttons
        first = audit["pending"][0]
        with _panel_event(page, "next_audit_label"):
            page.get_by_role("button", name="Next audit label").click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible()
        page.wait_for_function("id => window.location.href.includes(id) || document.body.innerText.includes(id)",
                               arg=first["sample_id"])
        shots(page, "03-audit-label-open")
        close_modal(page, modal)
        for step, label in enumerate([first["label_id"], None]):
            label = label or peek_audit(ds, "audit")["pending"][0]["label_id"]
            # the label under question is alone in the grid
            expect(counts).to_contain_text(samples_text(1))
            name = "It is right (accept)" if truth[label] else "It is wrong (reject)"
            with _panel_event(page, "accept_audit_label" if truth[label] else "reject_audit_label"):
                page.get_by_role("button", name=name).click()
            expect(page.get_by_text(re.compile(rf"{step + 1} of \d+ answered"))).to_be_visible()
            review = dict(zip(*_labels(ds, "review")))
            assert review[label] == ("accepted" if truth[label] else "rejected")
        shots(page, "04-two-answered")
        # 4. another reviewer answers the rest through the SDK
        while True:
            audit = peek_audit(ds, "audit")
            if audit["status"] != "needs_answers":
                break
            batch = [p["label_id"] for p in audit["pending"][:30]]
            for action, ok in (("accept", True), ("reject", False)):
                ids = [i for i in batch if bool(truth[i]) == ok]
                if ids:
                    review_labels(ds, FIELD, action, label_ids=ids, user="another-reviewer")
        assert audit["status"] == "certified", audit["message"]
        green_before = sum(q == "green" for q in _labels(ds, "queue")[1])
        # 5. the panel's next refresh applies the certificate and says so
        # (the App restores its last view, the one audit label: clear it)
        page.reload()
        page.locator('[data-cy="btn-clear-view-bar"]').click()
        wait_for_grid(page, drawn=False)
        open_panel(page, "verification_queues")
        expect(page.get_by_text(re.compile(r"Certified"))).to_be_visible()
        _, queue, review = _labels(ds, "queue", "review")
        green_after = sum(q == "green" and r != "rejected" for q, r in zip(queue, review))
        assert green_after > green_before
        queues = page.locator("table").filter(has_text="Expected precision")
        green_row = queues.locator("tbody tr").filter(has=page.get_by_role("cell", name="green", exact=True))
        expect(green_row.locator("td").nth(1)).to_have_text(str(sum(q == "green" for q in queue)))
        expect(page.get_by_role("button", name="Start a new audit")).to_be_visible()
        shots(page, "05-certified")
        assert not _page_errors(page), page.console_errors
    except BaseException:
        _fail_artifacts(page, shots, app_server)
        raise
