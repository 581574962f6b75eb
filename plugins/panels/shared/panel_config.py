"""The config every Stoplight panel shares."""

from __future__ import annotations


def grid_panel_config(name: str, label: str, icon: str, help_markdown: str):
    """A ``foo.PanelConfig`` for a panel of the samples grid.

    Args:
        name: the panel's name (part of its URI)
        label: its title in the App's panel menu
        icon: a Material icon name
        help_markdown: the help shown from the panel's menu
    """
    import fiftyone.operators as foo

    return foo.PanelConfig(name=name, label=label, icon=icon, surfaces="grid", help_markdown=help_markdown)
