"""App layer: the ``verification_queues`` panel (grid surface).

Counts by queue and class (tables and a stacked bar chart), review
progress, expected precision, workload and cost from the triage report, the
calibration curves, buttons to decide labels, and the next yellow labels in
``review_rank`` order. Every method only translates ``ctx`` into calls of
:mod:`..shared.queue_stats` (:mod:`..shared.count_cache` for the counts), the
triage report and the review core (:mod:`...review.decisions`); what it
shows is built by :mod:`.panel_content` (tables and traces from
:mod:`.charts` and :mod:`.audit_section`) and drawn by :mod:`.layout`.

Drill-down: a click on a queue, a class cell or a bar sets the App's view
to the *base view* filtered to exactly those labels (``filter_labels``). The
base view is the App's view without that one stage (found again by
:func:`..shared.queue_stats.strip_drilldown`), so the counts keep describing what
the user chose to look at, and the next click replaces the filter instead
of narrowing it. Any other view change makes the new view the base. While
drilled down the grid draws only the field under review (the App's active
fields; *Show all* puts the user's back).

At the top: the next labels to review, as crops (click one to open it).
Bulk decisions (*Accept all green*, *Reject all red*) ask for confirmation
and are recorded as bulk (see :mod:`...review.decisions`). The workload
uses the pace measured in review sessions once there is one
(:func:`...review.pace.review_pace`). Edits made in the sample modal's
Annotate tab are logged as corrections on every refresh
(:func:`...review.corrections.sync_label_edits`).

State (small, read back on each event): ``label_field``,
``calibration_key``, ``drill``, ``classes``, ``queue_order``, ``next``
(ids of the next yellow labels), ``next_strip`` (their crops), ``confirm``
(a bulk decision waiting for its confirmation), ``fields_before_drill``,
the count ``summary`` and ``message``.
Data (write-only, large): the tables' rows and the plots' traces.
"""

from __future__ import annotations

import logging

import fiftyone.operators as foo

from ...review.corrections import sync_label_edits
from ...review.decisions import review_labels, undo_last
from ...review.operators import context_user
from ...review.pace import review_pace
from ...triage.green_audit import apply_certificate, audit_green
from ...common.fo_private import view_stages
from ..shared import app_context, count_cache, crops, queue_stats
from ..shared.queue_stats import panel_base_view
from ..shared.panel_config import grid_panel
from . import layout
from .layout import CLASS_COLUMNS, NEXT_YELLOW
from .panel_content import panel_data, panel_state

logger = logging.getLogger(__name__)

#: crops shown in the strip of next questions
NEXT_CROPS = 8


@grid_panel(
    "verification_queues", "Stoplight: verification queues", "traffic",
    "Counts of auto-labels per triage queue and class. Click a queue, a class "
    "cell or a bar to show exactly those labels; accept or reject them with the buttons."
)
class VerificationQueues(foo.Panel):
    """Review progress and navigation of the green / yellow / red queues."""

    # -- App events ---------------------------------------------------------

    def on_load(self, ctx):
        ctx.panel.state.message = None  # a message of an earlier visit is stale
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
        column = CLASS_COLUMNS[col] if isinstance(col, int) and 0 <= col < len(CLASS_COLUMNS) else None
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

    def on_next_crop(self, ctx):
        """A crop of the strip: the same as its row of the next table."""
        self.on_next_cell(ctx)

    def show_all(self, ctx):
        field = ctx.panel.state.label_field
        base = panel_base_view(ctx, field)
        ctx.panel.state.drill = None
        ctx.ops.set_view(base)
        self._restore_fields(ctx)

    # -- decisions --------------------------------------------------------------

    def accept_green(self, ctx):
        self._ask_bulk(ctx, "accept", "green")

    def reject_red(self, ctx):
        self._ask_bulk(ctx, "reject", "red")

    def confirm_bulk(self, ctx):
        """Runs the bulk decision the user was asked to confirm."""
        ask = ctx.panel.state.confirm
        ctx.panel.state.confirm = None
        if ask:
            self._decide_queue(ctx, ask["action"], ask["queue"])

    def cancel_bulk(self, ctx):
        ctx.panel.state.confirm = None
        ctx.panel.state.message = "Nothing decided"

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

    # -- audit of a candidate green set ---------------------------------------------

    def start_audit(self, ctx):
        """Starts (or, when one has ended, restarts) the field's audit."""
        field, key = ctx.panel.state.label_field, ctx.panel.state.calibration_key
        if not (field and key):
            return self._fail(ctx, "Calibrate the triage first (calibrate_triage)")
        ended = (ctx.panel.state.audit_status or "needs_answers") != "needs_answers"
        try:
            out = audit_green(panel_base_view(ctx, field), field, key, audit_key=ctx.panel.state.audit_key or "audit",
                              restart=bool(ctx.panel.state.audit_key) and ended)
        except ValueError as e:
            return self._fail(ctx, str(e))
        self._after_decision(ctx, f"Audit: {out['message']}")

    def next_audit_label(self, ctx):
        """Shows the next audit question alone in the grid and opens it."""
        pending = ctx.panel.state.audit_next
        if not pending:
            return self._fail(ctx, "No audit question waiting")
        label_id, sample_id = pending
        ctx.panel.state.audit_shown = pending
        if self._drill(ctx, label_ids=[label_id]):
            ctx.panel.state.open_sample = sample_id
        else:
            ctx.ops.open_sample(id=sample_id)

    def accept_audit_label(self, ctx):
        self._answer_audit(ctx, "accept")

    def reject_audit_label(self, ctx):
        self._answer_audit(ctx, "reject")

    def _answer_audit(self, ctx, action: str):
        # the label the person is looking at (shown by "Next audit label")
        pending, field = ctx.panel.state.audit_shown, ctx.panel.state.label_field
        if not pending:
            return self._fail(ctx, "Show the next audit label first")
        try:
            review_labels(ctx.dataset, field, action, label_ids=[pending[0]], user=context_user(ctx))
            # the audit reads the answer at once: a certificate is applied now
            out = audit_green(ctx.dataset, field, ctx.panel.state.calibration_key,
                              audit_key=ctx.panel.state.audit_key or "audit")
        except ValueError as e:
            return self._fail(ctx, str(e))
        verb = "Accepted" if action == "accept" else "Rejected"
        self._after_decision(ctx, f"{verb} audit label {pending[0]}. Audit: {out['message']}")
        # straight on to the next question, shown alone in the grid
        following = out["pending"][0] if out["status"] == "needs_answers" and out["pending"] else None
        ctx.panel.state.audit_shown = [following["label_id"], following["sample_id"]] if following else None
        if following:
            self._drill(ctx, label_ids=[following["label_id"]])
        else:
            self.show_all(ctx)

    # -- helpers ----------------------------------------------------------------

    def _decide_queue(self, ctx, action: str, queue: str):
        field = ctx.panel.state.label_field
        if not field:
            return self._fail(ctx, "No label field")
        # only labels nobody decided: a bulk accept never overrides a person
        pending = queue_stats.drilldown_view(panel_base_view(ctx, field), field, queue=queue, review="pending")
        try:
            # protect="all": a label someone decides after the view was
            # read is left alone, not overridden by the bulk action
            out = review_labels(pending, field, action, queue=queue, user=context_user(ctx), protect="all")
        except ValueError as e:
            return self._fail(ctx, str(e))
        verb = "Accepted" if action == "accept" else "Rejected"
        self._after_decision(ctx, f"{verb} {out['num_labels']:,} pending {queue} label(s) in bulk (action "
                                  f"{out['action_id']}; the report counts them apart from labels people checked)")

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

    def _ask_bulk(self, ctx, action: str, queue: str):
        """Asks before deciding a whole queue: nobody looks at those labels."""
        field = ctx.panel.state.label_field
        if not field:
            return self._fail(ctx, "No label field")
        # counted now: others may have decided labels since the last refresh
        cells = count_cache.label_cells_cached(panel_base_view(ctx, field), field)
        n = queue_stats.summarize_counts(queue_stats.rows_from_cells(cells))["queues"][queue]["pending"]
        ctx.panel.state.confirm = dict(action=action, queue=queue, count=n)

    def _show_only_field(self, ctx, field: str):
        """The grid draws only the field under review while drilled down."""
        if ctx.panel.state.fields_before_drill is None:
            ctx.panel.state.fields_before_drill = list(ctx.active_fields or [])
        ctx.ops.set_active_fields(fields=[field])

    def _restore_fields(self, ctx):
        """The user's active fields back (all label fields when the App did
        not say which were active)."""
        before = ctx.panel.state.fields_before_drill
        ctx.panel.state.fields_before_drill = None
        if before is None:
            return
        ctx.ops.set_active_fields(fields=before or app_context.label_fields(ctx.dataset))

    def _set_next_strip(self, ctx, dataset, field, upcoming):
        """Crops of the next labels to review, for the strip at the top."""
        rows = upcoming[:NEXT_CROPS]
        urls = crops.label_crops(dataset, field, rows)
        strip = {}
        for i, (r, url) in enumerate(zip(rows, urls)):
            p = "—" if r["p_correct"] is None else f"{r['p_correct']:.2f}"
            strip[f"c{i}"] = dict(img=url or "", cap=f"{r['label']} · P {p}")
        ctx.panel.state.next_strip = strip

    def _pace(self, dataset, field) -> dict | None:
        try:
            return review_pace(dataset, field)
        except Exception as e:  # noqa: BLE001 - a missing log must not break the panel
            logger.warning("Review pace unavailable: %s", e)
            return None

    def _sync_edits(self, dataset, field):
        try:
            sync_label_edits(dataset, field)
        except Exception as e:  # noqa: BLE001 - the counts still show
            logger.warning("Label edits not checked: %s", e)

    def _fail(self, ctx, message: str):
        ctx.panel.state.message = f"⚠ {message}"
        ctx.ops.notify(message, variant="error")

    def _drill(self, ctx, **drill) -> bool:
        """Sets the view to the base view drilled down; returns whether that
        changes the App's view."""
        field = ctx.panel.state.label_field
        if not field:
            return False
        base = panel_base_view(ctx, field)
        view = queue_stats.drill_view(base, field, drill)
        ctx.panel.state.drill = drill
        self._show_only_field(ctx, field)
        if view_stages(view) == view_stages(ctx.view):
            return False
        ctx.ops.set_view(view)
        return True

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
        from ...triage.workflow import load_calibration, triage_report

        dataset = ctx.dataset
        field = app_context.choose_label_field(dataset, ctx.panel.state.label_field)
        ctx.panel.state.set(dict(fields=app_context.label_fields(dataset), label_field=field))
        if field is None:
            ctx.panel.state.error = "This dataset has no fo.Detections field to review."
            return
        ctx.panel.state.error = None
        self._sync_edits(dataset, field)
        apply_certificate(dataset, field)  # answers given elsewhere may have earned one
        base = panel_base_view(ctx, field)
        # the whole dataset's counts (and next yellow labels) are stored while
        # its samples are unchanged
        # one aggregation for the counts and the triage report
        cells = count_cache.label_cells_cached(base, field)
        summary = queue_stats.summarize_counts(queue_stats.rows_from_cells(cells))
        key = app_context.calibration_key(dataset, field, ctx.panel.state.calibration_key)
        report, calibration = None, None
        pace = self._pace(dataset, field)
        if key is not None:
            try:
                calibration = load_calibration(dataset, key)
                extra = dict(seconds_per_box=pace["seconds_per_label"]) if pace else {}
                report = triage_report(base, field, key, cells=cells, **extra)
                report["workload"]["pace"] = pace
            except ValueError as e:
                logger.warning("Triage report unavailable: %s", e)
        upcoming = count_cache.next_yellow_cached(base, field, NEXT_YELLOW)
        self._set_next_strip(ctx, dataset, field, upcoming)
        ctx.panel.state.set(panel_state(summary, report, calibration, upcoming, key))
        ctx.panel.data.set(panel_data(summary, report, calibration, upcoming))

    # -- layout -------------------------------------------------------------------

    def render(self, ctx):
        return layout.render(self, ctx.panel.state)
