"""App layer: the ``verification_queues`` panel (grid surface).

Counts by queue and class (tables and a stacked bar chart), review
progress, expected precision, workload and cost from the triage report, the
calibration curves, buttons to decide labels, and the next yellow labels in
``review_rank`` order. Every method only translates ``ctx`` into calls of
:mod:`.queue_stats` (:mod:`.count_cache` for the counts), :mod:`.charts`, the triage report and the review core
(:mod:`..review.decisions`).

Drill-down: a click on a queue, a class cell or a bar sets the App's view
to the *base view* filtered to exactly those labels (``filter_labels``). The
base view is the App's view without that one stage (found again by
:func:`.queue_stats.strip_drilldown`), so the counts keep describing what
the user chose to look at, and the next click replaces the filter instead
of narrowing it. Any other view change makes the new view the base.

State (small, read back on each event): ``label_field``,
``calibration_key``, ``drill``, ``classes``, ``queue_order``, ``next``
(ids of the next yellow labels), the count ``summary`` and ``message``.
Data (write-only, large): the tables' rows and the plots' traces.
"""

from __future__ import annotations

import logging

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..review.decisions import review_labels, undo_last
from ..review.operators import context_user
from . import app_context, charts, count_cache, queue_stats

logger = logging.getLogger(__name__)

NEXT_YELLOW = 10
_CLASS_COLUMNS = ("label", "green", "yellow", "red", "total", "pending", "accepted", "rejected")
_QUEUE_COLUMNS = (
    ("queue", "Queue"), ("count", "Labels"), ("pending", "Pending"), ("accepted", "Accepted"),
    ("rejected", "Rejected"), ("expected_precision", "Expected precision"),
    ("verified_precision", "Verified precision [interval]"),
)


class VerificationQueues(foo.Panel):
    """Review progress and navigation of the green / yellow / red queues."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="verification_queues",
            label="Stoplight: verification queues",
            icon="traffic",
            surfaces="grid",
            help_markdown=(
                "Counts of auto-labels per triage queue and class. Click a queue, a class "
                "cell or a bar to show exactly those labels; accept or reject them with the buttons."
            ),
        )

    # -- App events ---------------------------------------------------------

    def on_load(self, ctx):
        self._refresh(ctx)
        self._set_selection(ctx)

    def on_change_dataset(self, ctx):
        ctx.panel.state.set(dict(drill=None, label_field=None, calibration_key=None, message=None))
        self._refresh(ctx)
        self._set_selection(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)
        pending = ctx.panel.state.open_sample
        if pending:
            ctx.panel.state.open_sample = None
            ctx.ops.open_sample(id=pending)

    def on_change_selected_labels(self, ctx):
        self._set_selection(ctx)

    def on_change_selected(self, ctx):
        self._set_selection(ctx)

    def on_change_label_field(self, ctx):
        ctx.panel.state.set(dict(label_field=ctx.params.get("value"), calibration_key=None, drill=None))
        self._refresh(ctx)
        self._set_selection(ctx)

    # -- navigation -----------------------------------------------------------

    def on_queue_cell(self, ctx):
        order = ctx.panel.state.queue_order or []
        row = ctx.params.get("row")
        if isinstance(row, int) and 0 <= row < len(order):
            self._drill(ctx, queue=order[row])

    def on_class_cell(self, ctx):
        classes = ctx.panel.state.classes or []
        row, col = ctx.params.get("row"), ctx.params.get("column")
        if not (isinstance(row, int) and 0 <= row < len(classes)):
            return
        column = _CLASS_COLUMNS[col] if isinstance(col, int) and 0 <= col < len(_CLASS_COLUMNS) else None
        drill = dict(label=classes[row])
        if column in (*queue_stats.QUEUES, queue_stats.UNASSIGNED):
            drill["queue"] = column
        elif column in queue_stats.REVIEW_STATES:
            drill["review"] = column
        self._drill(ctx, **drill)

    def on_bar_click(self, ctx):
        queue, label = ctx.params.get("trace"), ctx.params.get("x")
        if label is None:
            return
        kwargs = dict(label=str(label))
        if queue in (*queue_stats.QUEUES, queue_stats.UNASSIGNED):
            kwargs["queue"] = queue
        self._drill(ctx, **kwargs)

    def on_next_cell(self, ctx):
        """Shows one of the next yellow labels and opens its sample."""
        rows = ctx.panel.state.next or []
        row = ctx.params.get("row")
        if not (isinstance(row, int) and 0 <= row < len(rows)):
            return
        label_id, sample_id = rows[row]
        if self._drill(ctx, label_ids=[label_id]):
            # the App closes the modal when a view change lands, and set_view
            # lands later than open_sample: the sample is opened by
            # on_change_view, once the App has applied the new view
            ctx.panel.state.open_sample = sample_id
        else:
            ctx.ops.open_sample(id=sample_id)

    def show_all(self, ctx):
        field = ctx.panel.state.label_field
        base = self._base(ctx, field)
        ctx.panel.state.drill = None
        ctx.ops.set_view(base)

    # -- decisions --------------------------------------------------------------

    def accept_green(self, ctx):
        self._decide_queue(ctx, "accept", "green")

    def reject_red(self, ctx):
        self._decide_queue(ctx, "reject", "red")

    def accept_selected(self, ctx):
        self._decide_selected(ctx, "accept")

    def reject_selected(self, ctx):
        self._decide_selected(ctx, "reject")

    def undo(self, ctx):
        try:
            out = undo_last(ctx.dataset, user=context_user(ctx))
        except ValueError as e:
            return self._fail(ctx, str(e))
        msg = f"Undid action {out['undone_action_id']} ({out['undone_action']}): {out['num_labels']} label(s) restored"
        if out["num_conflicts"]:
            msg += f", {out['num_conflicts']} left alone (decided again since)"
        self._after_decision(ctx, msg)

    # -- helpers ----------------------------------------------------------------

    def _decide_queue(self, ctx, action: str, queue: str):
        field = ctx.panel.state.label_field
        if not field:
            return self._fail(ctx, "No label field")
        # only labels nobody decided: a bulk accept never overrides a person
        pending = queue_stats.drilldown_view(self._base(ctx, field), field, queue=queue, review="pending")
        try:
            out = review_labels(pending, field, action, queue=queue, user=context_user(ctx))
        except ValueError as e:
            return self._fail(ctx, str(e))
        verb = "Accepted" if action == "accept" else "Rejected"
        self._after_decision(ctx, f"{verb} {out['num_labels']:,} pending {queue} label(s) (action {out['action_id']})")

    def _decide_selected(self, ctx, action: str):
        field = ctx.panel.state.label_field
        ids = app_context.selected_label_ids(ctx.selected_labels, field)
        kwargs = dict(user=context_user(ctx))
        if ids:
            kwargs["label_ids"] = ids
            what = f"{len(ids)} selected label(s)"
        elif ctx.selected:
            kwargs["sample_ids"] = list(ctx.selected)
            what = f"the shown labels of {len(ctx.selected)} selected sample(s)"
        else:
            return self._fail(ctx, f"Nothing selected: select labels of '{field}' (or samples) in the grid first")
        try:
            out = review_labels(ctx.view, field, action, **kwargs)
        except ValueError as e:
            return self._fail(ctx, str(e))
        verb = "Accepted" if action == "accept" else "Rejected"
        if ids:
            ctx.ops.clear_selected_labels()
        self._after_decision(ctx, f"{verb} {what}: {out['num_labels']:,} label(s) (action {out['action_id']})")

    def _after_decision(self, ctx, message: str):
        ctx.panel.state.message = message
        self._refresh(ctx)
        # the grid and sidebar read the labels again
        ctx.ops.reload_samples()

    def _fail(self, ctx, message: str):
        ctx.panel.state.message = f"⚠ {message}"
        ctx.ops.notify(message, variant="error")

    def _drill(self, ctx, **drill) -> bool:
        """Sets the view to the base view drilled down; returns whether that
        changes the App's view."""
        field = ctx.panel.state.label_field
        if not field:
            return False
        base = self._base(ctx, field)
        view = queue_stats.drill_view(base, field, drill)
        ctx.panel.state.drill = drill
        if view._serialize(include_uuids=False) == ctx.view._serialize(include_uuids=False):
            return False
        ctx.ops.set_view(view)
        return True

    def _base(self, ctx, field):
        base, found = queue_stats.strip_drilldown(ctx.view, field, ctx.panel.state.drill)
        if ctx.panel.state.drill and not found:
            ctx.panel.state.drill = None
        return base

    def _set_selection(self, ctx):
        # only on load and on the App's selection events, never in _refresh:
        # a refresh answered after a newer selection event (a slow
        # on_change_view while the user selects a label) would otherwise
        # put back the selection its request was sent with
        field = ctx.panel.state.label_field
        ctx.panel.state.set(
            dict(
                num_selected_labels=len(app_context.selected_label_ids(ctx.selected_labels, field)),
                num_selected_samples=len(ctx.selected or []),
            )
        )

    def _refresh(self, ctx):
        """Recomputes every number and chart for the current base view."""
        from ..triage.workflow import load_calibration, triage_report

        dataset = ctx.dataset
        field = app_context.choose_label_field(dataset, ctx.panel.state.label_field)
        ctx.panel.state.set(dict(fields=app_context.label_fields(dataset), label_field=field))
        if field is None:
            ctx.panel.state.error = "This dataset has no fo.Detections field to review."
            return
        ctx.panel.state.error = None
        base = self._base(ctx, field)
        # the whole dataset's counts (and next yellow labels) are stored while
        # its samples are unchanged
        # one aggregation for the counts and the triage report
        cells = count_cache.label_cells_cached(base, field)
        summary = queue_stats.summarize_counts(queue_stats.rows_from_cells(cells))
        key = app_context.calibration_key(dataset, field, ctx.panel.state.calibration_key)
        report, calibration = None, None
        if key is not None:
            try:
                calibration = load_calibration(dataset, key)
                report = triage_report(base, field, key, cells=cells)
            except ValueError as e:
                logger.warning("Triage report unavailable: %s", e)
        upcoming = count_cache.next_yellow_cached(base, field, NEXT_YELLOW)
        qrows = charts.queue_rows(summary, report)
        ctx.panel.state.set(
            dict(
                calibration_key=key,
                summary={k: summary[k] for k in ("total", "accepted", "rejected", "pending", "decided", "yellow_open")},
                queue_counts={q: summary["queues"][q]["pending"] for q in queue_stats.QUEUES},
                classes=summary["classes"],
                queue_order=[r["queue"] for r in qrows],
                report_lines=charts.report_lines(summary, report),
                target_precision=(calibration or {}).get("target_precision"),
                has_curves=bool(calibration and calibration.get("curves")),
                next=[[r["label_id"], r["sample_id"]] for r in upcoming],
            )
        )
        ctx.panel.data.set(
            dict(
                queue_table=qrows,
                class_table=charts.class_rows(summary),
                counts_plot=charts.counts_bar_traces(summary),
                curves_plot=charts.curve_traces(calibration) if calibration else [],
                next_table=[
                    dict(rank=r["rank"], label=r["label"],
                         p_correct="—" if r["p_correct"] is None else f"{r['p_correct']:.3f}",
                         label_id=r["label_id"])
                    for r in upcoming
                ],
            )
        )

    # -- layout -------------------------------------------------------------------

    def render(self, ctx):
        s = ctx.panel.state
        panel = types.Object()
        if s.error:
            panel.md(f"**{s.error}**", name="error_md")
            return types.Property(panel, view=_layout())
        field = s.label_field
        top = panel.h_stack("top", align_y="center", gap=2)
        top.enum(
            "label_field", s.fields or [field], default=field, label="Label field",
            on_change=self.on_change_label_field, view=types.DropdownView(),
        )
        key = s.calibration_key
        top.md(f"Calibration: `{key}`" if key else "No calibration yet (run *calibrate_triage*)", name="cal_md")

        lines = list(s.report_lines or [])
        drill = s.drill
        if drill:
            lines.append(f"**Showing** {_describe(drill)} in the grid")
        panel.md("\n\n".join(lines), name="summary_md")

        counts = s.queue_counts or {}
        n_lab, n_smp = s.num_selected_labels or 0, s.num_selected_samples or 0
        selected = f"{n_lab} label(s)" if n_lab or not n_smp else f"{n_smp} sample(s)"
        btns = panel.h_stack("actions", gap=1)
        btns.btn("accept_green", label=f"Accept all green ({counts.get('green', 0):,})", icon="done_all",
                 on_click=self.accept_green, variant="outlined", disabled=not counts.get("green"))
        btns.btn("reject_red", label=f"Reject all red ({counts.get('red', 0):,})", icon="block",
                 on_click=self.reject_red, variant="outlined", disabled=not counts.get("red"))
        btns.btn("accept_selected", label=f"Accept selected ({selected})", icon="check",
                 on_click=self.accept_selected, variant="outlined", disabled=not (n_lab or n_smp))
        btns.btn("reject_selected", label=f"Reject selected ({selected})", icon="close",
                 on_click=self.reject_selected, variant="outlined", disabled=not (n_lab or n_smp))
        btns.btn("undo", label="Undo", icon="undo", on_click=self.undo, variant="outlined")
        btns.btn("show_all", label="Show all", icon="filter_alt_off", on_click=self.show_all,
                 variant="outlined", disabled=not drill)
        if s.message:
            panel.md(s.message, name="message_md")

        qtable = types.TableView(on_click_cell=self.on_queue_cell)
        for key_, label in _QUEUE_COLUMNS:
            qtable.add_column(key_, label=label)
        panel.list("queue_table", types.Object(), view=qtable, label="Queues (click one to show its labels)")

        panel.plot(
            "counts_plot", layout=charts.counts_bar_layout(), on_click=self.on_bar_click,
            config=dict(displayModeBar=False), height=300,
        )

        ctable = types.TableView(on_click_cell=self.on_class_cell)
        for col in _CLASS_COLUMNS:
            ctable.add_column(col, label="Class" if col == "label" else col.capitalize())
        panel.list("class_table", types.Object(), view=ctable,
                   label="Classes (click a cell: that class, queue or review state)")

        ntable = types.TableView(on_click_cell=self.on_next_cell)
        for col, label in (("rank", "Rank"), ("label", "Class"), ("p_correct", "P(correct)"), ("label_id", "Label id")):
            ntable.add_column(col, label=label)
        panel.list("next_table", types.Object(), view=ntable,
                   label=f"Next {NEXT_YELLOW} yellow labels to review (click one to open it)")

        if s.has_curves:
            panel.plot(
                "curves_plot", layout=charts.curve_layout(s.target_precision),
                config=dict(displayModeBar=False), height=320,
            )
        return types.Property(panel, view=_layout())


def _describe(drill: dict) -> str:
    if drill.get("label_ids") is not None:
        return f"{len(drill['label_ids'])} chosen label(s)"
    parts = [f"{k} **{v}**" for k, v in drill.items() if v is not None]
    return ", ".join(parts) + " labels"


def _layout():
    return types.GridView(orientation="vertical", gap=2, padding=1)
