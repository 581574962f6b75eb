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
of narrowing it. Any other view change makes the new view the base. While
drilled down the grid draws only the field under review (the App's active
fields; *Show all* puts the user's back).

At the top: the next labels to review, as crops (click one to open it).
Bulk decisions (*Accept all green*, *Reject all red*) ask for confirmation
and are recorded as bulk (see :mod:`..review.decisions`). The workload
uses the pace measured in review sessions once there is one
(:func:`..review.pace.review_pace`). Edits made in the sample modal's
Annotate tab are logged as corrections on every refresh
(:func:`..review.corrections.sync_label_edits`).

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
import fiftyone.operators.types as types

from ..review.corrections import sync_label_edits
from ..review.decisions import review_labels, undo_last
from ..review.operators import context_user
from ..review.pace import review_pace
from ..triage.green_audit import apply_certificate, audit_green
from . import app_context, audit_section, charts, count_cache, crops, queue_stats

logger = logging.getLogger(__name__)

NEXT_YELLOW = 10
#: crops shown in the strip of next questions
NEXT_CROPS = 8
_CLASS_COLUMNS = ("label", "green", "yellow", "red", "total", "pending", "accepted", "rejected", "corrected", "bulk")
_QUEUE_COLUMNS = (
    ("queue", "Queue"), ("count", "Labels"), ("pending", "Pending"), ("accepted", "Accepted"),
    ("rejected", "Rejected"), ("corrected", "Corrected"), ("bulk", "Decided in bulk"),
    ("expected_precision", "Expected precision"),
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

    def on_next_crop(self, ctx):
        """A crop of the strip: the same as its row of the next table."""
        self.on_next_cell(ctx)

    def show_all(self, ctx):
        field = ctx.panel.state.label_field
        base = self._base(ctx, field)
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
            out = audit_green(self._base(ctx, field), field, key, audit_key=ctx.panel.state.audit_key or "audit",
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
        pending = queue_stats.drilldown_view(self._base(ctx, field), field, queue=queue, review="pending")
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
        cells = count_cache.label_cells_cached(self._base(ctx, field), field)
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
        base = self._base(ctx, field)
        view = queue_stats.drill_view(base, field, drill)
        ctx.panel.state.drill = drill
        self._show_only_field(ctx, field)
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
        self._sync_edits(dataset, field)
        apply_certificate(dataset, field)  # answers given elsewhere may have earned one
        base = self._base(ctx, field)
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
        qrows = charts.queue_rows(summary, report)
        audit = (report or {}).get("audit") or {}
        audit_next = (audit.get("pending") or [None])[0]
        ctx.panel.state.set(
            dict(
                calibration_key=key,
                summary={k: summary[k] for k in ("total", "accepted", "rejected", "corrected", "bulk", "pending",
                                                 "decided", "yellow_open")},
                queue_counts={q: summary["queues"][q]["pending"] for q in queue_stats.QUEUES},
                classes=summary["classes"],
                queue_order=[r["queue"] for r in qrows],
                report_lines=charts.report_lines(summary, report) + charts.recall_lines(report),
                target_precision=(calibration or {}).get("target_precision"),
                has_curves=bool(calibration and calibration.get("curves")),
                has_recall_curve=bool(((report or {}).get("recall") or {}).get("curve")),
                next=[[r["label_id"], r["sample_id"]] for r in upcoming],
                audit_lines=audit_section.audit_lines(report),
                audit_key=audit.get("audit_key"),
                audit_status=audit.get("status"),
                audit_next=[audit_next["label_id"], audit_next["sample_id"]] if audit_next else None,
                audit_plan_sample=((report or {}).get("audit_plan") or {}).get("sample"),
                has_audit_plot=bool(audit.get("sets")),
            )
        )
        ctx.panel.data.set(
            dict(
                queue_table=qrows,
                class_table=charts.class_rows(summary),
                counts_plot=charts.counts_bar_traces(summary),
                curves_plot=charts.curve_traces(calibration) if calibration else [],
                recall_plot=charts.recall_traces(report),
                audit_plot=audit_section.audit_traces(report),
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

        self._render_next(panel, s)
        lines = list(s.report_lines or [])
        drill = s.drill
        if drill:
            lines.append(f"**Showing** {_describe(drill)} in the grid (only the `{field}` field drawn)")
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
        if s.confirm:
            self._render_confirm(panel, s.confirm)
        if s.message:
            panel.md(s.message, name="message_md")

        self._render_audit(panel, s)

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

        if s.has_curves:
            panel.plot(
                "curves_plot", layout=charts.curve_layout(s.target_precision),
                config=dict(displayModeBar=False), height=320,
            )
        if s.has_recall_curve:
            panel.plot("recall_plot", layout=charts.recall_layout(), config=dict(displayModeBar=False), height=320)
        return types.Property(panel, view=_layout())

    def _render_audit(self, panel, s):
        if not s.calibration_key:
            return
        panel.md("\n\n".join(s.audit_lines or []), name="audit_md")
        if s.has_audit_plot:
            panel.plot("audit_plot", layout=audit_section.audit_layout(), config=dict(displayModeBar=False),
                       height=130)
        row = panel.h_stack("audit_actions", gap=1)
        running = s.audit_status == "needs_answers"
        if not running:
            n = s.audit_plan_sample
            label = "Start a new audit" if s.audit_key else (f"Start audit ({n} questions)" if n else "Start audit")
            row.btn("start_audit", label=label, icon="fact_check", on_click=self.start_audit, variant="outlined")
            return
        row.btn("next_audit", label="Next audit label", icon="skip_next", on_click=self.next_audit_label,
                variant="outlined", disabled=not s.audit_next)
        row.btn("accept_audit", label="It is right (accept)", icon="check", on_click=self.accept_audit_label,
                variant="outlined", disabled=not s.audit_shown)
        row.btn("reject_audit", label="It is wrong (reject)", icon="close", on_click=self.reject_audit_label,
                variant="outlined", disabled=not s.audit_shown)


    def _render_next(self, panel, s):
        """The next questions at the top: their crops, then the table."""
        strip = s.next_strip or {}
        if strip:
            row = panel.h_stack("next_strip", gap=1, align_y="top")
            for key in sorted(strip, key=lambda k: int(k[1:])):
                cell = row.v_stack(key, gap=0)
                cell.img("img", on_click=self.on_next_crop, params=dict(row=int(key[1:])), height="72px",
                         width="72px", alt_text=strip[key]["cap"])
                cell.md(strip[key]["cap"], name="cap")
        ntable = types.TableView(on_click_cell=self.on_next_cell)
        for col, label in (("rank", "Rank"), ("label", "Class"), ("p_correct", "P(correct)"), ("label_id", "Label id")):
            ntable.add_column(col, label=label)
        panel.list("next_table", types.Object(), view=ntable,
                   label=f"Next {NEXT_YELLOW} yellow labels to review, in the order answers keep updating "
                         "(click one to open it)")

    def _render_confirm(self, panel, ask: dict):
        verb = "Accept" if ask["action"] == "accept" else "Reject"
        panel.md(
            f"**{verb} all {ask['count']:,} pending {ask['queue']} labels without looking at each?** "
            "They are recorded as a bulk decision: the report keeps them apart from labels people checked "
            "(at their expected precision) and calibration never counts them as verified.",
            name="confirm_md",
        )
        row = panel.h_stack("confirm_row", gap=1)
        row.btn("confirm_bulk", label=f"Yes, {verb.lower()} {ask['count']:,} {ask['queue']} labels",
                icon="done_all", on_click=self.confirm_bulk, variant="contained")
        row.btn("cancel_bulk", label="Cancel", icon="close", on_click=self.cancel_bulk, variant="outlined")


def _describe(drill: dict) -> str:
    if drill.get("label_ids") is not None:
        return f"{len(drill['label_ids'])} chosen label(s)"
    parts = [f"{k} **{v}**" for k, v in drill.items() if v is not None]
    return ", ".join(parts) + " labels"


def _layout():
    return types.GridView(orientation="vertical", gap=2, padding=1)
