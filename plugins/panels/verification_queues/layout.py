"""What the verification queues panel draws: the layout built from its
state on every render.

Each function adds one part of the panel to ``view`` (a
``types.Object``); callbacks are the panel's methods, passed in as
``panel``. Nothing here reads the dataset: :mod:`.panel_content` has put
every number in the state already.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from . import audit_section, charts

#: rows of the table of next yellow labels
NEXT_YELLOW = 10
#: columns of the class table (a click on a cell drills down to them)
CLASS_COLUMNS = ("label", "green", "yellow", "red", "total", "pending", "accepted", "rejected", "corrected", "bulk")
#: columns of the queue table: (key, header)
QUEUE_COLUMNS = (
    ("queue", "Queue"), ("count", "Labels"), ("pending", "Pending"), ("accepted", "Accepted"),
    ("rejected", "Rejected"), ("corrected", "Corrected"), ("bulk", "Decided in bulk"),
    ("expected_precision", "Expected precision"),
    ("verified_precision", "Verified precision [interval]"),
)


def render(panel, s) -> types.Property:
    """The whole panel, top to bottom, for the panel state ``s``."""
    view = types.Object()
    if s.error:
        view.md(f"**{s.error}**", name="error_md")
        return types.Property(view, view=_grid())
    _header(view, panel, s)
    _next_questions(view, panel, s)
    _summary(view, s)
    _actions(view, panel, s)
    if s.confirm:
        _confirm(view, panel, s.confirm)
    if s.message:
        view.md(s.message, name="message_md")
    _audit(view, panel, s)
    _tables_and_plots(view, panel, s)
    return types.Property(view, view=_grid())


def _header(view, panel, s) -> None:
    field = s.label_field
    top = view.h_stack("top", align_y="center", gap=2)
    top.enum(
        "label_field", s.fields or [field], default=field, label="Label field",
        on_change=panel.on_change_label_field, view=types.DropdownView(),
    )
    key = s.calibration_key
    top.md(f"Calibration: `{key}`" if key else "No calibration yet (run *calibrate_triage*)", name="cal_md")


def _next_questions(view, panel, s) -> None:
    """The next questions at the top: their crops, then the table."""
    strip = s.next_strip or {}
    if strip:
        row = view.h_stack("next_strip", gap=1, align_y="top")
        for key in sorted(strip, key=lambda k: int(k[1:])):
            cell = row.v_stack(key, gap=0)
            cell.img("img", on_click=panel.on_next_crop, params=dict(row=int(key[1:])), height="72px",
                     width="72px", alt_text=strip[key]["cap"])
            cell.md(strip[key]["cap"], name="cap")
    ntable = types.TableView(on_click_cell=panel.on_next_cell)
    for col, label in (("rank", "Rank"), ("label", "Class"), ("p_correct", "P(correct)"), ("label_id", "Label id")):
        ntable.add_column(col, label=label)
    view.list("next_table", types.Object(), view=ntable,
              label=f"Next {NEXT_YELLOW} yellow labels to review, in the order answers keep updating "
                    "(click one to open it)")


def _summary(view, s) -> None:
    lines = list(s.report_lines or [])
    if s.drill:
        lines.append(f"**Showing** {describe_drill(s.drill)} in the grid (only the `{s.label_field}` field drawn)")
    view.md("\n\n".join(lines), name="summary_md")


def _actions(view, panel, s) -> None:
    counts = s.queue_counts or {}
    n_lab, n_smp = s.num_selected_labels or 0, s.num_selected_samples or 0
    selected = f"{n_lab} label(s)" if n_lab or not n_smp else f"{n_smp} sample(s)"
    btns = view.h_stack("actions", gap=1)
    btns.btn("accept_green", label=f"Accept all green ({counts.get('green', 0):,})", icon="done_all",
             on_click=panel.accept_green, variant="outlined", disabled=not counts.get("green"))
    btns.btn("reject_red", label=f"Reject all red ({counts.get('red', 0):,})", icon="block",
             on_click=panel.reject_red, variant="outlined", disabled=not counts.get("red"))
    btns.btn("accept_selected", label=f"Accept selected ({selected})", icon="check",
             on_click=panel.accept_selected, variant="outlined", disabled=not (n_lab or n_smp))
    btns.btn("reject_selected", label=f"Reject selected ({selected})", icon="close",
             on_click=panel.reject_selected, variant="outlined", disabled=not (n_lab or n_smp))
    btns.btn("undo", label="Undo", icon="undo", on_click=panel.undo, variant="outlined")
    btns.btn("show_all", label="Show all", icon="filter_alt_off", on_click=panel.show_all,
             variant="outlined", disabled=not s.drill)


def _confirm(view, panel, ask: dict) -> None:
    verb = "Accept" if ask["action"] == "accept" else "Reject"
    view.md(
        f"**{verb} all {ask['count']:,} pending {ask['queue']} labels without looking at each?** "
        "They are recorded as a bulk decision: the report keeps them apart from labels people checked "
        "(at their expected precision) and calibration never counts them as verified.",
        name="confirm_md",
    )
    row = view.h_stack("confirm_row", gap=1)
    row.btn("confirm_bulk", label=f"Yes, {verb.lower()} {ask['count']:,} {ask['queue']} labels",
            icon="done_all", on_click=panel.confirm_bulk, variant="contained")
    row.btn("cancel_bulk", label="Cancel", icon="close", on_click=panel.cancel_bulk, variant="outlined")


def _audit(view, panel, s) -> None:
    if not s.calibration_key:
        return
    view.md("\n\n".join(s.audit_lines or []), name="audit_md")
    if s.has_audit_plot:
        view.plot("audit_plot", layout=audit_section.audit_layout(), config=dict(displayModeBar=False), height=130)
    row = view.h_stack("audit_actions", gap=1)
    if s.audit_status != "needs_answers":
        n = s.audit_plan_sample
        label = "Start a new audit" if s.audit_key else (f"Start audit ({n} questions)" if n else "Start audit")
        row.btn("start_audit", label=label, icon="fact_check", on_click=panel.start_audit, variant="outlined")
        return
    row.btn("next_audit", label="Next audit label", icon="skip_next", on_click=panel.next_audit_label,
            variant="outlined", disabled=not s.audit_next)
    row.btn("accept_audit", label="It is right (accept)", icon="check", on_click=panel.accept_audit_label,
            variant="outlined", disabled=not s.audit_shown)
    row.btn("reject_audit", label="It is wrong (reject)", icon="close", on_click=panel.reject_audit_label,
            variant="outlined", disabled=not s.audit_shown)


def _tables_and_plots(view, panel, s) -> None:
    qtable = types.TableView(on_click_cell=panel.on_queue_cell)
    for key, label in QUEUE_COLUMNS:
        qtable.add_column(key, label=label)
    view.list("queue_table", types.Object(), view=qtable, label="Queues (click one to show its labels)")
    view.plot("counts_plot", layout=charts.counts_bar_layout(), on_click=panel.on_bar_click,
              config=dict(displayModeBar=False), height=300)
    ctable = types.TableView(on_click_cell=panel.on_class_cell)
    for col in CLASS_COLUMNS:
        ctable.add_column(col, label="Class" if col == "label" else col.capitalize())
    view.list("class_table", types.Object(), view=ctable,
              label="Classes (click a cell: that class, queue or review state)")
    if s.has_curves:
        view.plot("curves_plot", layout=charts.curve_layout(s.target_precision),
                  config=dict(displayModeBar=False), height=320)
    if s.has_recall_curve:
        view.plot("recall_plot", layout=charts.recall_layout(), config=dict(displayModeBar=False), height=320)


def describe_drill(drill: dict) -> str:
    """Markdown naming the labels a drill-down shows."""
    if drill.get("label_ids") is not None:
        return f"{len(drill['label_ids'])} chosen label(s)"
    parts = [f"{k} **{v}**" for k, v in drill.items() if v is not None]
    return ", ".join(parts) + " labels"


def _grid():
    return types.GridView(orientation="vertical", gap=2, padding=1)
