"""Rows and Plotly traces the verification panel draws, built from the
count summary (:func:`.queue_stats.summarize_counts`), the triage report
and the calibration. Pure: dicts and lists in, JSON-ready dicts out."""

from __future__ import annotations

from ...common.label_vocab import QUEUE_COLORS, QUEUES, UNASSIGNED


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
                corrected=c.get("corrected", 0),
                bulk=c.get("bulk", 0),
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
        bulk = summary.get("bulk", 0)
        lines.append(
            f"**Review progress**: {summary['decided']:,} of {summary['total']:,} labels decided "
            f"({_pct(summary['progress'])}): {summary['accepted']:,} accepted, "
            f"{summary['rejected']:,} rejected, {summary.get('corrected', 0):,} corrected"
            + (f" ({bulk:,} of them in bulk, not looked at one by one)" if bulk else "")
            + f"; {summary['yellow_open']:,} yellow still open"
        )
    else:
        lines.append("**No labels** in this view.")
    if report:
        final = report.get("final", {})
        work = report.get("workload", {})
        cost = report.get("cost", {})
        checked = final.get("checked_by_people")
        bulk_acc = final.get("bulk_accepted") or 0
        lines.append(
            f"**Expected precision** of the final labels: {_pct(final.get('expected_precision'))} "
            f"(green {_pct(report['queues']['green'].get('expected_precision'))}, target "
            f"{_pct(report.get('target_precision'))}, {report.get('guarantee')} guarantee"
            + (f"; {checked:,} checked by people" if checked is not None else "")
            + (f", {bulk_acc:,} accepted in bulk count at their expected precision" if bulk_acc else "")
            + ")"
        )
        pace = work.get("pace")
        how = (f"at the pace measured in review sessions, {pace['seconds_per_label']:g} s per label "
               f"({pace['num_gaps']:,} answers timed)" if pace
               else f"at {work.get('seconds_per_box', 0):g} s per box (assumed until a review session is measured)")
        lines.append(
            f"**Workload**: {work.get('yellow_open', 0):,} open yellow labels ≈ {work.get('hours_open', 0):.1f} h {how}"
        )
        lines.append(
            f"**Cost**: by hand ${cost.get('manual_usd', 0):,.2f}, auto-label + review "
            f"${cost.get('auto_usd', 0):,.2f}, savings ${cost.get('savings_usd', 0):,.2f} "
            f"({_pct(cost.get('savings_share'))})"
        )
    return lines


def _pct_interval(block: dict | None) -> str:
    if not block or block.get("estimate") is None:
        return "—"
    lo, hi = block.get("interval") or (None, None)
    return _pct(block["estimate"]) + (f" [{100 * lo:.1f}–{100 * hi:.1f}]" if lo is not None else "")


def recall_lines(report: dict | None) -> list[str]:
    """Markdown lines of the report's ``recall`` section: recall of the
    auto-labels and of the final labels with intervals, the class found
    least, and what the lowest threshold adds over the next one."""
    rec = (report or {}).get("recall")
    if not rec:
        return []
    if rec.get("reason"):
        return [f"**Recall**: not measured ({rec['reason']})."]
    auto, final = rec["auto"], rec.get("final")
    level = rec.get("confidence_level", 0.95)
    line = (
        f"**Recall** on {rec['images']:,} verified images: the auto-labels find "
        f"{_pct_interval(auto['overall'])} of {rec['objects']:,} verified objects"
        + (f", the final labels {_pct_interval(final['overall'])}" if final else "")
        + f" ({level:.0%} intervals over images)"
    )
    classes = [(c, b) for c, b in auto["classes"].items() if b.get("estimate") is not None]
    if len(classes) > 1:
        c, b = min(classes, key=lambda cb: cb[1]["estimate"])
        line += f"; found least: class '{c}' {_pct_interval(b)}"
    lines = [line]
    curve = rec.get("curve") or []
    if len(curve) > 1:
        low, up = curve[0], curve[1]
        basis = "yellow labels" if rec.get("review_basis") == "yellow" else "labels"
        lines.append(
            f"**Labeling threshold** {low['threshold']:g} rather than {up['threshold']:g}: "
            f"+{low['added_labels']:,} labels (≈ {low['added_hours']:.1f} h more review of {basis}), recall "
            f"{_pct(low['recall'])} vs {_pct(up['recall'])}, precision {_pct(low['precision'])} vs "
            f"{_pct(up['precision'])} (the curve below; thresholds under {low['threshold']:g} were never kept)"
        )
    return lines


def recall_traces(report: dict | None) -> list[dict]:
    """The labeling threshold's trade-off: recall (with its interval band)
    and precision of the verified auto-labels at each confidence threshold;
    hovering a point tells the labels and review hours it adds."""
    curve = ((report or {}).get("recall") or {}).get("curve") or []
    if not curve:
        return []
    x = [p["threshold"] for p in curve]
    custom = [[p["labels"], p["added_labels"], p["review_hours"], p["added_hours"]] for p in curve]
    extra = ("<br>%{customdata[0]:,} labels (+%{customdata[1]:,} over the next threshold)"
             "<br>review ≈ %{customdata[2]:.1f} h (+%{customdata[3]:.1f} h)")
    lo = [(p["recall_interval"] or [None, None])[0] for p in curve]
    hi = [(p["recall_interval"] or [None, None])[1] for p in curve]
    return [
        dict(type="scatter", mode="lines", x=x, y=hi, line=dict(width=0), showlegend=False, hoverinfo="skip",
             name="recall upper"),
        dict(type="scatter", mode="lines", x=x, y=lo, line=dict(width=0), fill="tonexty",
             fillcolor="rgba(30,136,229,0.15)", name="recall interval", hoverinfo="skip"),
        dict(type="scatter", mode="lines+markers", name="recall", x=x, y=[p["recall"] for p in curve],
             line=dict(color="#1e88e5"), customdata=custom,
             hovertemplate="threshold %{x:.2f}: recall %{y:.1%}" + extra + "<extra></extra>"),
        dict(type="scatter", mode="lines+markers", name="precision", x=x, y=[p["precision"] for p in curve],
             line=dict(color="#8e24aa"), customdata=custom,
             hovertemplate="threshold %{x:.2f}: precision %{y:.1%}" + extra + "<extra></extra>"),
    ]


def recall_layout() -> dict:
    return dict(
        showlegend=True,
        height=300,
        xaxis=dict(title=dict(text="labeling threshold (confidence)"), range=[0, 1]),
        yaxis=dict(title=dict(text="on the verified images"), range=[0, 1.02]),
        margin=dict(t=10, l=50, b=40, r=10),
    )
