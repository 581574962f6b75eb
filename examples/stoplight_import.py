"""Imports this repository as the Python package ``stoplight``.

The repository root is a FiftyOne plugin, not an installed package; its
``plugins/`` folder is a namespace package (no ``__init__.py``) so that it
never shadows the ``plugins`` package of fiftyone's wheel, even when the
repository root is on ``sys.path``. Scripts in ``examples/`` and
``benchmarks/`` use this to call the plugin's Python functions directly.
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
    spec = importlib.util.spec_from_file_location(
        "stoplight", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["stoplight"] = module
    spec.loader.exec_module(module)
    return module
