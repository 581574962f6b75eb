"""App layer of downstream training: the ``train_on_accepted`` operator.

It only translates ``ctx`` into a call of :func:`.compare.compare_steps`
and shows the report's headline figures; the whole report is stored in the
run record (``dataset.load_run_results(run_key)``). Training takes minutes
to hours: delegate it (``fiftyone delegated launch``); immediate runs are
cut off after ``FIFTYONE_OPERATOR_TIMEOUT`` (600 s by default).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common import paths, provenance
from ..common.app_progress import LongRunningOperator, operator_ui, run_with_progress
from ..common.limits import limit
from ..common.operator_params import default_of, defaults_of, param_of, params_from

#: the request keys ``train_on_accepted`` lets through to
#: :func:`.compare.compare_steps` as they are (``model`` and ``export_dir``
#: are checked against the allowed roots first)
TRAIN_KEYS = (
    "label_field", "gt_field", "include", "epochs", "imgsz", "batch", "workers", "seed", "val_fraction",
    "pred_prefix", "overwrite", "seconds_per_box", "cents_per_box", "usd_per_gpu_hour", "gpu_hours",
    "device", "run_key",
)
#: report figures shown after an immediate run: (key path, label)
SHOWN = (
    ("run_key", "Run key (full report: dataset.load_run_results)"),
    ("models.auto.map50", "mAP50, trained on auto-labels"),
    ("models.human.map50", "mAP50, trained on human labels"),
    ("models.auto.map50_fiftyone", "mAP50 (FiftyOne), auto-labels"),
    ("models.human.map50_fiftyone", "mAP50 (FiftyOne), human labels"),
    ("models.auto.num_labels", "Auto-labels used"),
    ("models.human.num_labels", "Human labels used"),
    ("review.hours", "Human review time (h)"),
    ("cost.human_labels_usd", "Cost of the human labels (USD)"),
    ("cost.auto_total_usd", "Cost of the auto route (USD)"),
    ("export_dir", "Export folder"),
)


def _path_errors(ctx) -> dict:
    """``{param: message}`` for the form's local paths outside the allowed roots."""
    errors = {}
    def export_dir(value, param):
        return None if value is None else paths.request_path(value, param)

    for name, check in (("model", paths.request_location), ("export_dir", export_dir)):
        try:
            check(ctx.params.get(name) or None, name)
        except ValueError as e:
            errors[name] = str(e)
    return errors


def _lookup(report: dict, path: str):
    value = report
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@operator_ui(
    "train_on_accepted", "Stoplight: train on accepted labels vs human labels", "model_training", "Train a detector on accepted labels and compare with human labels",
)
class TrainOnAccepted(LongRunningOperator, foo.Operator):
    """Trains one YOLO detector on reviewed auto-labels and one on human
    labels, tests both on held-out human labels and reports mAP50, labels
    used, review time and cost; see :func:`.compare.compare_auto_vs_human`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/train_on_accepted",
            ctx={"dataset": dataset,
                 "params": {"label_field": "autolabels", "gt_field": "ground_truth",
                            "include": "accepted", "train_split": "train", "test_split": "test",
                            "epochs": 50, "run_key": "accepted_vs_human", "delegate": True}},
            request_delegation=True,
        )
        # after the worker ran it
        report = provenance.load_run_results(dataset, "accepted_vs_human")
    """

    def _inputs(self, ctx, inputs):
        from .compare import compare_steps, split_views

        d = {**defaults_of(compare_steps), "train_split": default_of(split_views, "train"),
             "test_split": default_of(split_views, "test")}
        inputs.view_target(ctx, action_description="Train and test on (both splits of)")
        inputs.str("label_field", default=d["label_field"], label="Auto-label field")
        inputs.str("gt_field", default=d["gt_field"], label="Human label field")
        choices = types.RadioGroup()
        choices.add_choice("accepted", label="Accepted auto-labels")
        choices.add_choice("accepted+green", label="Accepted + green nobody rejected")
        choices.add_choice("all", label="Every auto-label (no review)")
        inputs.enum("include", choices.values(), default=d["include"], view=choices, label="Auto-labels to train on")
        inputs.str("split_field", label="Split field",
                   description="Field holding each sample's split; empty: the splits are sample tags")
        inputs.str("train_split", default=d["train_split"], label="Training split (tag or value)")
        inputs.str("test_split", default=d["test_split"], label="Test split (tag or value; human labels)")
        errors = _path_errors(ctx)
        inputs.str("model", default=d["model"], label="Model",
                   description=".yaml: random init, no download; local .pt: fine-tune; 'yolo11n.pt': downloaded",
                   invalid="model" in errors, error_message=errors.get("model", ""))
        inputs.int("epochs", min=1, default=d["epochs"], label="Epochs")
        inputs.int("imgsz", min=32, default=d["imgsz"], label="Image size")
        inputs.int("batch", min=1, max=limit("train_batch_size"), default=d["batch"], label="Batch size")
        inputs.str("device", label="Device", description="e.g. 0, cuda:1, cpu (default: first GPU, else CPU)")
        inputs.float("val_fraction", min=0.0, max=0.9, default=d["val_fraction"],
                     label="Share of training images held out for model selection")
        inputs.str("export_dir", label="Export folder",
                   description="Default: a temporary folder, removed when the run ends",
                   invalid="export_dir" in errors, error_message=errors.get("export_dir", ""))
        inputs.str("pred_prefix", default=d["pred_prefix"], label="Prediction fields prefix",
                   description="Predictions go to <prefix>_auto and <prefix>_human on the test samples")
        inputs.bool("overwrite", default=d["overwrite"], label="Replace existing prediction fields")
        inputs.float("seconds_per_box", min=0.0, default=d["seconds_per_box"], label="Seconds per reviewed label")
        inputs.float("cents_per_box", min=0.0, default=d["cents_per_box"], label="Cents per hand-drawn box")
        inputs.float("gpu_hours", min=0.0, default=d["gpu_hours"], label="GPU hours spent auto-labeling")
        inputs.str("run_key", label="Run key", description="Default: generated")
        inputs.bool("delegate", default=True, label="Delegate (recommended: training takes long)")

    def execute(self, ctx):
        from .compare import compare_steps, split_views

        train_view, test_view = split_views(
            ctx.target_view(), split_field=ctx.params.get("split_field") or None,
            train=param_of(ctx, split_views, "train", key="train_split"),
            test=param_of(ctx, split_views, "test", key="test_split"),
        )
        export_dir = ctx.params.get("export_dir") or None
        gen = compare_steps(train_view, test_view, **params_from(
            ctx, compare_steps, TRAIN_KEYS,
            # local paths of a request stay inside the server's allowed roots
            model=paths.request_location(param_of(ctx, compare_steps, "model"), "model"),
            export_dir=None if export_dir is None else paths.request_path(export_dir, "export_dir"),
        ))
        report = yield from run_with_progress(ctx, gen, "Training on accepted labels")
        outputs = types.Object()
        shown = {}
        for path, label in SHOWN:
            value = _lookup(report, path)
            key = path.replace(".", "_")
            if isinstance(value, float):
                outputs.float(key, label=label)
            elif isinstance(value, int):
                outputs.int(key, label=label)
            else:
                outputs.str(key, label=label)
            shown[key] = value
        yield from self.show_summary(ctx, shown, outputs, list(shown))
