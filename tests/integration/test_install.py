"""Install the plugin the way users do: `fiftyone plugins download <url>`.

The repository is zipped and served from 127.0.0.1 (an archive URL is one of
the sources `fiftyone plugins download` accepts, next to GitHub URLs), then
installed with FiftyOne's own CLI into a fresh plugins directory, and loaded
by a fresh process.

A clone registers itself instead (``bash .ci/setup``, the quickstart):
``examples/link_plugin.py`` links it into FiftyOne's plugins directory,
once, never over anything else, and prints how to remove the link.
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from conftest import REPO

# what a GitHub archive leaves out too (node_modules: the JS build tool, gitignored)
SKIP_DIRS = {".git", ".venv", "artifacts", "__pycache__", ".pytest_cache", "checkpoints", "node_modules"}


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
    # the App components come built: no build step on install
    assert (installed[0].parent / "plugins" / "js" / "dist" / "stoplight.js").is_file()

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
        " 'uris': sorted(o.uri for o in r.list_operators(builtin=False)),"
        " 'has_js': __import__('fiftyone.plugins', fromlist=['x']).get_plugin('@stoplight/autolabel').has_js}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert "@stoplight/autolabel/zero_shot_detect" in out["uris"]
    assert "@stoplight/autolabel/review_queue" in out["uris"] and out["has_js"]


# ------------------------------------------------------------------------
# Registration of a clone (`bash .ci/setup`, the quickstart): a link in
# FiftyOne's plugins directory (examples/link_plugin.py)

_PROBE = (
    "import json\n"
    "from fiftyone.operators.registry import OperatorRegistry\n"
    "r = OperatorRegistry()\n"
    "print(json.dumps({'errors': [str(e) for e in r.list_errors()],"
    " 'uris': sorted(o.uri for o in r.list_operators(builtin=False))}))\n"
)
LINK_SCRIPT = REPO / "examples" / "link_plugin.py"


def _python(args, env, cwd):
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=str(cwd))


def test_setup_links_the_clone_once_and_its_removal_instruction_unregisters_it(tmp_path):
    import yaml

    plugins_dir = tmp_path / "fiftyone-plugins"
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins_dir))  # does not exist yet
    meta = yaml.safe_load((REPO / "fiftyone.yml").read_text())

    r = _python([str(LINK_SCRIPT)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    link = plugins_dir / "@stoplight" / "autolabel"
    assert link.is_symlink() and link.resolve() == REPO
    assert f"linked into FiftyOne's plugins directory: {link} -> {REPO}" in r.stdout
    # a fresh process finds the plugin there, every operator and panel of it
    r = _python(["-c", _PROBE], env, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert {u.rsplit("/", 1)[1] for u in out["uris"] if u.startswith(meta["name"] + "/")} == (
        set(meta["operators"]) | set(meta["panels"]))

    # idempotent: a second run finds it and adds nothing
    r = _python([str(LINK_SCRIPT)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already registered in FiftyOne's plugins directory" in r.stdout
    assert sorted(p.name for p in (plugins_dir / "@stoplight").iterdir()) == ["autolabel"]

    # the printed removal instruction, run as printed: the link goes, the clone stays
    (removal,) = re.findall(r"^To remove it: (.+?)   \(", r.stdout, flags=re.M)
    assert subprocess.run(["bash", "-c", removal], cwd=str(tmp_path), timeout=60).returncode == 0
    assert not os.path.lexists(link) and (REPO / "fiftyone.yml").is_file()
    r = _python([str(LINK_SCRIPT), "--check"], env, tmp_path)
    assert r.returncode == 1 and "finds no plugin @stoplight/autolabel" in r.stdout


@pytest.fixture()
def plugins_dir(tmp_path, monkeypatch):
    import fiftyone as fo

    d = tmp_path / "plugins"
    d.mkdir()
    monkeypatch.setattr(fo.config, "plugins_dir", str(d))
    return d


def _write_plugin(folder, name: str):
    folder.mkdir(parents=True)
    (folder / "fiftyone.yml").write_text(f'name: "{name}"\n')
    (folder / "__init__.py").write_text("def register(p):\n    pass\n")


def test_link_never_replaces_what_is_in_its_way(plugins_dir):
    import fiftyone.plugins as fop
    import link_plugin

    # another plugin already lives where FiftyOne would put ours
    taken = plugins_dir / "@stoplight" / "autolabel"
    _write_plugin(taken, "@someone/else")
    before = {p.name: p.read_text() for p in taken.iterdir()}
    reg = link_plugin.link()
    assert reg.status == link_plugin.LINKED and reg.path == str(plugins_dir / "@stoplight" / "autolabel2")
    assert Path(reg.path).resolve() == REPO
    assert {p.name: p.read_text() for p in taken.iterdir()} == before and not taken.is_symlink()
    found = {p.name: p.directory for p in fop.list_plugins(enabled="all")}
    assert found == {"@someone/else": str(taken), "@stoplight/autolabel": reg.path}
    assert reg.removal == f"rm {reg.path}"


def test_link_leaves_another_copy_of_the_plugin_alone(plugins_dir, capsys):
    import link_plugin
    import quickstart

    # e.g. installed earlier with `fiftyone plugins download`
    copy = plugins_dir / "downloaded" / "stoplight"
    _write_plugin(copy, "@stoplight/autolabel")
    reg = link_plugin.link()
    assert reg.status == link_plugin.OTHER and reg.path == str(copy) and reg.removal is None
    assert not [p for p in plugins_dir.rglob("*") if p.is_symlink()]
    assert any("fiftyone plugins delete @stoplight/autolabel" in line for line in reg.describe())
    assert link_plugin.main(["--check"]) == 1
    # the quickstart stops rather than show that copy in the App
    with pytest.raises(SystemExit, match="other copy"):
        quickstart.register_plugin(None)
    assert (copy / "fiftyone.yml").is_file()
    # ... unless it opens no App: then it says so and labels from this clone
    capsys.readouterr()
    no_app = quickstart.Run(args=quickstart.parse_args(["--no-app"]), flow=None, online=False)
    quickstart.register_plugin(no_app)
    assert "Warning: the printed App command would show that other copy" in capsys.readouterr().out
    assert (copy / "fiftyone.yml").is_file() and not [p for p in plugins_dir.rglob("*") if p.is_symlink()]
