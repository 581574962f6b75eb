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


def grid_panel(name: str, label: str, icon: str, help_markdown: str):
    """Class decorator giving a ``foo.Panel`` its :func:`grid_panel_config`
    (as the ``config`` property FiftyOne reads).

    Example usage::

        @grid_panel("label_map", "Stoplight: label map", "scatter_plot", "A 2-D map of ...")
        class LabelMapPanel(foo.Panel):
            ...
    """

    def configure(cls):
        cls.config = property(lambda self: grid_panel_config(name, label, icon, help_markdown))
        return cls

    return configure
