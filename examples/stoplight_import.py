"""Imports this repository as the Python package ``stoplight``.

The repository root is a FiftyOne plugin, not an installed package, and its
``plugins/`` folder cannot be imported as top-level ``plugins`` (fiftyone's
wheel owns that name). Scripts in ``examples/`` and ``benchmarks/`` use
this to call the plugin's Python functions directly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_stoplight():
    """Returns the repository loaded as the package ``stoplight``."""
    if "stoplight" in sys.modules:
        return sys.modules["stoplight"]
    # a script's own folder is on sys.path; the repo root must not be
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]
    spec = importlib.util.spec_from_file_location(
        "stoplight", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["stoplight"] = module
    spec.loader.exec_module(module)
    return module
