"""App layer of triage: ``calibrate_triage``, ``assign_queues``, ``triage_report``.

Each operator only translates ``ctx`` into a call of :mod:`.workflow` and
shows what it returns.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.app_progress import LongRunningOperator, run_with_progress
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR

CALIBRATE_DEFAULTS = dict(
    label_field="autolabels",
    gt_field="ground_truth",
    target_precision=0.95,
    confidence_level=0.95,
    red_max_precision=0.2,
    guarantee="pac",
    iou=0.5,
    calibration_key="triage",
    use_reviews=True,
    folds=5,
    shrinkage=1.0,
)
REPORT_DEFAULTS = dict(
    seconds_per_box=SECONDS_PER_BOX, cents_per_box=CENTS_PER_BOX, usd_per_gpu_hour=USD_PER_GPU_HOUR,
)


def _get(ctx, defaults: dict, name: str):
    value = ctx.params.get(name, None)
    return defaults[name] if value is None else value


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

    op_name = "calibrate_triage"
    op_label = "Stoplight: calibrate triage"
    op_icon = "tune"
    form_title = "Calibrate green / yellow / red triage"

    def _inputs(self, ctx, inputs):
        d = CALIBRATE_DEFAULTS
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
        inputs.float("iou", min=0.0, max=1.0, default=d["iou"], label="Match IoU")
        inputs.list("signals", types.String(), label="Signals",
                    description="Label attributes to use; empty: confidence, margin and every score present")
        inputs.str("calibration_key", default=d["calibration_key"], label="Calibration key")
        inputs.bool("use_reviews", default=d["use_reviews"], label="Count human reviews as verified")
        inputs.int("folds", min=2, default=d["folds"], label="Cross-fitting folds")
        inputs.float("shrinkage", min=0.0, default=d["shrinkage"], label="Class shrinkage")
        inputs.bool("delegate", default=False, label="Delegate")

    def execute(self, ctx):
        from .workflow import iter_calibrate_triage

        d = CALIBRATE_DEFAULTS
        gen = iter_calibrate_triage(
            ctx.target_view(),
            **{k: _get(ctx, d, k) for k in d if k != "gt_field"},
            gt_field=ctx.params.get("gt_field", d["gt_field"]) or None,
            signals=ctx.params.get("signals") or None,
        )
        summary = yield from run_with_progress(ctx, gen, "Calibrating triage")
        outputs = types.Object()
        outputs.str("run_key", label="Calibration key")
        outputs.int("num_verified_labels", label="Verified labels")
        outputs.int("num_from_reviews", label="... of which from reviews")
        outputs.int("num_green_classes", label="Classes with a certified green")
        outputs.float("oof_auroc", label="Ranking quality (cross-fitted AUROC)")
        outputs.list("signals", types.String(), label="Signals used")
        keys = ["run_key", "num_verified_labels", "num_from_reviews", "num_green_classes", "oof_auroc", "signals"]
        yield from self.show_summary(ctx, summary, outputs, keys)


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

    op_name = "assign_queues"
    op_label = "Stoplight: assign green / yellow / red queues"
    op_icon = "traffic"
    form_title = "Assign queues"

    def _inputs(self, ctx, inputs):
        inputs.view_target(ctx, action_description="Assign queues to the labels of")
        inputs.str("label_field", default="autolabels", label="Auto-label field")
        inputs.str("calibration_key", default="triage", label="Calibration key")
        inputs.str("diversity_attr", default="embedding", label="Embedding attribute",
                   description="Label embeddings that make the review order diverse (optional)")
        _report_inputs(inputs)
        inputs.bool("delegate", default=False, label="Delegate")

    def execute(self, ctx):
        from .workflow import iter_assign_queues

        p = ctx.params
        gen = iter_assign_queues(
            ctx.target_view(),
            label_field=p.get("label_field") or "autolabels",
            calibration_key=p.get("calibration_key") or "triage",
            diversity_attr=p.get("diversity_attr", "embedding") or None,
            run_key=p.get("run_key") or None,
            gpu_hours=p.get("gpu_hours"),
            **{k: _get(ctx, REPORT_DEFAULTS, k) for k in REPORT_DEFAULTS},
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
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Report on")
        inputs.str("label_field", default="autolabels", label="Auto-label field")
        inputs.str("calibration_key", default="triage", label="Calibration key")
        _report_inputs(inputs)
        return types.Property(inputs, view=types.View(label="Triage report"))

    def execute(self, ctx):
        from .workflow import triage_report

        p = ctx.params
        report = triage_report(
            ctx.target_view(),
            label_field=p.get("label_field") or "autolabels",
            calibration_key=p.get("calibration_key") or "triage",
            gpu_hours=p.get("gpu_hours"),
            **{k: _get(ctx, REPORT_DEFAULTS, k) for k in REPORT_DEFAULTS},
        )
        return {"report": report, **_report_outputs(report)[1]}

    def resolve_output(self, ctx):
        outputs, _ = _report_outputs(None)
        return types.Property(outputs, view=types.View(label="Triage report"))


def _report_inputs(inputs) -> None:
    d = REPORT_DEFAULTS
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
]


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
