"""App layer of the ``missing`` queue: the ``review_missing`` operator.

It only translates ``ctx`` into :func:`.missing.add_missing` /
:func:`.missing.dismiss_missing`. The reviewer is the request's identity
(:func:`.operators.context_user`), never a name the request gives when the
App has a login or the server pins a reviewer.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.label_vocab import candidates_field
from .missing import add_missing, dismiss_missing
from .operators import context_user

ACTIONS = {"add": add_missing, "dismiss": dismiss_missing}


class ReviewMissing(foo.Operator):
    """Adds missed objects from their candidates, or dismisses candidates.

    ``action="add"``: each candidate (``label_ids``, or the labels selected
    in the App's candidates field) becomes a new, accepted label of the
    field its candidates belong to; ``"dismiss"``: no object there. Both
    are logged decisions of the request's reviewer, undone by
    ``review_labels`` with ``action="undo"``.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/review_missing",
            ctx={"dataset": dataset,
                 "params": {"action": "add", "candidates_field": "autolabels_candidates",
                            "label_ids": [candidate_id]}},
        )
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="review_missing",
            label="Stoplight: add or dismiss missed objects",
            icon="add_box",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        radio = types.RadioGroup()
        radio.add_choice("add", label="Add as labels")
        radio.add_choice("dismiss", label="Dismiss (no object there)")
        inputs.enum("action", radio.values(), required=True, default="add", label="Action", view=radio)
        inputs.str("candidates_field", default=_default_field(ctx), label="Candidates field",
                   description="The selected candidates of this field are decided")
        return types.Property(inputs, view=types.View(label="Missed objects"))

    def execute(self, ctx):
        action = ctx.params.get("action", "add")
        if action not in ACTIONS:
            raise ValueError(f"Parameter 'action' must be one of {sorted(ACTIONS)}; got {action!r}")
        field = ctx.params.get("candidates_field") or _default_field(ctx)
        label_ids = ctx.params.get("label_ids") or [
            s["label_id"] for s in (ctx.selected_labels or []) if s.get("field") == field
        ]
        if not label_ids:
            raise ValueError(f"Nothing to decide: give 'label_ids' or select candidates of field {field!r}")
        summary = ACTIONS[action](ctx.dataset, field, label_ids, user=context_user(ctx))
        ctx.ops.reload_dataset()
        return {k: v for k, v in summary.items() if not isinstance(v, dict)}


def _default_field(ctx) -> str:
    fields = sorted({s.get("field") for s in (ctx.selected_labels or []) if s.get("field")})
    return fields[0] if len(fields) == 1 else candidates_field("autolabels")
