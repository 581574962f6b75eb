"""App layer of scoring: the ``compute_label_embeddings`` operator.

Only translates ``ctx`` into a call of
:func:`embeddings.iter_compute_label_embeddings` (locally or on Ray) and
forwards its progress.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common import paths
from ..common.app_progress import LongRunningOperator, operator_ui, run_with_progress
from ..common.ray_params import executor_from_params, ray_inputs
from ..common.limits import limit
from ..common.operator_forms import (
    batch_size_input, choices, delegate_input, device_input, overwrite_input, result_form,
)
from ..common.operator_params import default_of, defaults_of, param_of, params_from
from .embeddings import iter_compute_label_embeddings

#: the request keys ``compute_label_embeddings`` lets through as they are
EMBED_KEYS = ("label_field", "context", "batch_size", "embeddings_attr", "overwrite", "device", "prompts", "run_key")


@operator_ui(
    "compute_label_embeddings", "Stoplight: compute label embeddings", "scatter_plot", "Compute label embeddings",
)
class ComputeLabelEmbeddings(LongRunningOperator, foo.Operator):
    """Embeds the crop of every label with open_clip, stored on the label.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/compute_label_embeddings",
            ctx={"dataset": dataset},
            params={"label_field": "autolabels", "model_name": "ViT-B-32",
                    "pretrained": "openai"},
        )
    """

    def _inputs(self, ctx, inputs):
        _embedding_inputs(ctx, inputs)

    def execute(self, ctx):
        fn = iter_compute_label_embeddings
        params = params_from(
            ctx, fn, EMBED_KEYS,
            model_name=request_model_name(param_of(ctx, fn, "model_name")),
            # a cleared field means no pretrained weights
            pretrained=paths.request_location(param_of(ctx, fn, "pretrained", cleared=None), "pretrained"),
            # checked before anything runs: retired scale-out parameters, allowed clusters
            executor=executor_from_params(ctx.params),
        )
        gen = iter_compute_label_embeddings(ctx.target_view(), **params)
        summary = yield from run_with_progress(ctx, gen, "Computing label embeddings")
        outputs = result_form((("run_key", "Run key", "str"), *_COUNT_LABELS.items()))
        yield from self.show_summary(ctx, summary, outputs, ["run_key", *_COUNT_LABELS])


def request_model_name(value):
    """An open_clip ``model_name`` from a request: an architecture or config
    name, ``hf-hub:<id>``, or ``local-dir:<folder>`` inside the allowed roots
    (:mod:`..common.paths`); other path-like names are refused."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Parameter 'model_name' must be an open_clip model name; got {value!r}")
    if value.startswith("local-dir:"):
        return "local-dir:" + paths.request_path(value[len("local-dir:"):], "model_name")
    if value.startswith("hf-hub:"):
        return value
    if "/" in value or "\\" in value or value.startswith((".", "~")):
        raise ValueError(
            f"Parameter 'model_name' must be an open_clip architecture name, 'hf-hub:<id>' or "
            f"'local-dir:<folder>'; got {value!r}"
        )
    return value


def _pretrained_error(ctx):
    try:
        paths.request_location(ctx.params.get("pretrained") or None, "pretrained")
    except ValueError as e:
        return str(e)
    return None


_COUNT_LABELS = {
    "num_embedded_labels": "Labels embedded",
    "num_skipped_labels": "Labels skipped (already embedded)",
    "num_failed_labels": "Labels failed",
    "num_ray_nodes": "Ray nodes",
    "num_ray_workers": "Ray worker processes",
}


def _default(name: str):
    return default_of(iter_compute_label_embeddings, name)


def _embedding_inputs(ctx, inputs):
    inputs.view_target(ctx, action_description="Embed the labels of")
    inputs.str("label_field", default=_default("label_field"), label="Label field")
    inputs.str("model_name", default=_default("model_name"), label="open_clip model",
               description="An open_clip architecture, e.g. ViT-B-32, ViT-L-14")
    error = _pretrained_error(ctx)
    inputs.str("pretrained", default=_default("pretrained"), label="Pretrained weights",
               description="An open_clip pretrained tag (downloaded) or a local checkpoint file",
               invalid=error is not None, error_message=error or "")
    inputs.float("context", min=0.0, default=_default("context"), label="Context padding",
                 description="Fraction of the box size added on each side of the crop")
    batch_size_input(inputs, iter_compute_label_embeddings, "Crops per batch", most=limit("embed_batch_size"))
    inputs.str("embeddings_attr", default=_default("embeddings_attr"), label="Embedding attribute",
               description="Label attribute that stores the vector")
    overwrite_input(inputs, iter_compute_label_embeddings, "Recompute labels that already have an embedding")
    device_input(inputs)
    ray_inputs(ctx, inputs)
    delegate_input(inputs)


# ---------------------------------------------------------------------------
# score_labels
# ---------------------------------------------------------------------------

def score_defaults() -> dict:
    """The defaults of :func:`.scores.score_labels`' parameters, read from its
    signature (the form and ``execute`` restate none of them)."""
    from .scores import score_labels

    return defaults_of(score_labels)


#: the request keys ``score_labels`` lets through
SCORE_KEYS = (
    "label_field", "reference_field", "iou", "spurious_confidence", "scores_attr", "scores_kind",
    "embeddings_attr", "consensus_fields", "consensus_iou", "k", "rer", "run_key", "device",
)


@operator_ui("score_labels", "Stoplight: score labels", "traffic", "Score labels")
class ScoreLabels(LongRunningOperator, foo.Operator):
    """Scores every auto-label (hardness, margin, mistakenness, kNN agreement,
    RER, CLIP agreement, consensus, uncertainty); see :mod:`.scores`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/score_labels",
            ctx={"dataset": dataset},
            params={"label_field": "autolabels", "reference_field": "ground_truth"},
        )
    """

    def _inputs(self, ctx, inputs):
        _score_inputs(ctx, inputs)

    def execute(self, ctx):
        from .scores import iter_score_labels

        gen = iter_score_labels(ctx.target_view(), **params_from(ctx, iter_score_labels, SCORE_KEYS))
        summary = yield from run_with_progress(ctx, gen, "Scoring labels")
        outputs = result_form((
            ("run_key", "Run key", "str"), *_SCORE_COUNT_LABELS.items(),
            ("difficulty", "Dataset difficulty (mean RER)", "float"), ("notes", "Notes", "strings"),
        ))
        keys = ["run_key", "difficulty", "notes", *_SCORE_COUNT_LABELS]
        yield from self.show_summary(ctx, summary, outputs, keys)


_SCORE_COUNT_LABELS = {
    "num_scored_labels": "Labels scored",
    "num_embedded_labels": "Labels with embeddings",
    "num_possible_missing": "Possibly missing labels",
    "num_possible_spurious": "Possibly spurious labels",
}


def _score_inputs(ctx, inputs):
    from .scores import SCORES_KINDS

    defaults = score_defaults()
    inputs.view_target(ctx, action_description="Score the labels of")
    inputs.str("label_field", default=defaults["label_field"], label="Label field")
    inputs.str("reference_field", label="Reference field",
               description="Optional Detections field of reference (e.g. human) labels, for mistakenness")
    inputs.float("iou", min=0.0, max=1.0, default=defaults["iou"], label="Reference IoU")
    inputs.float("spurious_confidence", min=0.0, max=1.0, default=defaults["spurious_confidence"],
                 label="Spurious confidence",
                 description="Least confidence of an unmatched auto-label to count as possibly spurious")
    inputs.str(
        "scores_attr",
        default=defaults["scores_attr"],
        label="Class scores attribute",
        description="Label attribute with each label's per-class score vector (for hardness and "
        "margin), e.g. scores or logits for predictions imported from another model",
    )
    kinds = choices(types.Choices(), SCORES_KINDS)
    inputs.enum(
        "scores_kind",
        kinds.values(),
        default=defaults["scores_kind"],
        view=kinds,
        label="Score vectors are",
        description="logits get a softmax first; auto: logits when the name says logit "
        "or a value is negative",
    )
    inputs.str("embeddings_attr", default=defaults["embeddings_attr"], label="Embedding attribute",
               description="Label attribute with stored embeddings (for kNN agreement, RER, CLIP agreement)")
    inputs.list("consensus_fields", types.String(), label="Consensus fields",
                description="Other models' Detections fields to measure agreement with")
    inputs.float("consensus_iou", min=0.0, max=1.0, default=defaults["consensus_iou"], label="Consensus IoU")
    inputs.int("k", min=1, max=limit("neighbors"), default=defaults["k"], label="kNN neighbours")
    inputs.bool("rer", default=defaults["rer"], label="Class-wise autoencoder RER")
    device_input(inputs)
    delegate_input(inputs)
