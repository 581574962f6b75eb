"""The "Audit green" part of the verification queues panel: what it says
and draws, from the triage report's ``audit`` (where the field's audit
stands) and ``audit_plan`` (what an audit could certify). Pure: dicts in,
Markdown lines and Plotly traces out."""

from __future__ import annotations


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def audit_lines(report: dict | None) -> list[str]:
    """Markdown lines: the running audit's progress and result, or the plan
    as a question a person can act on."""
    if not report:
        return []
    audit, plan = report.get("audit"), report.get("audit_plan")
    target = report.get("target_precision")
    lines = ["**Audit green** — certify a candidate set by checking a random sample of it"]
    if audit:
        status = audit["status"]
        if status == "certified":
            lines.append(
                f"**Certified**: {audit['candidates']:,} labels have precision ≥ {_pct(audit['target_precision'])} "
                f"at {_pct(audit['confidence_level'])} confidence (lower bound {_pct(audit['lower_bound'])}; "
                f"{audit['checked'] - audit['correct']} wrong of {audit['checked']} checked)."
            )
        elif status == "not_certifiable":
            lines.append(f"**Not certifiable**: {audit.get('message', '')}")
        else:
            lines.append(
                f"**Running**: {audit['checked']} of {audit['planned_checks']} answered for a set of "
                f"{audit['candidates']:,} labels; {len(audit.get('pending') or [])} to go. {audit.get('message', '')}"
            )
        return lines
    if plan and plan.get("thresholds"):
        more = plan.get("expected_gain") or 0.0
        lines.append(
            f"Answer ~{plan['sample']} questions to certify ~{plan['sizes'][0]:,} labels at precision ≥ "
            f"{_pct(target)} (chance {_pct(plan['certify_probability'][0])}; on average ~{more:,.0f} more green "
            "labels than now)."
        )
    elif plan:
        lines.append(f"No audit worth starting: {plan.get('reason', 'no candidate set')}.")
    else:
        lines.append("Run *assign_queues* to plan an audit.")
    return lines


def audit_traces(report: dict | None) -> list[dict]:
    """Two horizontal bars of the running audit: answers given of those
    planned, and wrong answers of those the plan allows."""
    audit = (report or {}).get("audit")
    if not audit or not audit.get("sets"):
        return []
    focus = _focus_set(audit)
    if focus is None:
        return []
    answered, planned = focus["answered"], max(focus["sample"], 1)
    wrong, allowed = focus["wrong"], max(focus["allowed_wrong"], 0)
    ok = wrong <= allowed
    return [
        dict(type="bar", orientation="h", y=["answered", "wrong"], x=[answered, wrong], name="so far",
             marker=dict(color=["#1f77b4", "#2ca02c" if ok else "#d62728"]),
             text=[f"{answered} of {planned}", f"{wrong} of ≤ {allowed} allowed"], textposition="auto",
             hoverinfo="text"),
        dict(type="bar", orientation="h", y=["answered", "wrong"],
             x=[max(planned - answered, 0), max(allowed + 1 - wrong, 0)], name="left",
             marker=dict(color=["#c7d7ea", "#e7e7e7"]), hoverinfo="skip"),
    ]


def audit_layout() -> dict:
    return dict(barmode="stack", showlegend=False, height=120, margin=dict(t=5, l=70, b=20, r=10),
                xaxis=dict(title=dict(text="labels")))


def _focus_set(audit: dict) -> dict | None:
    sets = audit["sets"]
    open_sets = [s for s in sets if s.get("state") == "open"]
    if open_sets:
        return open_sets[0]
    passed = [s for s in sets if s.get("state") == "passed"]
    return passed[0] if passed else (sets[-1] if sets else None)
