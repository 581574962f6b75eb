"""The repository loads as a FiftyOne plugin with every operator listed."""

import yaml

from conftest import REPO

URI = "@stoplight/autolabel/zero_shot_detect"


def test_plugin_loads_without_errors():
    from fiftyone.operators.registry import OperatorRegistry

    registry = OperatorRegistry()
    assert registry.list_errors() == []
    uris = {op.uri for op in registry.list_operators(builtin=False)}
    assert URI in uris


def test_every_registered_operator_is_listed_in_fiftyone_yml():
    import fiftyone.plugins as fop

    meta = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    plugin = fop.get_plugin(meta["name"])
    assert plugin.name == "@stoplight/autolabel"
    from fiftyone.operators.registry import OperatorRegistry

    names = {
        op.name for op in OperatorRegistry().list_operators(builtin=False)
        if op.plugin_name == meta["name"]
    }
    assert names == set(meta["operators"]) | set(meta.get("panels") or [])


# What a user gets who starts Python in a folder: the folder is first on
# sys.path. Run as a fresh process (the registry of this one is warm).
_REGISTRY_PROBE = (
    "import json\n"
    "import plugins\n"
    "from fiftyone.operators.registry import OperatorRegistry\n"
    "r = OperatorRegistry()\n"
    "print(json.dumps({'plugins_package': plugins.__file__,"
    " 'errors': [str(e) for e in r.list_errors()],"
    " 'uris': sorted(o.uri for o in r.list_operators())}))\n"
)


def _registry_from(cwd) -> dict:
    import json
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _REGISTRY_PROBE], cwd=str(cwd), env=dict(os.environ),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_builtin_and_stoplight_operators_load_when_python_starts_in_the_repository_root():
    meta = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    out = _registry_from(REPO)
    assert out["errors"] == []
    # `plugins` is the fiftyone wheel's package, not this checkout's folder
    # (the checkout's .venv may live inside the repository: compare the folder itself)
    assert not out["plugins_package"].startswith(str(REPO / "plugins") + "/"), out["plugins_package"]
    uris = set(out["uris"])
    builtin = {u for u in uris if u.startswith("@voxel51/")}
    # operators and panels of both built-in plugins
    assert "@voxel51/operators/clone_selected_samples" in builtin
    assert "@voxel51/panels/similarity_search_panel" in builtin
    ours = {u.rsplit("/", 1)[1] for u in uris if u.startswith(meta["name"] + "/")}
    assert ours == set(meta["operators"]) | set(meta["panels"])


def test_a_regular_plugins_package_in_the_start_folder_is_caught(tmp_path):
    # control: what the check above sees when a folder's `plugins/` is a
    # regular package (this repository before it became a namespace package)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "__init__.py").write_text("")
    out = _registry_from(tmp_path)
    assert out["plugins_package"] == str(tmp_path / "plugins" / "__init__.py")
    assert out["errors"] and not any(u.startswith("@voxel51/") for u in out["uris"])
