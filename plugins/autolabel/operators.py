"""App layer of auto-labeling: the ``zero_shot_detect`` operator.

The operator only translates ``ctx`` into a call of
:func:`pipeline.iter_zero_shot_detect` and forwards its progress.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.app_progress import LongRunningOperator, run_with_progress
from .backends import available_backends, get_backend
from .pipeline import iter_zero_shot_detect
from .scaleout import iter_zero_shot_detect_shard

DEFAULTS = dict(
    backend="owlv2",
    label_field="autolabels",
    confidence_threshold=0.2,
    batch_size=8,
    overwrite=False,
    class_agnostic_nms=False,
    nms_iou=0.5,
    num_workers=None,
)


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

    op_name = "zero_shot_detect"
    op_label = "Stoplight: zero-shot auto-label"
    op_icon = "auto_awesome"
    form_title = "Zero-shot auto-label"

    def _inputs(self, ctx, inputs):
        _detect_inputs(ctx, inputs)

    def execute(self, ctx):
        params = _params(ctx)
        view = ctx.target_view()
        group = ctx.params.get("shard_group") or None
        if group:
            # one worker of a scale-out group (see scaleout.py)
            gen = iter_zero_shot_detect_shard(
                view, group, chunk_size=ctx.params.get("chunk_size") or 64,
                lease_s=ctx.params.get("lease_s") or 300.0, **params,
            )
        else:
            gen = iter_zero_shot_detect(view, **params)
        summary = yield from run_with_progress(ctx, gen, "Auto-labeling")
        outputs = _summary_outputs()
        yield from self.show_summary(
            ctx, _summary_results(summary), outputs, list(outputs.properties)
        )


def _summary_outputs() -> types.Object:
    outputs = types.Object()
    outputs.str("run_key", label="Run key")
    outputs.int("num_processed_samples", label="Samples labeled")
    outputs.int("num_skipped_samples", label="Samples skipped (already labeled)")
    outputs.int("num_failed_samples", label="Samples failed")
    outputs.int("num_labels", label="Labels written")
    outputs.str("failure_report", label="Failures", view=types.MarkdownView())
    return outputs


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


def _params(ctx) -> dict:
    p = ctx.params
    classes = p.get("classes") or None
    ontology = p.get("ontology") or None
    backend_options = p.get("backend_options") or None
    return dict(
        backend=p.get("backend", DEFAULTS["backend"]),
        checkpoint=p.get("checkpoint") or None,
        classes=classes,
        ontology=ontology,
        label_field=p.get("label_field", DEFAULTS["label_field"]),
        confidence_threshold=p.get("confidence_threshold", DEFAULTS["confidence_threshold"]),
        batch_size=p.get("batch_size", DEFAULTS["batch_size"]),
        device=p.get("device") or None,
        overwrite=p.get("overwrite", DEFAULTS["overwrite"]),
        class_agnostic_nms=p.get("class_agnostic_nms", DEFAULTS["class_agnostic_nms"]),
        nms_iou=p.get("nms_iou", DEFAULTS["nms_iou"]),
        num_workers=p.get("num_workers", DEFAULTS["num_workers"]),
        backend_options=backend_options,
        run_key=p.get("run_key") or None,
    )


def _detect_inputs(ctx, inputs):
    inputs.view_target(ctx, action_description="Auto-label")

    backends = types.Dropdown(label="Backend")
    for name in available_backends():
        cls = get_backend(name)
        backends.add_choice(name, label=name, description=f"default: {cls.default_checkpoint}")
    inputs.enum(
        "backend",
        backends.values(),
        default=DEFAULTS["backend"],
        label="Backend",
        view=backends,
    )
    backend = ctx.params.get("backend", DEFAULTS["backend"])
    try:
        default_ckpt = get_backend(backend).default_checkpoint
    except ValueError:
        default_ckpt = ""
    inputs.str(
        "checkpoint",
        label="Checkpoint",
        description=(
            "Hub id, ultralytics weight name, or a local file/directory. "
            f"Empty uses {default_ckpt}"
        ),
    )
    inputs.list(
        "classes",
        types.String(),
        label="Classes",
        description="Class names; each is also its prompt. Or use an ontology",
    )
    inputs.str(
        "ontology",
        label="Ontology (JSON)",
        description='{"prompt": "class", ...}; several prompts may map to one class',
    )
    inputs.str(
        "label_field",
        default=DEFAULTS["label_field"],
        label="Label field",
    )
    inputs.float(
        "confidence_threshold",
        min=0.0,
        max=1.0,
        default=DEFAULTS["confidence_threshold"],
        label="Confidence threshold",
        description="Keep it low: the triage handles precision, lost recall is lost",
    )
    inputs.int("batch_size", min=1, default=DEFAULTS["batch_size"], label="Batch size")
    inputs.str(
        "device",
        label="Device",
        description="e.g. cuda, cuda:1, cpu. Empty uses CUDA when available",
    )
    inputs.bool(
        "overwrite",
        default=DEFAULTS["overwrite"],
        label="Overwrite",
        description="Relabel samples that already have labels (default: skip them, so runs resume)",
    )
    inputs.bool(
        "class_agnostic_nms",
        default=DEFAULTS["class_agnostic_nms"],
        label="Class-agnostic NMS",
        description="Suppress overlapping boxes across prompts/classes",
    )
    inputs.float("nms_iou", min=0.0, max=1.0, default=DEFAULTS["nms_iou"], label="NMS IoU")
    inputs.str(
        "shard_group",
        label="Scale-out group",
        description=(
            "Optional. Queue this operation once per worker (same params): delegated "
            "workers on several machines sharing the database split the samples"
        ),
    )
    inputs.bool(
        "delegate",
        default=False,
        label="Delegate",
        description="Run in a delegated-operation worker (for large datasets)",
    )
