"""The operator from the FiftyOne App in headless Chromium, end to end.

A user's path: open the dataset page, open the operator browser, find the
Stoplight operator, fill its form (tiny random-weight OWLv2 checkpoint),
execute, read the run summary, and see the new label field in the App. The
labels are then checked in the database. Screenshots of every step go to
``artifacts/browser/``.

Selectors: FiftyOne's ``data-cy`` attributes for App chrome (grid, sidebar,
operator-browser button), visible text for the operator form (its fields
are MUI inputs without accessible labels: each input is found as the first
input after its label text), ARIA roles for the backend dropdown.
"""

from __future__ import annotations


import fiftyone as fo
import pytest

from appkit import (
    add_classes, commit, execute_form, input_after, open_dataset_page, output_value, persistent_dataset, resolved,
    save_failure, screenshot, wait_for_grid,
)

pytest_plugins = ["appkit"]

OPERATOR_LABEL = "Stoplight: zero-shot auto-label"
FORM_TITLE = "Zero-shot auto-label"
LABEL_FIELD = "browser_labels"


@pytest.fixture()
def browser_dataset(image_dir):
    """A persistent dataset of the real photos, visible to the App server."""
    with persistent_dataset("stoplight-browser", image_dir) as ds:
        yield ds


@pytest.fixture()
def shots(artifacts_dir):
    d = artifacts_dir / "browser"
    d.mkdir(parents=True, exist_ok=True)
    for old in [*d.glob("*.png"), *d.glob("*.html")]:
        old.unlink()
    return d


def test_autolabel_from_the_operator_browser(
    app_server, browser_dataset, tiny_checkpoint, shots, page
):
    from playwright.sync_api import expect
    from stoplight.plugins.autolabel.backends import available_backends

    ds = browser_dataset
    checkpoint = tiny_checkpoint("owlv2")
    n = len(ds)
    execute = page.get_by_role("button", name="Execute", exact=True)
    try:
        # 1. the dataset page and its grid
        open_dataset_page(page, app_server, ds)
        screenshot(page, shots, "01-dataset-grid")

        # 2. the operator browser finds the operator by either name
        page.locator('[data-cy="action-browse-operations"]').click()
        search = page.get_by_placeholder("Search operations by name...")
        expect(search).to_be_visible()
        item = page.get_by_text(OPERATOR_LABEL, exact=True)
        for query in ("zero-shot", "auto-label"):
            search.fill(query)
            expect(item).to_be_visible()
        screenshot(page, shots, "02-operator-browser-search")
        # the form opens, then re-resolves once with its defaults filled in:
        # input before that answer can be overwritten by it
        with resolved(page, "label_field", "autolabels"):
            item.click()
        expect(page.get_by_text(FORM_TITLE, exact=True)).to_be_visible()

        # 3. the form: backend dropdown lists every backend; pick owlv2
        page.locator(
            "xpath=//p[normalize-space()='Backend']/following::*[@role='combobox'][1]"
        ).click()
        options = page.get_by_role("option")
        expect(options).to_have_count(len(available_backends()))
        offered = sorted(options.evaluate_all("els => els.map(e => e.dataset.value)"))
        assert offered == available_backends()
        screenshot(page, shots, "03-backend-choices")
        page.locator('[role="option"][data-value="owlv2"]').click()
        expect(page.get_by_role("listbox")).to_have_count(0)

        commit(page, input_after(page, "Checkpoint"), checkpoint, "checkpoint", checkpoint)
        classes = ["person", "bus"]
        add_classes(page, classes)
        commit(page, input_after(page, "Label field"), LABEL_FIELD, "label_field", LABEL_FIELD)
        commit(page, input_after(page, "Confidence threshold"), "0", "confidence_threshold", 0)
        commit(page, input_after(page, "Device"), "cpu", "device", "cpu")

        # the re-resolved form kept every value
        expect(input_after(page, "Checkpoint")).to_have_value(checkpoint)
        expect(input_after(page, "Classes", 1)).to_have_value("person")
        expect(input_after(page, "Classes", 2)).to_have_value("bus")
        expect(input_after(page, "Label field")).to_have_value(LABEL_FIELD)
        expect(input_after(page, "Confidence threshold")).to_have_value("0")
        expect(input_after(page, "Device")).to_have_value("cpu")
        expect(execute).to_be_enabled()
        page.get_by_text("Backend", exact=True).scroll_into_view_if_needed()
        screenshot(page, shots, "04-operator-form-top")
        input_after(page, "Device").scroll_into_view_if_needed()
        screenshot(page, shots, "05-operator-form-filled")

        # 4. execute; the run summary is shown when the generator finishes
        body = execute_form(page)
        assert body["operator_uri"] == "@stoplight/autolabel/zero_shot_detect"
        assert body["dataset_name"] == ds.name
        params = body["params"]
        assert {k: params.get(k) for k in (
            "backend", "checkpoint", "classes", "label_field", "confidence_threshold", "device"
        )} == dict(
            backend="owlv2", checkpoint=checkpoint, classes=classes,
            label_field=LABEL_FIELD, confidence_threshold=0, device="cpu",
        )
        labeled = output_value(page, "Samples labeled:")
        expect(labeled).to_have_text(str(n))
        expect(output_value(page, "Samples failed:")).to_have_text("0")
        run_key = output_value(page, "Run key:").inner_text().strip()
        num_labels = int(output_value(page, "Labels written:").inner_text())
        screenshot(page, shots, "06-run-summary")

        # 5. the labels are in the database
        ds.reload()
        assert ds.get_field(LABEL_FIELD).document_type is fo.Detections
        assert ds.exists(LABEL_FIELD).count() == n
        assert ds.count(f"{LABEL_FIELD}.detections") == num_labels > 0
        assert set(ds.distinct(f"{LABEL_FIELD}.detections.label")) <= {"person", "bus"}
        assert ds.list_runs() == [run_key]
        config = ds.get_run_info(run_key).config
        assert (config.label_field, config.backend, config.confidence_threshold) == (
            LABEL_FIELD, "owlv2", 0.0
        )

        # 6. the App shows them: the sidebar lists the field (the operator
        # reloads the dataset), and the field's label filter offers exactly
        # the classes in the database
        page.get_by_role("button", name="Done").click()
        field = page.locator(f'[data-cy="sidebar-field-{LABEL_FIELD}"]')
        expect(field).to_be_visible()
        page.locator(f'[data-cy="sidebar-field-arrow-enabled-{LABEL_FIELD}"]').click()
        sidebar = page.locator('[data-cy="sidebar"]')
        sidebar.get_by_placeholder("+ filter by label").click()
        results = page.locator(
            f'[data-cy="selector-results-container-sidebar-search-{LABEL_FIELD}.detections.label"]'
            ' [data-cy^="selector-result-"]'
        )
        found = sorted(ds.distinct(f"{LABEL_FIELD}.detections.label"))
        expect(results).to_have_text(found)
        screenshot(page, shots, "07-labeled-samples")

        # after a full page load, from the database alone
        page.reload()
        wait_for_grid(page)
        expect(field).to_be_visible()
        screenshot(page, shots, "08-after-reload")
        assert not [e for e in page.console_errors if "pageerror" in e], page.console_errors
    except BaseException:
        save_failure(page, shots, app_server)
        raise
