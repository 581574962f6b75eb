"""The FiftyOne App server and headless Chromium, for tests that drive the App.

Use it from a test module with::

    pytest_plugins = ["appkit"]

which registers the fixtures once for the whole session (importing the
fixture functions into several modules instead would start one server per
module):

- ``app_server`` (session): a real ``python -m fiftyone.server.main``
  subprocess on a free ``127.0.0.1`` port. It inherits ``os.environ`` as set
  by ``conftest.py``, so it sees the tests' private MongoDB and plugins
  directory. Datasets it must see have to be ``persistent=True``.
- ``chromium`` (module): a headless Playwright Chromium from
  ``/usr/bin/chromium``. Playwright's sync API keeps an asyncio loop marked
  as *running* in the main thread while it is started, which changes how
  FiftyOne's ``execute_operator`` behaves (it returns a Task instead of
  running); so the browser is stopped at the end of each module that uses it
  rather than kept for the whole session.
- ``page`` (function): a fresh browser context and page with a large
  viewport and FiftyOne's Playwright flag (no popovers, no analytics);
  console errors are collected on ``page.console_errors``.

Helpers: :func:`post_json`, :func:`stream_json_lines`,
:func:`operator_request` (the request body the App sends to the operator
routes), :func:`screenshot`; for pages: :func:`wait_for_grid`,
:func:`open_operator_form`, :func:`commit`, :func:`add_classes` and the other operator-form
helpers, :func:`open_panel`, :func:`hover_until_visible`,
:func:`close_modal`, :func:`persistent_dataset`, :func:`step_shots`,
:func:`save_failure`, :func:`served`, :func:`open_dataset_page`,
:func:`samples_text`, :func:`execute_form`.

Every wait on what the App shows has one budget, :data:`UI_TIMEOUT_MS`:
the ``page`` fixture makes it the default of Playwright's actions, its
navigation and its ``expect`` assertions, and the helpers here use it.

(PYTEST_DONT_REWRITE: test modules import the helpers before pytest loads
this module as their plugin; it has no asserts to rewrite.)
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from conftest import free_port

CHROMIUM = os.environ.get("STOPLIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: bound on the server start (imports fiftyone, builds the app): seconds
SERVER_START_TIMEOUT = float(os.environ.get("STOPLIGHT_APP_START_TIMEOUT", 180))
#: bound on every wait on what the App shows, in ms: a loaded 2-core machine
#: can starve the server and Chromium for tens of seconds, so the tests wait
#: on the App's state under this one budget rather than on fixed sleeps
UI_TIMEOUT_MS = int(os.environ.get("STOPLIGHT_UI_TIMEOUT_MS", 90_000))
#: one try of a bounded retry loop (e.g. a hover until a tooltip shows)
UI_TRY_MS = 2_000


class AppServer:
    """A FiftyOne App server subprocess.

    Args:
        port: the TCP port on 127.0.0.1; ``None`` picks a free one
        log_path: where the server's stdout/stderr go
        command: a command that serves the App on ``port`` (e.g. a script
            that calls ``fo.launch_app``) instead of ``fiftyone.server.main``;
            it runs in its own process group, which :meth:`stop` ends whole
        cwd: the command's working directory (default: the log's folder)
        env: variables added to ``os.environ`` for the command
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 command: list[str] | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(
            log_path or Path(tempfile.mkdtemp(prefix="stoplight-app-")) / "server.log"
        )
        self.command = command
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = SERVER_START_TIMEOUT) -> "AppServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        env = dict(os.environ, **self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = self.command or [sys.executable, "-m", "fiftyone.server.main",
                                   "--address", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.cwd or self.log_path.parent),
            # a launcher's App server is its child: stopped with it
            start_new_session=self.command is not None,
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"FiftyOne App server exited with code {self.proc.returncode} "
                    f"before it was ready; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                r = requests.get(f"{self.url}/fiftyone", timeout=5)
                if r.status_code == 200:
                    return
                last_error = RuntimeError(f"GET /fiftyone answered {r.status_code}")
            except requests.RequestException as e:
                last_error = e
            time.sleep(0.5)
        raise RuntimeError(
            f"FiftyOne App server not ready on {self.url} within {timeout:.0f} s "
            f"(last error: {last_error}); log {self.log_path}:\n{self.log_tail()}"
        )

    def _stop_group(self, timeout: float) -> None:
        """SIGTERM to the launcher's process group, SIGKILL to what is left."""
        import signal

        pgid = self.proc.pid  # start_new_session: the group is the launcher's pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                self.proc.poll()  # reaps the launcher
                time.sleep(0.2)
            else:
                continue
            break
        self.proc.poll()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None and self.command is not None:
            self._stop_group(timeout)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def post_json(server: AppServer, route: str, body: dict, timeout: float = 60) -> requests.Response:
    """POSTs ``body`` as JSON to ``route`` of the App server."""
    return requests.post(f"{server.url}{route}", json=body, timeout=timeout)


def stream_json_lines(
    server: AppServer, route: str, body: dict, timeout: float = 300
) -> tuple[requests.Response, Iterator[Any]]:
    """POSTs ``body`` and returns the response and an iterator over the JSON
    values of its streamed lines (as the App reads ``json-stream`` answers).

    ``timeout`` bounds the connection and each wait for the next chunk.
    """
    r = requests.post(
        f"{server.url}{route}", json=body, stream=True, timeout=(10, timeout)
    )

    def lines():
        with r:
            for line in r.iter_lines():
                if line.strip():
                    yield json.loads(line)

    return r, lines()


def operator_request(operator_uri: str, dataset_name: str | None, params: dict, **extra) -> dict:
    """The body the App (1.22) posts to ``/operators/execute[/generator]``
    and ``/operators/resolve-type`` from a dataset page with no selection."""
    body = dict(
        current_sample=None,
        dataset_name=dataset_name,
        delegation_target=None,
        extended=None,
        extended_selection=None,
        filters={},
        operator_uri=operator_uri,
        params=params,
        request_delegation=False,
        selected=[],
        selected_samples=[],
        sample_selection_style={},
        selected_labels=[],
        view=[],
        view_name=None,
        group_slice=None,
        query_performance=False,
        spaces=None,
        workspace_name=None,
        prompt_id=None,
        active_fields=[],
    )
    body.update(extra)
    return body


def screenshot(page, directory: Path, name: str, timeout: float = UI_TIMEOUT_MS) -> Path | None:
    """Saves a PNG of the viewport as ``directory/name.png``.

    An artifact, not a check: a loaded 2-core machine can starve Chromium for
    many seconds (seen: 30 s exceeded under a load of 13); past ``timeout``
    the test goes on (or reports its own error), and this says so and
    returns None.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=False, timeout=timeout)
    except PlaywrightTimeout as e:
        print(f"screenshot {path} not taken: {str(e).splitlines()[0]}")
        return None
    return path


def step_shots(directory: Path, prefix: str):
    """``shots(page, step)``: a screenshot ``directory/<prefix>-<step>.png``
    per step of a test; the test's older ones are removed first."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob(f"{prefix}-*"):
        old.unlink()
    return lambda page, step: screenshot(page, directory, f"{prefix}-{step}")


@contextmanager
def served(ds):
    """``ds`` made persistent for the block (the App server, a separate
    process, sees only persistent datasets), deleted on the way out."""
    import fiftyone as fo

    name = ds.name
    ds.persistent = True
    try:
        yield ds
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


@contextmanager
def persistent_dataset(prefix: str, image_dir: Path | None = None, pattern: str = "*.*",
                       limit: int | None = None):
    """A persistent dataset named ``<prefix>-<random>`` with the first
    ``limit`` files of ``image_dir`` that match ``pattern`` as samples if
    given; deleted on the way out (see :func:`served`)."""
    import fiftyone as fo

    ds = fo.Dataset(f"{prefix}-{uuid.uuid4().hex[:8]}", persistent=True)
    if image_dir is not None:
        ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob(pattern))[:limit]])
    with served(ds):
        yield ds


def save_failure(page, directory: Path, app_server: AppServer | None = None) -> None:
    """What a failed browser test leaves behind: a screenshot and the page's
    HTML in ``directory``, and the App server's log tail on stdout."""
    try:
        screenshot(page, directory, "failure")
        (directory / "failure.html").write_text(page.content())
    finally:
        if app_server is not None:
            print("--- App server log ---\n" + app_server.log_tail())


# ------------------------------------------------------------ page helpers

_GRID_DRAWN = """() => {
    const cells = document.querySelectorAll('[data-cy="fo-grid"] [data-cy="looker"]');
    const drawn = document.querySelectorAll(
        '[data-cy="fo-grid"] [data-cy="looker"] canvas[canvas-loaded="true"]');
    return cells.length > 0 && drawn.length === cells.length;
}"""
_GRID_SHOWN = """() => document.querySelectorAll(
    '[data-cy="fo-grid"] [data-cy="looker"]').length > 0"""


def wait_for_grid(page, drawn: bool = True) -> None:
    """Waits until the grid shows thumbnails and (``drawn``) every one is drawn."""
    page.wait_for_function(_GRID_DRAWN if drawn else _GRID_SHOWN, timeout=UI_TIMEOUT_MS)


def samples_text(n: int) -> str:
    """How the App's entry counts show ``n`` samples."""
    return f"{n:,} sample" + ("" if n == 1 else "s")


def open_dataset_page(page, app_server: AppServer, ds) -> None:
    """Opens ``ds`` in the App and waits until every thumbnail is drawn and
    the entry counts show all its samples."""
    from playwright.sync_api import expect

    page.goto(f"{app_server.url}/datasets/{ds.name}")
    wait_for_grid(page)
    expect(page.locator('[data-cy="entry-counts"]')).to_contain_text(samples_text(len(ds)))


def execute_form(page, route: str = "**/operators/execute/generator") -> dict:
    """Clicks the operator form's Execute and returns the JSON body the App
    posted to ``route`` (a glob or a predicate on the request)."""
    with page.expect_request(route) as sent:
        page.get_by_role("button", name="Execute", exact=True).click()
    return json.loads(sent.value.post_data)


def request_params(request) -> dict:
    """The ``params`` of an operator request's JSON body (``{}`` if none)."""
    try:
        return json.loads(request.post_data or "{}").get("params") or {}
    except ValueError:
        return {}


def input_after(page, label: str, k: int = 1):
    """The ``k``-th input after the operator-form label ``label`` (the
    form's MUI inputs have no accessible labels)."""
    return page.locator(f"xpath=(//p[normalize-space()='{label}'])[1]/following::input[{k}]")


def output_value(page, label: str):
    """The value shown after ``label`` in an operator's output view."""
    return page.locator(f"xpath=//p[normalize-space()='{label}']/following-sibling::p[1]")


def resolved(page, key: str, expected):
    """Waits (as a context manager) for the server's answer to the form's
    ``/operators/resolve-type`` request whose ``params[key] == expected``."""
    return page.expect_response(
        lambda r: "/operators/resolve-type" in r.url
        and request_params(r.request).get(key) == expected,
        timeout=UI_TIMEOUT_MS,
    )


def commit(page, locator, value: str, key: str, expected) -> None:
    """Fills an input and waits until the server answered for the new value.

    The form is dynamic: each change is sent to ``/operators/resolve-type``
    (debounced) and the re-resolved form is rendered again. Input made while
    that round trip is in flight can be dropped by the App's form state (the
    input shows it, the params lack it), so each value's round trip ends
    before the next value is entered.
    """
    with resolved(page, key, expected):
        locator.fill(value)


def add_classes(page, classes: list[str]) -> None:
    """Enters ``classes`` in the form's "Classes" list, one new row each;
    each row waits for the re-resolved form (the empty new row, then the
    server's answer for the list so far) before the next."""
    from playwright.sync_api import expect

    add = page.get_by_role("button", name="Add classes")
    for k, name in enumerate(classes, start=1):
        add.click()
        expect(input_after(page, "Classes", k)).to_have_value("")
        commit(page, input_after(page, "Classes", k), name, "classes", list(classes[:k]))


def open_operator_form(page, query: str, operator_label: str, key: str, expected) -> None:
    """Finds the operator ``operator_label`` in the operator browser by
    ``query`` and opens its form, waiting until the form has re-resolved
    with its defaults (``params[key] == expected``): input made before that
    answer can be overwritten by it."""
    from playwright.sync_api import expect

    page.locator('[data-cy="action-browse-operations"]').click()
    page.get_by_placeholder("Search operations by name...").fill(query)
    item = page.get_by_text(operator_label, exact=True)
    expect(item).to_be_visible()
    with resolved(page, key, expected):
        item.click()


def open_panel(page, name: str) -> None:
    """Opens (or brings forward) the panel ``name`` from the grid's "+" menu
    (the App server keeps the panels of its last session)."""
    tab = page.locator(f'[data-cy="panel-tab-{name}"]')
    if tab.count():
        tab.first.click()
        return
    page.locator('[data-cy="new-panel-btn"]').first.click()
    page.locator(f'[data-cy="new-panel-option-{name}"]').click()


def hover_until_visible(page, locator, x: float, y: float, what: str) -> None:
    """Hovers at ``(x, y)`` until ``locator`` shows, within the budget.

    The looker takes clicks on labels once it has drawn them and shows a
    tooltip on hover: each try moves the mouse a pixel (so that it is a new
    hover) and waits a short while for the tooltip.
    """
    from playwright.sync_api import expect

    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    for k in itertools.count():
        page.mouse.move(x + k % 3, y, steps=2)
        try:
            expect(locator).to_be_visible(timeout=UI_TRY_MS)
            return
        except AssertionError:
            assert time.monotonic() < deadline, what


def close_modal(page, modal) -> None:
    """Closes the sample modal by a click on its backdrop, which keeps the
    label selection."""
    from playwright.sync_api import expect

    page.mouse.click(8, 500)
    expect(modal).to_have_count(0)


@pytest.fixture(scope="session")
def app_server(tmp_root) -> Iterator[AppServer]:
    server = AppServer(log_path=Path(tmp_root) / "app-server" / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # CI installs it: a missing one is a failure
        pytest.fail(f"playwright is not installed ({e}); run `bash .ci/setup --test`")
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"No Chromium at {CHROMIUM}: the browser tests need it "
            "(`apt-get install chromium`, or `bash .ci/setup --test` as root; "
            "STOPLIGHT_CHROMIUM overrides the path)"
        )
    from playwright.sync_api import expect

    # assertions wait on the App under the same budget as actions (their
    # own default, 5 s, is less than a loaded machine can take)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture()
def page(chromium):
    context = chromium.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    # the flag FiftyOne's own Playwright tests set: the App then shows no
    # "Explore Enterprise" popover or query-performance toast (overlays that
    # would intercept clicks at random times) and loads no analytics
    context.add_init_script(
        "window.IS_PLAYWRIGHT = true;"
        "try { localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true') } catch (e) {}"
    )
    pg = context.new_page()
    pg.console_errors = []
    pg.on(
        "console",
        lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    pg.on("pageerror", lambda exc: pg.console_errors.append(f"pageerror: {exc}"))
    try:
        yield pg
    finally:
        context.close()
