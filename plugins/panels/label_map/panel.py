"""App layer: the ``label_map`` panel.

A 2-D map of the label embeddings (:mod:`.core`), coloured by queue,
class or review state. A lasso or box selection answers at once (the panel
says it is showing the selection while the grid loads), highlights the
selected points on the map (the others dimmed, also after redraws) and
sets the App's view to exactly the selected labels (``select_labels`` on the base view; see
:mod:`..verification_queues` for how the base view is kept); a selection
without points changes nothing (Plotly sends such events by itself), *Show
all* goes back to the base view; a click on a point opens its sample. The projection is computed once, by the *Compute
map* button (or :func:`.core.compute_label_map` from Python), stored
as a run on the dataset and only read on redraws.
"""

from __future__ import annotations

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..shared import app_context, queue_stats
from ..shared.queue_stats import panel_base_view
from ..shared.panel_config import grid_panel
from . import core as label_map

_COLOR_COLUMN = {"queue": "queue", "class": "label", "review": "review"}


def _set_plot(ctx, traces: list[dict]) -> None:
    """Draws ``traces`` on the map, replacing what it showed.

    The App keeps a copy of a plot's data in the panel state and draws the
    deep merge (index by index) of state and data: when an answer drew
    fewer traces than the one before, old and new traces showed mixed
    (seen in the browser: legend "green", "yellow", "2", ... "9").
    Clearing the state's copy leaves only the new traces.
    """
    ctx.panel.state.set("map_plot", None)
    ctx.panel.data.set("map_plot", traces)


def _choice(ctx, name: str):
    """The value of the dropdown ``name`` of the top row.

    The browser stores a dropdown's value (at ``top.<name>``) before it
    sends any event, but ``state.<name>`` only when the answer to its
    ``on_change`` event arrives. The App sends several events at once
    (e.g. three ``on_change_view`` for one change), each with the state
    as it was: one sent between the two moments redrew the map with the
    old colouring after the new one, under the new dropdown value.
    """
    top = ctx.panel.state.top
    value = top.get(name) if isinstance(top, dict) else None
    return value if value is not None else ctx.panel.state.get(name)


@grid_panel(
    "label_map", "Stoplight: label map", "scatter_plot",
    "A 2-D map of the label embeddings. Lasso or box-select points to show those "
    "labels in the grid; click a point to open its sample."
)
class LabelMapPanel(foo.Panel):
    """Embedding map of auto-labels with lasso selection into the grid."""

    # -- App events ---------------------------------------------------------

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        # the App also sends this event for the same dataset (after a reload,
        # e.g. by another panel's operator); the selection shown then stays
        if ctx.panel.state.dataset_name not in (None, ctx.dataset.name):
            ctx.panel.state.set(dict(drill=None, label_field=None, message=None))
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def on_change_label_field(self, ctx):
        ctx.panel.state.set(dict(label_field=ctx.params.get("value"), drill=None))
        self._refresh(ctx)

    def on_change_color_by(self, ctx):
        ctx.panel.state.color_by = ctx.params.get("value")
        self._refresh(ctx)

    def on_change_method(self, ctx):
        ctx.panel.state.method = ctx.params.get("value")

    # -- actions --------------------------------------------------------------

    def compute_map(self, ctx):
        field = ctx.panel.state.label_field
        method = ctx.panel.state.method or "auto"
        try:
            out = label_map.compute_label_map(ctx.dataset, field, method=method)
        except ValueError as e:
            ctx.panel.state.message = f"⚠ {e}"
            ctx.ops.notify(str(e), variant="error")
            return
        ctx.panel.state.message = f"Mapped {out['num_labels']:,} labels ({out['dim']}-d) with {out['method'].upper()}"
        self._refresh(ctx)

    def on_point_click(self, ctx):
        """Opens the sample of the clicked label."""
        label_id = ctx.params.get("id")
        field = ctx.panel.state.label_field
        m = label_map.load_label_map(ctx.dataset, field) if field else None
        if not label_id or m is None:
            return
        hit = np.flatnonzero(m["label_ids"] == label_id)
        if len(hit):
            ctx.ops.open_sample(id=str(m["sample_ids"][hit[0]]))

    def on_map_selected(self, ctx):
        """Shows exactly the lassoed labels in the grid.

        A selection without points changes nothing: Plotly emits one by
        itself (``plotly_selected`` with no points) on a plain click in
        lasso mode and when it redraws the map after the view changed,
        i.e. right after every real selection. Taken as "show all", it
        undid the user's selection a moment after it was applied. *Show
        all* is the way back to the whole view.
        """
        field = ctx.panel.state.label_field
        points = ctx.params.get("data") or []
        ids = list(dict.fromkeys(p["id"] for p in points if isinstance(p, dict) and p.get("id")))
        if not ids:
            return
        base = panel_base_view(ctx, field)
        drill = dict(label_ids=ids)
        # answered at once; the grid then loads the view and the map is
        # redrawn with the selection highlighted (on_change_view)
        ctx.panel.state.set(dict(drill=drill, message=f"⏳ Showing {len(ids):,} selected label(s) in the grid…"))
        ctx.ops.set_view(queue_stats.drill_view(base, field, drill))

    def show_all(self, ctx):
        base = panel_base_view(ctx, ctx.panel.state.label_field)
        ctx.panel.state.set(dict(drill=None, message=None))
        ctx.ops.set_view(base)

    # -- helpers --------------------------------------------------------------

    def _refresh(self, ctx):
        dataset = ctx.dataset
        field = app_context.choose_label_field(dataset, _choice(ctx, "label_field"))
        color_by = _choice(ctx, "color_by")
        color_by = color_by if color_by in label_map.COLOR_BY else "queue"
        ctx.panel.state.set(
            dict(fields=app_context.label_fields(dataset), label_field=field, color_by=color_by,
                 umap=label_map.umap_available(), dataset_name=dataset.name)
        )
        if field is None:
            ctx.panel.state.set(dict(error="This dataset has no fo.Detections field.", has_map=False))
            return
        m = label_map.load_label_map(dataset, field)
        if m is None:
            ctx.panel.state.set(dict(error=None, has_map=False, info=None))
            _set_plot(ctx, [])
            return
        base = panel_base_view(ctx, field)
        states = label_map.label_states(base, field)
        map_rows, state_rows = label_map.join_map(m, states)
        drill = ctx.panel.state.drill or {}
        selected = set(drill.get("label_ids") or []) or None
        traces = label_map.map_traces(
            m["xy"][map_rows], m["label_ids"][map_rows], states[_COLOR_COLUMN[color_by]][state_rows],
            m["priority"][map_rows], color_by, selected=selected,
        )
        if selected:
            ctx.panel.state.message = f"{len(selected):,} label(s) selected on the map (highlighted; the grid shows them)"
        shown = sum(len(t["x"]) for t in traces)
        ctx.panel.state.set(
            dict(
                error=None,
                has_map=True,
                info=dict(method=m["method"], num_labels=m["num_labels"], created_at=m["created_at"],
                          in_view=len(states["label_id"]), on_map=len(map_rows), shown=shown),
            )
        )
        _set_plot(ctx, traces)

    # -- layout -----------------------------------------------------------------

    def render(self, ctx):
        s = ctx.panel.state
        panel = types.Object()
        if s.error:
            panel.md(f"**{s.error}**", name="error_md")
            return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=1))
        top = panel.h_stack("top", align_y="center", gap=2)
        top.enum("label_field", s.fields or [s.label_field], default=s.label_field, label="Label field",
                 on_change=self.on_change_label_field, view=types.DropdownView())
        top.enum("color_by", list(label_map.COLOR_BY), default=s.color_by or "queue", label="Colour by",
                 on_change=self.on_change_color_by, view=types.DropdownView())
        methods = ["auto", "umap", "pca"] if s.umap else ["pca"]
        top.enum("method", methods, default=s.method or methods[0], label="Projection",
                 on_change=self.on_change_method, view=types.DropdownView())
        top.btn("compute_map", label="Recompute map" if s.has_map else "Compute map", icon="scatter_plot",
                on_click=self.compute_map, variant="outlined")
        top.btn("show_all", label="Show all", icon="filter_alt_off", on_click=self.show_all,
                variant="outlined", disabled=not s.drill)
        info = s.info
        if s.has_map and info:
            note = (
                f"{info['method'].upper()} map of {info['num_labels']:,} labels; this view: "
                f"{info['in_view']:,} labels, {info['on_map']:,} on the map, {info['shown']:,} drawn "
                f"(at most {label_map.MAX_PER_GROUP:,} per colour)"
            )
        else:
            note = "No map yet: press **Compute map** (labels need an `embedding`; see compute_label_embeddings)."
        panel.md(note, name="info_md")
        if s.message:
            panel.md(s.message, name="message_md")
        if s.has_map:
            panel.plot(
                "map_plot",
                layout=dict(
                    dragmode="lasso", hovermode="closest", showlegend=True, height=560,
                    uirevision="label-map", margin=dict(t=10, l=10, b=10, r=10),
                    xaxis=dict(showticklabels=False, zeroline=False),
                    yaxis=dict(showticklabels=False, zeroline=False),
                ),
                config=dict(displayModeBar=True, scrollZoom=True),
                on_click=self.on_point_click,
                on_selected=self.on_map_selected,
                height=600,
            )
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=1))
