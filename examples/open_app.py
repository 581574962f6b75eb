"""Opens a dataset in the FiftyOne App with Stoplight's verification queues panel.

The grid on the left, the ``verification_queues`` panel on the right (a
FiftyOne Space layout), auto-labels coloured by their queue. The App loads
the plugin from FiftyOne's plugins directory (``examples/link_plugin.py``
registers this clone there).

    python examples/open_app.py                      # the quickstart's dataset
    python examples/open_app.py NAME                 # any dataset with triaged labels
    python examples/open_app.py NAME --remote        # on a remote machine: no browser tab, connect yourself

The App runs until Ctrl-C. Port and address: ``--port``/``--address`` or
FiftyOne's ``FIFTYONE_DEFAULT_APP_PORT``/``FIFTYONE_DEFAULT_APP_ADDRESS``.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_DATASET = "stoplight-quickstart"
PANEL = "verification_queues"
#: box colours by the ``queue`` attribute, as in the panel's charts
QUEUE_COLORS = {"green": "#2ca02c", "yellow": "#f2c200", "red": "#d62728"}


def queues_layout():
    """The App layout: the sample grid and the verification queues panel side by side."""
    import fiftyone as fo

    grid = fo.Panel(type="Samples", pinned=True)
    queues = fo.Panel(type=PANEL)
    return fo.Space(
        # a space shows nothing until one of its tabs is its active child
        children=[fo.Space(children=[grid], active_child=grid.component_id),
                  fo.Space(children=[queues], active_child=queues.component_id)],
        orientation="horizontal",
        sizes=[0.5, 0.5],
    )


def show_queues(dataset, label_field: str = "autolabels") -> None:
    """Saves App defaults on ``dataset``: the boxes of ``label_field``
    coloured by their ``queue`` (green / yellow / red), and only that field
    ticked in the sidebar (the others stay one click away)."""
    import fiftyone as fo

    dataset.app_config.color_scheme = fo.ColorScheme(color_by="value", fields=[dict(
        path=label_field, colorByAttribute="queue",
        valueColors=[dict(value=q, color=c) for q, c in QUEUE_COLORS.items()],
    )])
    dataset.app_config.active_fields = fo.ActiveFields(paths=[label_field])
    dataset.save()


def launch(name: str = DEFAULT_DATASET, port: int | None = None, address: str | None = None,
           remote: bool = False):
    """Launches the App on dataset ``name`` with :func:`queues_layout`; returns the session."""
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise SystemExit(f"No dataset named {name!r}; run examples/quickstart.py first (fo.list_datasets(): "
                         f"{fo.list_datasets()})")
    return fo.launch_app(fo.load_dataset(name), spaces=queues_layout(), port=port, address=address,
                         remote=remote)


def serve(name: str = DEFAULT_DATASET, **launch_kwargs) -> None:
    """:func:`launch`, then keeps the App running until Ctrl-C."""
    session = launch(name, **launch_kwargs)  # FiftyOne prints where to point the browser
    print(f"The App shows '{name}' with the {PANEL} panel (Ctrl-C stops it)", flush=True)
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default=DEFAULT_DATASET, help=f"dataset (default {DEFAULT_DATASET})")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--address", default=None)
    parser.add_argument("--remote", action="store_true", help="do not open a browser tab")
    args = parser.parse_args(argv)
    serve(args.name, port=args.port, address=args.address, remote=args.remote)
    return 0


if __name__ == "__main__":
    sys.exit(main())
