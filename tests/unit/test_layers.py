"""The import rules of docs/architecture.md, checked on the source with ``ast``.

Layers: ``plugins/common`` at the bottom; the feature packages
(``autolabel``, ``scoring``, ``triage``, ``review``, ``training``) side by
side over it; ``panels`` on top. A feature imports only itself and
``common``; ``common`` imports only itself; panels may import features'
public names. No module uses a private name (leading underscore) of another
module of ours, whether imported (``from .x import _y``) or reached through
an imported module (``x._y``); a private module (``_hf.py``) is used only
inside its layer. FiftyOne's private attributes that Stoplight needs
(:data:`FO_PRIVATE_NAMES`) are reached only in ``common/fo_private.py``.

The checker runs on the real tree and, as a control, on a small synthetic
tree that breaks each rule once: a checker that finds nothing there is
broken, not the tree clean.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FEATURES = ("autolabel", "scoring", "triage", "review", "training")
#: FiftyOne private attributes (of datasets, views, samples) read only by
#: ``common/fo_private.py``; ``self._dataset`` on a class of ours is ours
FO_PRIVATE_NAMES = frozenset({
    "_root_dataset", "_dataset", "_sample_collection", "_frame_collection",
    "_sample_collection_name", "_frame_collection_name", "_aggregate", "_pipeline",
    "_serialize", "_bulk_write", "_is_patches", "_is_frames", "_reload_docs", "_stages",
    "_is_generated",
})
FO_PRIVATE_MODULE = ("plugins", "common", "fo_private")


def _module_parts(path: Path, root: Path) -> tuple[str, ...]:
    parts = path.relative_to(root).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(path: Path, root: Path, node: ast.ImportFrom) -> tuple[str, ...] | None:
    """The imported module's parts relative to ``root``, or None if not ours."""
    if node.level == 0:
        mod = (node.module or "").split(".")
        # ``from stoplight.plugins.x import y`` in docstring examples is text,
        # but code could use it too: strip the top package name.
        if len(mod) > 1 and mod[1] == root.name:
            return tuple(mod[1:])
        return None
    here = _module_parts(path, root)
    package = here if _is_package(path) else here[:-1]
    up = node.level - 1
    if up > len(package):
        return None
    base = package[: len(package) - up] if up else package
    return (root.name, *base, *(node.module.split(".") if node.module else ()))


def _layer(parts: tuple[str, ...]) -> str | None:
    return parts[1] if len(parts) > 1 else None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_outside(target: tuple[str, ...], here: tuple[str, ...]) -> str | None:
    """The first private part of a module path ``target`` that ``here`` may
    not import (a private module is private to its layer: e.g.
    ``autolabel/backends/_hf.py`` serves the backends and autolabel's SAM
    wrappers), or None."""
    for i, part in enumerate(target):
        depth = min(i, 2)
        if _is_private(part) and here[:depth] != target[:depth]:
            return part
    return None


def _module_file(parts: tuple[str, ...], root: Path) -> Path | None:
    base = root.parent.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return base if base.is_dir() else None


def check_tree(root: Path) -> list[str]:
    """Every breach of the layer rules under ``root`` (a ``plugins`` folder).

    Args:
        root: the folder whose subfolders are the layers (``common``,
            the feature packages, ``panels``).

    Returns:
        One line per breach: ``file:line: what``.
    """
    problems = []
    for path in sorted(root.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        here = (root.name, *_module_parts(path, root))
        own_layer = _layer(here)
        tree = ast.parse(path.read_text(), filename=str(path))
        modules_bound: dict[str, tuple[str, ...]] = {}
        where = lambda node: f"{path.relative_to(root.parent)}:{node.lineno}"  # noqa: E731
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(path, root, node)
            if target is None:
                continue
            layer = _layer(target)
            if layer is None:
                continue
            sideways = (
                (own_layer in FEATURES and layer not in (own_layer, "common"))
                or (own_layer == "common" and layer != "common")
            )
            if sideways and layer in (*FEATURES, "panels", "common"):
                problems.append(
                    f"{where(node)}: {own_layer} imports {'.'.join(target[1:])} "
                    f"({layer} is not below {own_layer})"
                )
            private_module = _private_outside(target, here)
            if private_module:
                problems.append(f"{where(node)}: imports from private module {private_module}")
            for alias in node.names:
                if _module_file((*target, alias.name), root) is not None:
                    modules_bound[alias.asname or alias.name] = (*target, alias.name)
                    if _private_outside((*target, alias.name), here):
                        problems.append(f"{where(node)}: imports private module {alias.name}")
                elif _is_private(alias.name) and target != here:
                    problems.append(
                        f"{where(node)}: imports private name {alias.name} "
                        f"from {'.'.join(target[1:])}"
                    )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules_bound
                and _is_private(node.attr)
            ):
                target = modules_bound[node.value.id]
                problems.append(
                    f"{where(node)}: uses private name {node.attr} "
                    f"of {'.'.join(target[1:])}"
                )
        if here != FO_PRIVATE_MODULE:
            problems.extend(
                f"{where(node)}: uses FiftyOne private {node.attr} (go through common.fo_private)"
                for node in _fiftyone_privates(tree)
            )
    return problems


def _fiftyone_privates(tree: ast.AST) -> list[ast.Attribute]:
    """The ``<expr>._name`` nodes of ``tree`` reaching a name of
    :data:`FO_PRIVATE_NAMES` on anything but ``self`` or ``cls`` (our own
    classes may have attributes of those names)."""
    return [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in FO_PRIVATE_NAMES
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_plugins_follow_the_layer_rules():
    problems = check_tree(REPO / "plugins")
    assert not problems, "layer rules broken (see docs/architecture.md):\n" + "\n".join(problems)


def test_checker_catches_each_breach_in_a_synthetic_tree(tmp_path):
    """Control: a tree that breaks every rule once, and a clean twin."""
    root = _write(tmp_path / "bad" / "plugins", {
        "common/__init__.py": "",
        "common/vocab.py": "QUEUES = ()\n_SECRET = 1\n",
        "common/upward.py": "from ..triage.report import summary\n",
        "triage/__init__.py": "",
        "triage/report.py": "def summary(): ...\ndef _check(): ...\n",
        "review/__init__.py": "",
        "review/sideways.py": "from ..triage.report import summary\n",
        "review/lazy.py": "def f():\n    from ..triage import report\n    return report\n",
        "review/private.py": "from ..common.vocab import _SECRET\n",
        "review/private_attr.py": "from ..common import vocab\nx = vocab._SECRET\n",
        "panels/__init__.py": "",
        "panels/private.py": "from ..triage.report import _check\n",
        "triage/_helpers.py": "def count(q): return len(q)\n",
        "panels/private_module.py": "from ..triage._helpers import count\n",
        "review/fo_attr.py": "def root(view):\n    return view._root_dataset\n",
    })
    problems = check_tree(root)
    text = "\n".join(problems)
    assert "common/upward.py:1: common imports triage.report" in text
    assert "review/sideways.py:1: review imports triage.report" in text
    assert "review/lazy.py:2: review imports triage" in text
    assert "review/private.py:1: imports private name _SECRET" in text
    assert "review/private_attr.py:2: uses private name _SECRET of common.vocab" in text
    assert "panels/private.py:1: imports private name _check" in text
    assert "panels/private_module.py:1: imports from private module _helpers" in text
    assert "review/fo_attr.py:2: uses FiftyOne private _root_dataset" in text
    assert len(problems) == 8, text

    clean = _write(tmp_path / "good" / "plugins", {
        "common/__init__.py": "",
        "common/vocab.py": "QUEUES = ()\n_SECRET = 1\nx = _SECRET\n",
        "triage/__init__.py": "from .report import summary\n",
        "triage/report.py": "from ..common.vocab import QUEUES\nfrom . import _helpers\n"
                            "from ._helpers import count\n"
                            "def summary(): return _helpers.count(QUEUES) + count(QUEUES)\n",
        "triage/_helpers.py": "def count(q): return len(q)\n",
        "triage/sub/__init__.py": "from .._helpers import count\n",
        "panels/__init__.py": "",
        "panels/view.py": "from ..triage.report import summary\nfrom ..common import vocab\n",
        "common/fo_private.py": "def root_dataset(view):\n    return view._root_dataset\n",
        "review/own.py": "class Run:\n    def __init__(self, d):\n        self._dataset = d\n"
                         "    def root(self, view):\n"
                         "        from ..common import fo_private\n"
                         "        return fo_private.root_dataset(view), self._dataset\n",
    })
    assert check_tree(clean) == []


@pytest.mark.parametrize("level,module,expected", [
    (1, "x", ("plugins", "triage", "x")),
    (2, "common.y", ("plugins", "common", "y")),
    (1, None, ("plugins", "triage")),
])
def test_relative_imports_resolve_from_a_module(tmp_path, level, module, expected):
    root = _write(tmp_path / "plugins", {"triage/report.py": ""})
    node = ast.ImportFrom(module=module, names=[], level=level)
    assert _resolve(root / "triage" / "report.py", root, node) == expected
