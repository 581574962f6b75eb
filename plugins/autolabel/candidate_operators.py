"""App layer of missed-object candidates from other sources: the
``find_missing`` operator (:mod:`.candidates`)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.operator_params import default_of, param_of, params_from
from .candidates import add_candidates_from_field, add_candidates_from_verified

#: the request keys both sources let through
MATCH_KEYS = ("label_field", "candidates_field", "iou", "classwise")
SOURCES = ("field", "verified")


class FindMissing(foo.Operator):
    """Adds candidates of missed objects to the ``missing`` queue: the boxes
    of another field (a second model or prompt set) or the verified objects
    (``gt_field``) that no auto-label covers.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/find_missing",
            ctx={"dataset": dataset,
                 "params": {"source": "field", "source_field": "yoloe", "label_field": "autolabels"}},
        )
    """

    @property
    def config(self):
        return foo.OperatorConfig(name="find_missing", label="Stoplight: find missed objects", icon="search",
                                  dynamic=True, allow_immediate_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        radio = types.RadioGroup()
        radio.add_choice("field", label="Another model's field")
        radio.add_choice("verified", label="Verified objects nobody labeled")
        inputs.enum("source", radio.values(), default="field", required=True, label="Source", view=radio)
        if ctx.params.get("source", "field") == "field":
            inputs.str("source_field", required=True, label="Other field", description="fo.Detections")
        else:
            inputs.str("gt_field", default=_default("gt_field"), label="Verified labels field")
        inputs.str("label_field", default=_default("label_field"), label="Auto-labels field")
        inputs.str("candidates_field", label="Candidates field", description="Empty: <label field>_candidates")
        inputs.float("iou", default=_default("iou"), min=0.0, max=1.0, label="IoU of a match")
        inputs.bool("classwise", default=_default("classwise"), label="Match only the same class")
        return types.Property(inputs, view=types.View(label="Find missed objects"))

    def execute(self, ctx):
        p = ctx.params
        source = p.get("source", "field")
        if source not in SOURCES:
            raise ValueError(f"Parameter 'source' must be one of {SOURCES}; got {source!r}")
        if source == "field":
            kwargs = params_from(ctx, add_candidates_from_field, MATCH_KEYS, flags=("classwise",))
            out = add_candidates_from_field(ctx.view, p.get("source_field"), **kwargs)
        else:
            fn = add_candidates_from_verified
            out = fn(ctx.view, param_of(ctx, fn, "gt_field"), **params_from(ctx, fn, MATCH_KEYS, flags=("classwise",)))
        ctx.ops.reload_dataset()
        return out


def _default(name: str):
    return default_of(add_candidates_from_verified, name)
