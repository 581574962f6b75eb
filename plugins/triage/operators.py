"""App layer of triage: ``calibrate_triage``, ``assign_queues``, ``triage_report``,
``audit_green``, ``audit_tracks``.

Each operator only translates ``ctx`` into a call of :mod:`.workflow` and
shows what it returns.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.app_progress import LongRunningOperator, operator_ui, run_with_progress
from ..common.limits import limit
from ..common.operator_forms import delegate_input, result_form
from ..common.operator_params import default_of, defaults_of, param_of, params_from

#: the request keys each operator lets through to its core function
CALIBRATE_KEYS = (
    "label_field", "target_precision", "confidence_level", "red_max_precision", "guarantee", "iou",
    "signals", "calibration_key", "use_reviews", "folds", "shrinkage", "scope",
)
REPORT_KEYS = ("seconds_per_box", "cents_per_box", "usd_per_gpu_hour", "gpu_hours")
AUDIT_KEYS = ("audit_key", "target_precision", "confidence_level", "max_checks", "restart")


@operator_ui("calibrate_triage", "Stoplight: calibrate triage", "tune", "Calibrate green / yellow / red triage")
class CalibrateTriage(LongRunningOperator, foo.Operator):
    """Learns P(correct | signals) on verified labels and certifies per-class
    green/red thresholds; see :func:`.workflow.calibrate_triage`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/calibrate_triage",
            ctx={"view": dataset.match_tags("verified")},
            params={"label_field": "autolabels", "gt_field": "ground_truth",
                    "target_precision": 0.95},
        )
    """

    def _inputs(self, ctx, inputs):
        from .workflow import iter_calibrate_triage

        d = defaults_of(iter_calibrate_triage)
        inputs.view_target(ctx, action_description="Calibrate on (verified samples of)")
        inputs.str("label_field", default=d["label_field"], label="Auto-label field")
        inputs.str("gt_field", default=d["gt_field"], label="Verified labels field")
        inputs.float("target_precision", min=0.5, max=0.999, default=d["target_precision"],
                     label="Target precision of green")
        inputs.float("confidence_level", min=0.5, max=0.999, default=d["confidence_level"],
                     label="Confidence level")
        inputs.float("red_max_precision", min=0.0, max=0.5, default=d["red_max_precision"],
                     label="Red: highest precision allowed")
        choices = types.RadioGroup()
        choices.add_choice("pac", label="PAC: holds with the confidence level (default)")
        choices.add_choice("expected", label="Expected: average false-discovery rate (weaker)")
        inputs.enum("guarantee", choices.values(), default=d["guarantee"], view=choices, label="Guarantee")
        scopes = types.RadioGroup()
        scopes.add_choice("overall", label="Overall: the whole green queue reaches the target (default)")
        scopes.add_choice("class", label="Per class: each class's green reaches it (needs many more labels)")
        inputs.enum("scope", scopes.values(), default=d["scope"], view=scopes, label="What the guarantee covers")
        inputs.float("iou", min=0.0, max=1.0, default=d["iou"], label="Match IoU")
        inputs.list("signals", types.String(), label="Signals",
                    description="Label attributes to use; empty: confidence, margin and every score present")
        inputs.str("calibration_key", default=d["calibration_key"], label="Calibration key")
        inputs.bool(
            "use_reviews", default=d["use_reviews"], label="Count human reviews as verified",
            description="Only if the reviewed labels were drawn at random: answers given in review order "
                        "are not a random sample, and the guarantee would assume they are",
        )
        inputs.int("folds", min=2, max=limit("folds"), default=d["folds"], label="Cross-fitting folds")
        inputs.float("shrinkage", min=0.0, default=d["shrinkage"], label="Class shrinkage")
        delegate_input(inputs)

    def execute(self, ctx):
        from .workflow import iter_calibrate_triage

        fn = iter_calibrate_triage
        gen = fn(ctx.target_view(), **params_from(
            ctx, fn, CALIBRATE_KEYS,
            # a cleared field: no verified labels field (calibrate on reviews only)
            gt_field=param_of(ctx, fn, "gt_field", cleared=None),
        ))
        summary = yield from run_with_progress(ctx, gen, "Calibrating triage")
        outputs = result_form((
            ("run_key", "Calibration key", "str"), ("num_verified_labels", "Verified labels"),
            ("num_from_reviews", "... of which from reviews"), ("scope", "Guarantee covers", "str"),
            ("green_threshold", "Green threshold on P(correct) (overall)", "float"),
            ("no_green_reason", "Why no green", "str"), ("num_green_classes", "Classes with a certified green"),
            ("oof_auroc", "Ranking quality (cross-fitted AUROC)", "float"), ("signals", "Signals used", "strings"),
        ))
        yield from self.show_summary(ctx, summary, outputs, list(outputs.properties))


@operator_ui("assign_queues", "Stoplight: assign green / yellow / red queues", "traffic", "Assign queues")
class AssignQueues(LongRunningOperator, foo.Operator):
    """Writes ``queue``, ``p_correct`` and ``review_rank`` on every label under
    a calibration; labels with a human decision keep theirs. See
    :func:`.workflow.assign_queues`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/assign_queues",
            ctx={"dataset": dataset},
            params={"label_field": "autolabels", "calibration_key": "triage"},
        )
    """

    def _inputs(self, ctx, inputs):
        from .workflow import iter_assign_queues

        d = defaults_of(iter_assign_queues)
        inputs.view_target(ctx, action_description="Assign queues to the labels of")
        inputs.str("label_field", default=d["label_field"], label="Auto-label field")
        inputs.str("calibration_key", default=d["calibration_key"], label="Calibration key")
        inputs.str("diversity_attr", default=d["diversity_attr"], label="Embedding attribute",
                   description="Label embeddings that make the review order diverse (optional)")
        _report_inputs(inputs)
        delegate_input(inputs)

    def execute(self, ctx):
        from .workflow import iter_assign_queues, triage_report

        fn = iter_assign_queues
        gen = fn(
            ctx.target_view(),
            **params_from(ctx, fn, ("label_field", "calibration_key", "run_key"),
                          # a cleared field means no diversity in the review order
                          diversity_attr=param_of(ctx, fn, "diversity_attr", cleared=None)),
            # the report's settings, with the report's defaults
            **params_from(ctx, triage_report, REPORT_KEYS),
        )
        summary = yield from run_with_progress(ctx, gen, "Assigning queues")
        outputs, shown = _report_outputs(summary["report"])
        outputs.int("num_human_decided", label="Labels with a human decision (kept)")
        shown["num_human_decided"] = summary["num_human_decided"]
        yield from self.show_summary(ctx, shown, outputs, list(shown))


class TriageReport(foo.Operator):
    """The triage report of the current view as a dict (SDK) or a form (App);
    see :func:`.workflow.triage_report`.

    Example usage::

        import fiftyone.operators as foo

        result = foo.execute_operator(
            "@stoplight/autolabel/triage_report",
            ctx={"dataset": dataset}, params={"label_field": "autolabels"},
        )
        report = result.result["report"]
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="triage_report", label="Stoplight: triage report", icon="summarize", dynamic=True,
        )

    def resolve_input(self, ctx):
        from .workflow import triage_report

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Report on")
        inputs.str("label_field", default=default_of(triage_report, "label_field"), label="Auto-label field")
        inputs.str("calibration_key", default=default_of(triage_report, "calibration_key"), label="Calibration key")
        _report_inputs(inputs)
        return types.Property(inputs, view=types.View(label="Triage report"))

    def execute(self, ctx):
        from .workflow import triage_report

        report = triage_report(
            ctx.target_view(), **params_from(ctx, triage_report, ("label_field", "calibration_key", *REPORT_KEYS)),
        )
        return {"report": report, **_report_outputs(report)[1]}

    def resolve_output(self, ctx):
        outputs, _ = _report_outputs(None)
        return types.Property(outputs, view=types.View(label="Triage report"))


@operator_ui("audit_green", "Stoplight: audit green (certify by sampling)", "fact_check", "Audit a candidate green set")
class AuditGreen(LongRunningOperator, foo.Operator):
    """Starts or continues the audit of a candidate green set: a random
    sample for people to check, certifying the precision of the whole set;
    see :func:`.green_audit.audit_green`. The SDK and the App get the same
    dict (``status``, ``pending``, ``checked``, ``correct``,
    ``candidates``, ``lower_bound``, ...).

    Example usage::

        import fiftyone.operators as foo

        result = foo.execute_operator(
            "@stoplight/autolabel/audit_green",
            ctx={"dataset": dataset},
            params={"label_field": "autolabels", "calibration_key": "triage", "max_checks": 300},
        ).result
        print(result["status"], len(result["pending"]))
    """

    as_generator = False

    def _inputs(self, ctx, inputs):
        from .green_audit import audit_green

        inputs.view_target(ctx, action_description="Audit the labels of")
        inputs.str("label_field", default=default_of(audit_green, "label_field"), label="Auto-label field")
        inputs.str("calibration_key", label="Calibration key",
                   description="Empty: 'triage' for a new audit; a continuing audit keeps its own")
        _audit_inputs(inputs, audit_green, "Target precision", "Empty: the calibration's",
                      "Empty: the calibration's", "Most answers to ask", "Empty: 300",
                      "Discards the audit under this key (answers stay as review decisions)")

    def execute(self, ctx):
        from .green_audit import audit_green

        result = audit_green(
            ctx.target_view(),
            **params_from(ctx, audit_green, ("label_field", "calibration_key", *AUDIT_KEYS), flags=("restart",)),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result

    def resolve_output(self, ctx):
        return _audit_outputs("Audit of green", (
            ("candidates", "Labels in the set"), ("checked", "Answers counted"), ("correct", "... of which correct"),
            ("lower_bound", "Certified lower bound on precision"), ("certified_labels", "Labels certified green"),
        ))


@operator_ui("audit_tracks", "Stoplight: audit video tracks (certify by sampling)", "fact_check", "Audit video tracks")
class AuditTracks(LongRunningOperator, foo.Operator):
    """Starts or continues the audit of the undecided tracks of a video
    frame field: a random sample of tracks for people to decide whole
    (``review_labels`` on a frame label decides its track), certifying the
    track precision of the lot; see :func:`.track_audit_run.audit_tracks`.
    The audit reads decisions and records nobody's, so it takes no reviewer.
    The SDK and the App get the same dict (``status``, ``pending``,
    ``tracks``, ``sampled``, ``answered``, ``wrong``, ``lower_bound``, ...).

    Example usage::

        import fiftyone.operators as foo

        result = foo.execute_operator(
            "@stoplight/autolabel/audit_tracks",
            ctx={"dataset": video_dataset},
            params={"track_field": "frames.tracks", "target_precision": 0.9, "max_checks": 60},
        ).result
        print(result["status"], len(result["pending"]))
    """

    as_generator = False

    def _inputs(self, ctx, inputs):
        from .track_audit_run import audit_tracks

        inputs.view_target(ctx, action_description="Audit the tracks of")
        inputs.str("track_field", default=default_of(audit_tracks, "track_field"), label="Tracks field (frame-level)")
        _audit_inputs(inputs, audit_tracks, "Target track precision",
                      "Share of tracks right on every frame; empty: 0.9", "Empty: 0.95",
                      "Most tracks to ask about", "Empty: 100",
                      "Discards the audit under this key (decisions stay on the labels)")

    def execute(self, ctx):
        from .track_audit_run import audit_tracks

        return audit_tracks(
            ctx.target_view(), **params_from(ctx, audit_tracks, ("track_field", *AUDIT_KEYS), flags=("restart",)),
        )

    def resolve_output(self, ctx):
        return _audit_outputs("Audit of video tracks", (
            ("tracks", "Tracks in the lot"), ("sampled", "Tracks sampled"), ("answered", "Tracks decided"),
            ("wrong", "... of which wrong"), ("lower_bound", "Certified lower bound on track precision"),
        ))


def _audit_inputs(inputs, fn, target_label: str, target_help: str, confidence_help: str, checks_label: str,
                  checks_help: str, restart_help: str) -> None:
    """The form rows both audits share: the key to continue under, the
    certification's precision and confidence, the sample's size, restart."""
    inputs.str("audit_key", default=default_of(fn, "audit_key"), label="Audit key",
               description="Run it again with the same key to continue the audit")
    inputs.float("target_precision", min=0.5, max=0.999, label=target_label, description=target_help)
    inputs.float("confidence_level", min=0.5, max=0.999, label="Confidence level", description=confidence_help)
    inputs.int("max_checks", min=1, max=10_000, label=checks_label, description=checks_help)
    inputs.bool("restart", default=False, label="Draw a new audit", description=restart_help)
    delegate_input(inputs)


def _audit_outputs(title: str, counts) -> types.Property:
    """An audit's result form: its status and message, then ``counts``
    (``(key, label)``; ``lower_bound`` a float, the others integers)."""
    outputs = result_form((
        ("status", "Status", "str"), ("message", "Where the audit stands", "str"),
        *((key, label, "float" if key == "lower_bound" else "int") for key, label in counts),
    ))
    return types.Property(outputs, view=types.View(label=title))


def _report_inputs(inputs) -> None:
    from .workflow import triage_report

    d = defaults_of(triage_report)
    inputs.float("seconds_per_box", min=0.0, default=d["seconds_per_box"], label="Review seconds per box")
    inputs.float("cents_per_box", min=0.0, default=d["cents_per_box"], label="Hand-labeling cents per box")
    inputs.float("usd_per_gpu_hour", min=0.0, default=d["usd_per_gpu_hour"], label="GPU $ per hour")
    inputs.float("gpu_hours", min=0.0, label="GPU hours of labeling",
                 description="Empty: the wall time of the zero_shot_detect runs on the field")


_SHOWN = [
    ("green", "Green labels (auto-accepted)", lambda r: r["queues"]["green"]["count"]),
    ("yellow", "Yellow labels (to review)", lambda r: r["queues"]["yellow"]["count"]),
    ("red", "Red labels (rejected)", lambda r: r["queues"]["red"]["count"]),
    ("green_precision", "Green precision (verified labels)", lambda r: r["queues"]["green"]["verified_precision"]),
    ("review_hours", "Review workload (hours)", lambda r: r["workload"]["hours"]),
    ("manual_usd", "Cost of labeling all by hand ($)", lambda r: r["cost"]["manual_usd"]),
    ("auto_usd", "Cost of auto-labeling + review ($)", lambda r: r["cost"]["auto_usd"]),
    ("final_precision", "Expected precision after review", lambda r: r["final"]["expected_precision"]),
    ("auto_recall", "Recall of the auto-labels (verified objects)", lambda r: _recall(r, "auto")),
    ("final_recall", "Recall of the final labels (verified objects)", lambda r: _recall(r, "final")),
    ("missed_estimated", "Objects still missed (estimate, see report.missed)",
     lambda r: ((r.get("missed") or {}).get("total") or {}).get("estimated_missed")),
]


def _recall(report: dict, which: str):
    return (((report.get("recall") or {}).get(which) or {}).get("overall") or {}).get("estimate")


def _report_outputs(report: dict | None):
    """The form showing a report's headline figures, and those figures."""
    outputs = types.Object()
    shown = {}
    for key, label, get in _SHOWN:
        if key in ("green", "yellow", "red"):
            outputs.int(key, label=label)
        else:
            outputs.float(key, label=label)
        if report is not None:
            shown[key] = get(report)
    outputs.list("notes", types.String(), label="Notes")
    if report is not None:
        shown["notes"] = report["notes"]
    return outputs, shown
