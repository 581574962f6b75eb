"""What the verification queues panel shows after a refresh, from the
counts (:func:`..shared.queue_stats.summarize_counts`), the triage report,
the calibration and the next yellow labels: the panel state (small, read
back on each event) and the panel data (tables and traces, write-only).
Pure: dicts in, JSON-ready dicts out."""

from __future__ import annotations

from ...common.label_vocab import QUEUES
from . import audit_section, charts

#: the summary's totals kept in the panel state
_SUMMARY_KEYS = ("total", "accepted", "rejected", "corrected", "bulk", "pending", "decided", "yellow_open")


def panel_state(summary: dict, report: dict | None, calibration: dict | None, upcoming: list[dict],
                calibration_key: str | None) -> dict:
    """The panel state of a refresh (everything the layout reads).

    Args:
        summary: :func:`..shared.queue_stats.summarize_counts` of the base view
        report: the triage report, or None without a calibration
        calibration: the calibration run's results, or None
        upcoming: the next yellow labels (``label_id``, ``sample_id``, ...)
        calibration_key: the calibration run shown

    Returns:
        a dict for ``ctx.panel.state.set``
    """
    audit = (report or {}).get("audit") or {}
    audit_next = (audit.get("pending") or [None])[0]
    return dict(
        calibration_key=calibration_key,
        summary={k: summary[k] for k in _SUMMARY_KEYS},
        queue_counts={q: summary["queues"][q]["pending"] for q in QUEUES},
        classes=summary["classes"],
        queue_order=[r["queue"] for r in charts.queue_rows(summary, report)],
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


def panel_data(summary: dict, report: dict | None, calibration: dict | None, upcoming: list[dict]) -> dict:
    """The panel data of a refresh: the tables' rows and the plots' traces
    (arguments as :func:`panel_state`)."""
    return dict(
        queue_table=charts.queue_rows(summary, report),
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
