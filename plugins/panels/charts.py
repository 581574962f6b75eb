"""Rows and Plotly traces the verification panel draws, built from the
count summary (:func:`.queue_stats.summarize_counts`), the triage report
and the calibration. Pure: dicts and lists in, JSON-ready dicts out."""

from __future__ import annotations

from .label_map import QUEUE_COLORS
from .queue_stats import QUEUES, UNASSIGNED


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def queue_rows(summary: dict, report: dict | None = None) -> list[dict]:
    """One row per queue (green, yellow, red; unassigned only when some
    labels have no queue): counts, review progress and, with a report, the
    expected and verified precision."""
    rows = []
    for q in (*QUEUES, UNASSIGNED):
        c = summary["queues"][q]
        if q == UNASSIGNED and c["count"] == 0:
            continue
        rq = (report or {}).get("queues", {}).get(q, {}) if q != UNASSIGNED else {}
        interval = rq.get("interval")
        verified = _pct(rq.get("verified_precision"))
        if interval:
            verified += f" [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]"
        rows.append(
            dict(
                queue=q,
                count=c["count"],
                pending=c["pending"],
                accepted=c["accepted"],
                rejected=c["rejected"],
                expected_precision=_pct(rq.get("expected_precision")),
                verified_precision=verified,
            )
        )
    return rows


def class_rows(summary: dict) -> list[dict]:
    """One row per class: labels per queue and per review state."""
    return [dict(label=c, **summary["by_class"][c]) for c in summary["classes"]]


def counts_bar_traces(summary: dict) -> list[dict]:
    """A stacked bar chart: classes on x, one trace per queue. A bar's
    trace name is its queue and its x its class (what a click reports)."""
    classes = summary["classes"]
    traces = []
    for q in (*QUEUES, UNASSIGNED):
        y = [summary["by_class"][c][q] for c in classes]
        if q == UNASSIGNED and not any(y):
            continue
        traces.append(
            dict(
                type="bar",
                name=q,
                x=list(classes),
                y=y,
                marker=dict(color=QUEUE_COLORS[q]),
                hovertemplate=f"class %{{x}}: %{{y}} {q}<extra></extra>",
            )
        )
    return traces


def counts_bar_layout() -> dict:
    return dict(
        barmode="stack",
        showlegend=True,
        height=280,
        xaxis=dict(title=dict(text="class"), type="category"),
        yaxis=dict(title=dict(text="labels")),
        margin=dict(t=10, l=50, b=40, r=10),
    )


def curve_traces(calibration: dict) -> list[dict]:
    """Precision of the verified labels above each P(correct) threshold,
    one line per class, and each class's chosen green (diamond) and red
    (cross) thresholds on its line."""
    traces = []
    curves = calibration.get("curves") or {}
    per_class = calibration.get("per_class") or {}
    greens = dict(x=[], y=[], text=[])
    reds = dict(x=[], y=[], text=[])
    for cls in sorted(curves, key=str):
        cur = curves[cls]
        pts = [(t, p) for t, p in zip(cur.get("threshold", []), cur.get("precision", [])) if t is not None and p is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        traces.append(dict(type="scatter", mode="lines", name=str(cls), x=list(xs), y=list(ys)))
        info = per_class.get(cls, {})
        for key, bucket in (("green_threshold", greens), ("red_threshold", reds)):
            t = info.get(key)
            if t is None:
                continue
            # the curve's precision at the first threshold at or above t
            at = next((p for x, p in pts if x >= t), ys[-1])
            bucket["x"].append(t)
            bucket["y"].append(at)
            bucket["text"].append(str(cls))
    for name, bucket, symbol, color in (
        ("green threshold", greens, "diamond", QUEUE_COLORS["green"]),
        ("red threshold", reds, "x", QUEUE_COLORS["red"]),
    ):
        if bucket["x"]:
            traces.append(
                dict(
                    type="scatter", mode="markers", name=name, **bucket,
                    marker=dict(symbol=symbol, size=11, color=color, line=dict(width=1, color="#222")),
                    hovertemplate="class %{text}: threshold %{x:.3f}<extra>" + name + "</extra>",
                )
            )
    return traces


def curve_layout(target_precision: float | None) -> dict:
    """Axes and the dashed target-precision line."""
    layout = dict(
        showlegend=True,
        height=300,
        xaxis=dict(title=dict(text="P(correct) threshold"), range=[0, 1]),
        yaxis=dict(title=dict(text="precision above threshold"), range=[0, 1.02]),
        margin=dict(t=10, l=50, b=40, r=10),
    )
    if target_precision is not None:
        layout["shapes"] = [
            dict(type="line", xref="paper", x0=0, x1=1, y0=target_precision, y1=target_precision,
                 line=dict(dash="dash", color="#888", width=1.5))
        ]
        layout["annotations"] = [
            dict(xref="paper", x=0.01, y=target_precision, yanchor="bottom", showarrow=False,
                 text=f"target {target_precision:.0%}")
        ]
    return layout


def report_lines(summary: dict, report: dict | None) -> list[str]:
    """Markdown lines: review progress, expected precision, workload and
    cost (the last three need a report)."""
    lines = []
    if summary["total"]:
        lines.append(
            f"**Review progress**: {summary['decided']:,} of {summary['total']:,} labels decided "
            f"({_pct(summary['progress'])}): {summary['accepted']:,} accepted, "
            f"{summary['rejected']:,} rejected; {summary['yellow_open']:,} yellow still open"
        )
    else:
        lines.append("**No labels** in this view.")
    if report:
        final = report.get("final", {})
        work = report.get("workload", {})
        cost = report.get("cost", {})
        lines.append(
            f"**Expected precision** of the final labels: {_pct(final.get('expected_precision'))} "
            f"(green {_pct(report['queues']['green'].get('expected_precision'))}, target "
            f"{_pct(report.get('target_precision'))}, {report.get('guarantee')} guarantee)"
        )
        lines.append(
            f"**Workload**: {work.get('yellow_open', 0):,} open yellow labels ≈ {work.get('hours_open', 0):.1f} h "
            f"at {work.get('seconds_per_box', 0):g} s per box"
        )
        lines.append(
            f"**Cost**: by hand ${cost.get('manual_usd', 0):,.2f}, auto-label + review "
            f"${cost.get('auto_usd', 0):,.2f}, savings ${cost.get('savings_usd', 0):,.2f} "
            f"({_pct(cost.get('savings_share'))})"
        )
    return lines
