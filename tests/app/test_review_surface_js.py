"""The review surface's JS (plugins/js): its unit tests in Node, and that
the committed bundle (what users install, no build step) is exactly what
the build makes from the committed sources.

Needs ``node`` and the pinned build tool (``npm ci`` in plugins/js; both
installed by ``bash .ci/setup --test``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "plugins" / "js"
BUNDLE = JS / "dist" / "stoplight.js"
SOURCE_MAP = JS / "dist" / "stoplight.js.map"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs npm, or `bash .ci/setup --test`)")
    return node


def test_js_unit_tests_pass():
    out = subprocess.run([_node(), "--test", "test/"], cwd=JS, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout
    # the suite ran tests (a glob that matched nothing would also exit 0)
    passed = [l for l in out.stdout.splitlines() if l.startswith("# pass ")]
    assert passed and int(passed[0].split()[-1]) >= 10, out.stdout[-2000:]


def test_committed_bundle_is_the_build_of_the_sources(tmp_path):
    if not (JS / "node_modules" / ".bin" / "esbuild").exists():
        pytest.fail("The build tool is not installed: run `npm ci` in plugins/js (or `bash .ci/setup --test`)")
    built = tmp_path / "stoplight.js"
    out = subprocess.run([_node(), "build.mjs", "--outfile", str(built)], cwd=JS, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert built.read_bytes() == BUNDLE.read_bytes(), (
        "plugins/js/dist/stoplight.js is not the build of plugins/js/src: run `npm run build` in plugins/js "
        "and commit dist/"
    )
    # the map's source paths are relative to where it was written: compare
    # the rest, and that the paths name the same files
    ours, theirs = (json.loads(p.read_text()) for p in (tmp_path / SOURCE_MAP.name, SOURCE_MAP))
    assert [Path(s).name for s in ours.pop("sources")] == [Path(s).name for s in theirs.pop("sources")]
    assert ours == theirs, "plugins/js/dist/stoplight.js.map is stale: run `npm run build` in plugins/js"
    # minified, and the map leads the App's devtools back to every source file
    assert len(BUNDLE.read_text().splitlines()) < 5
    assert BUNDLE.read_text().rstrip().endswith("//# sourceMappingURL=stoplight.js.map")
    sources = {Path(s).name for s in json.loads(SOURCE_MAP.read_text())["sources"]}
    assert {p.name for p in (JS / "src").glob("*.js")} <= sources


def test_fiftyone_yml_points_at_the_bundle():
    import yaml

    meta = yaml.safe_load((JS.parents[1] / "fiftyone.yml").read_text())
    assert (JS.parents[1] / meta["js_bundle"]).resolve() == BUNDLE.resolve()
    assert "review_queue" in meta["panels"]
    # the component the Python panel renders is registered by the bundle
    text = BUNDLE.read_text()
    from stoplight.plugins.panels.review_queue import COMPONENT

    assert f'name:"{COMPONENT}"' in text.replace(" ", "")
