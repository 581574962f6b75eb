"""App layer of auto-labeling: the ``zero_shot_detect`` operator.

The operator only translates ``ctx`` into a call of
:func:`pipeline.iter_zero_shot_detect` and forwards its progress.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common import paths
from ..common.app_progress import LongRunningOperator, operator_ui, run_with_progress
from ..common.limits import limit
from ..common.operator_forms import batch_size_input, delegate_input, device_input, overwrite_input, result_form
from ..common.operator_params import default_of, param_of, params_from
from ..common.ray_params import executor_from_params, ray_inputs
from .backends import available_backends, get_backend
from .pipeline import iter_zero_shot_detect
from .request_guard import request_backend_options, request_detect_params


@operator_ui("zero_shot_detect", "Stoplight: zero-shot auto-label", "auto_awesome", "Zero-shot auto-label")
class ZeroShotDetect(LongRunningOperator, foo.Operator):
    """Auto-labels images with a zero-shot detector (YOLO-World, YOLOE,
    OWL-ViT, OWLv2, Grounding DINO).

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/zero_shot_detect",
            ctx={"dataset": dataset, "view": dataset.take(10)},
            params={
                "view_target": "CURRENT_VIEW",
                "backend": "owlv2",
                "classes": ["person", "dog"],
                "label_field": "autolabels",
            },
        )
    """

    def _inputs(self, ctx, inputs):
        _detect_inputs(ctx, inputs)

    def check_request(self, ctx):
        p = ctx.params
        if p.get("backend_options"):
            # no form field sends it: refused before anything is queued
            checkpoint = _path_or_error(p.get("checkpoint") or None, "checkpoint")[0]
            request_backend_options(param_of(ctx, iter_zero_shot_detect, "backend"), checkpoint, p["backend_options"])

    def execute(self, ctx):
        params = _params(ctx)
        # checked before anything runs: retired scale-out parameters, allowed clusters
        params["executor"] = executor_from_params(ctx.params)
        gen = iter_zero_shot_detect(ctx.target_view(), **params)
        summary = yield from run_with_progress(ctx, gen, "Auto-labeling")
        outputs = _summary_outputs()
        yield from self.show_summary(
            ctx, _summary_results(summary), outputs, list(outputs.properties)
        )


def _summary_outputs() -> types.Object:
    return result_form((
        ("run_key", "Run key", "str"), ("num_processed_samples", "Samples labeled"),
        ("num_skipped_samples", "Samples skipped (already labeled)"), ("num_failed_samples", "Samples failed"),
        ("num_labels", "Labels written"), ("num_ray_nodes", "Ray nodes"), ("num_ray_workers", "Ray worker processes"),
        ("failure_report", "Failures", "markdown"),
    ))


def _summary_results(summary: dict, shown: int = 10) -> dict:
    failures = summary["failures"]
    if failures:
        lines = [f"- `{f['filepath']}` ({f['sample_id']}): {f['error']}" for f in failures[:shown]]
        more = summary["num_failed_samples"] - len(lines)
        if more > 0:
            lines.append(f"- ... and {more} more (see `dataset.load_run_results('{summary['run_key']}')`)")
        report = "\n".join(lines)
    else:
        report = "none"
    return dict(summary, failure_report=report)


#: the request keys ``zero_shot_detect`` lets through to the core function
#: (its ``detector``, ``record_run``, ``write_every`` and ``executor`` are
#: not a request's to set)
DETECT_KEYS = (
    "backend", "checkpoint", "classes", "ontology", "label_field", "confidence_threshold",
    "batch_size", "device", "overwrite", "class_agnostic_nms", "nms_iou", "num_workers",
    "backend_options", "run_key", "adopt_field", "frame_step", "candidates_field",
)


def _params(ctx) -> dict:
    """The ``zero_shot_detect`` arguments of a request, through the request
    guard (:func:`.request_guard.request_detect_params`)."""
    p = ctx.params
    return request_detect_params(params_from(
        ctx, iter_zero_shot_detect, DETECT_KEYS,
        # off unless a threshold is given (the core function's default); the
        # form's switch turned off wins over a threshold left in the params
        candidates_threshold=None if p.get("keep_candidates") is False else p.get("candidates_threshold"),
    ))


def _path_or_error(value, param: str) -> tuple:
    """``(value checked against the allowed roots, None)``, or ``(None,
    error message)`` for a path the server does not allow."""
    try:
        return paths.request_location(value, param), None
    except ValueError as e:
        return None, str(e)


def _detect_inputs(ctx, inputs):
    """The ``zero_shot_detect`` form: what to label, with which model and
    prompts, what to keep, how to run."""
    inputs.view_target(ctx, action_description="Auto-label")
    _model_inputs(ctx, inputs)
    _prompt_inputs(inputs)
    _output_inputs(ctx, inputs)
    _run_inputs(inputs)
    _nms_inputs(inputs)
    if getattr(ctx.dataset, "media_type", None) == "video":
        inputs.int("frame_step", min=1, default=_default("frame_step"), label="Label every k-th frame",
                   description="Videos: frames 1, 1 + k, 1 + 2k, ... get frame-level labels (frames.<label field>)")
    ray_inputs(ctx, inputs)
    delegate_input(inputs)


def _model_inputs(ctx, inputs) -> None:
    """The backend and its checkpoint."""
    backends = types.Dropdown(label="Backend")
    for name in available_backends():
        cls = get_backend(name)
        backends.add_choice(name, label=name, description=f"default: {cls.default_checkpoint}")
    inputs.enum("backend", backends.values(), default=_default("backend"), label="Backend", view=backends)
    try:
        default_ckpt = get_backend(param_of(ctx, iter_zero_shot_detect, "backend")).default_checkpoint
    except ValueError:
        default_ckpt = ""
    # a local path outside the server's allowed roots marks the field
    # invalid: the form says why, and FiftyOne refuses to run or queue it
    _, ckpt_error = _path_or_error(ctx.params.get("checkpoint") or None, "checkpoint")
    inputs.str(
        "checkpoint",
        label="Checkpoint",
        description=(
            "Hub id, ultralytics weight name, or a local file/directory. "
            f"Empty uses {default_ckpt}"
        ),
        invalid=ckpt_error is not None,
        error_message=ckpt_error or "",
    )


def _prompt_inputs(inputs) -> None:
    """What to look for: classes, or an ontology of prompts."""
    inputs.list("classes", types.String(), label="Classes",
                description="Class names; each is also its prompt. Or use an ontology")
    inputs.str("ontology", label="Ontology (JSON)",
               description='{"prompt": "class", ...}; several prompts may map to one class')


def _output_inputs(ctx, inputs) -> None:
    """Where the labels go and which boxes are kept."""
    inputs.str("label_field", default=_default("label_field"), label="Label field")
    inputs.float("confidence_threshold", min=0.0, max=1.0, default=_default("confidence_threshold"),
                 label="Confidence threshold",
                 description="Keep it low: the triage handles precision, lost recall is lost")
    inputs.bool("keep_candidates", default=False,
                label="Keep boxes below the threshold as missed-object candidates",
                description="They go to '<label field>_candidates' (queue 'missing'): a person adds or dismisses each")
    if ctx.params.get("keep_candidates"):
        inputs.float("candidates_threshold", min=0.0, max=1.0, required=True, label="Candidates threshold",
                     description="Boxes scoring from here up to the confidence threshold become candidates")
        inputs.str("candidates_field", label="Candidates field", description="Empty: <label field>_candidates")


def _run_inputs(inputs) -> None:
    """Batch size, device, and what happens to labels already there."""
    batch_size_input(inputs, iter_zero_shot_detect, most=limit("detect_batch_size"))
    device_input(inputs)
    overwrite_input(inputs, iter_zero_shot_detect, "Relabel samples that already have labels")
    inputs.bool(
        "adopt_field",
        default=_default("adopt_field"),
        label="Take over an existing field",
        description=("Write into a label field Stoplight did not create for auto-labels (e.g. human labels; "
                     "with Overwrite their labels are replaced). Off: such a field is refused"),
    )


def _nms_inputs(inputs) -> None:
    """Non-maximum suppression across prompts."""
    inputs.bool("class_agnostic_nms", default=_default("class_agnostic_nms"), label="Class-agnostic NMS",
                description="Suppress overlapping boxes across prompts/classes")
    inputs.float("nms_iou", min=0.0, max=1.0, default=_default("nms_iou"), label="NMS IoU")


def _default(name: str):
    return default_of(iter_zero_shot_detect, name)
