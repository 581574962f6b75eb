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
