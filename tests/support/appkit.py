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
routes), :func:`screenshot`.

(PYTEST_DONT_REWRITE: test modules import the helpers before pytest loads
this module as their plugin; it has no asserts to rewrite.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
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


def screenshot(page, directory: Path, name: str, timeout: float = 90_000) -> Path | None:
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
    context.set_default_timeout(60_000)
    context.set_default_navigation_timeout(60_000)
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
