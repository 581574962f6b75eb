"""Install the plugin the way users do: `fiftyone plugins download <url>`.

The repository is zipped and served from 127.0.0.1 (an archive URL is one of
the sources `fiftyone plugins download` accepts, next to GitHub URLs), then
installed with FiftyOne's own CLI into a fresh plugins directory, and loaded
by a fresh process.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from functools import partial

import pytest

from conftest import REPO

SKIP_DIRS = {".git", ".venv", "artifacts", "__pycache__", ".pytest_cache", "checkpoints"}


def _zip_repo(dst):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
            for f in files:
                path = os.path.join(root, f)
                z.write(path, os.path.join("stoplight-main", os.path.relpath(path, REPO)))


@pytest.fixture()
def served_zip(tmp_path):
    _zip_repo(tmp_path / "stoplight.zip")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stoplight.zip"
    server.shutdown()


def _cli(args, env):
    exe = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)


def test_download_install_and_load(served_zip, tmp_path):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins_dir))

    r = _cli(["plugins", "download", served_zip], env)
    assert r.returncode == 0, r.stderr
    installed = [p for p in plugins_dir.rglob("fiftyone.yml")]
    assert len(installed) == 1

    r = _cli(["plugins", "list"], env)
    assert "@stoplight/autolabel" in r.stdout, r.stdout + r.stderr

    r = _cli(["plugins", "requirements", "@stoplight/autolabel", "--print"], env)
    assert r.returncode == 0, r.stderr
    for name in ("fiftyone", "torch", "transformers", "ultralytics", "open-clip-torch"):
        assert name in r.stdout

    code = (
        "import json\n"
        "from fiftyone.operators.registry import OperatorRegistry\n"
        "r = OperatorRegistry()\n"
        "print(json.dumps({'errors': [str(e) for e in r.list_errors()],"
        " 'uris': sorted(o.uri for o in r.list_operators(builtin=False))}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert "@stoplight/autolabel/zero_shot_detect" in out["uris"]
