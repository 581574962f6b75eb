"""A real Label Studio server for the hand-off tests, and its REST API.

The server runs from its own virtual environment (``.venv-labelstudio``,
made by ``bash .ci/setup --test``) so that its Django and pydantic pins
never touch the environment FiftyOne runs in; the tests' environment only
has ``label-studio-sdk``, the client FiftyOne's backend uses.

:func:`start_label_studio` starts ``label-studio start --no-browser`` on a
free ``127.0.0.1`` port with a temporary data directory and a user and API
token created non-interactively, and waits for ``/health``. The annotator's
side (submitting answers) goes through Label Studio's REST API with plain
``requests``: :func:`tasks`, :func:`submit`. :func:`running_label_studio`
is the server for a ``with`` block (a fixture's).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from conftest import REPO, free_port

#: the server's executable; STOPLIGHT_LABEL_STUDIO overrides it
LABEL_STUDIO = Path(os.environ.get("STOPLIGHT_LABEL_STUDIO", REPO / ".venv-labelstudio" / "bin" / "label-studio"))
#: bound on the server start (the first start migrates its SQLite database;
#: 85 s on this project's busy 2-core machine)
START_TIMEOUT = float(os.environ.get("STOPLIGHT_LABEL_STUDIO_START_TIMEOUT", 400))


@dataclass
class LabelStudio:
    url: str
    api_key: str
    username: str
    proc: subprocess.Popen
    log: Path

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.api_key}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


@contextmanager
def running_label_studio(root: Path) -> Iterator[LabelStudio]:
    """A Label Studio server with its data under ``root`` for the block,
    stopped after it; skips the test if Label Studio is not installed."""
    import pytest

    if not LABEL_STUDIO.exists():
        pytest.skip(f"Label Studio is not installed at {LABEL_STUDIO} (bash .ci/setup --test installs it)")
    server = start_label_studio(root)
    try:
        yield server
    finally:
        server.stop()


def start_label_studio(root: Path) -> LabelStudio:
    """Starts a Label Studio server with its data under ``root``.

    Raises:
        RuntimeError: if it exits or is not healthy within ``START_TIMEOUT``
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = secrets.token_hex(20)
    username = "reviewer@stoplight.test"
    env = dict(
        os.environ,
        LABEL_STUDIO_BASE_DATA_DIR=str(root / "data"),
        LABEL_STUDIO_USERNAME=username,
        LABEL_STUDIO_PASSWORD=secrets.token_hex(12),
        LABEL_STUDIO_USER_TOKEN=token,
        # the legacy "Token <key>" auth is what FiftyOne's backend sends
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        # no calls out: no PyPI version check, no usage analytics
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        HOME=str(root),
    )
    for key in ("LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"):
        env.pop(key, None)
    log_path = root / "label-studio.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(root / "data"), "--username", username, "--password", env["LABEL_STUDIO_PASSWORD"],
         "--user-token", token, "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(root),
    )
    url = f"http://127.0.0.1:{port}"
    server = LabelStudio(url=url, api_key=token, username=username, proc=proc, log=log_path)
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode}; log:\n{log_path.read_text()[-3000:]}")
        try:
            ok = requests.get(f"{url}/health", timeout=2).status_code == 200
            if ok and requests.get(f"{url}/api/version", headers=server.headers, timeout=5).ok:
                return server
        except requests.RequestException:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"Label Studio was not healthy within {START_TIMEOUT} s; log:\n{log_path.read_text()[-3000:]}")


def tasks(server: LabelStudio, project_id: int) -> list[dict]:
    """Every task of a project, with its predictions and annotations."""
    r = requests.get(
        f"{server.url}/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"},
        headers=server.headers, timeout=30,
    )
    r.raise_for_status()
    body = r.json()
    return body["tasks"] if isinstance(body, dict) else body


def submit(server: LabelStudio, task_id: int, result: list[dict], cancelled: bool = False) -> dict:
    """Submits an annotation of a task, as the annotator's Submit (or Skip,
    with ``cancelled``) button does."""
    r = requests.post(
        f"{server.url}/api/tasks/{task_id}/annotations/",
        json={"result": result, "was_cancelled": cancelled}, headers=server.headers, timeout=30,
    )
    r.raise_for_status()
    return r.json()
