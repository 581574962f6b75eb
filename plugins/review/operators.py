"""App layer of review: the ``review_labels``, ``finalize_labels``,
``send_for_review`` and ``load_review_answers`` operators.

All only translate ``ctx`` into calls of :mod:`.decisions`,
:mod:`.finalize` and :mod:`.handoff`. They are plain (not generator) operators: a decision on
100k labels takes seconds, and a plain operator hands its summary back to
SDK callers (``foo.execute_operator(...).result``), which a generator
operator does not. Both run immediately or delegated (``delegate``).
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .decisions import ACTIONS, QUEUES, review_labels, undo_last
from .finalize import finalize_labels
from .handoff import RUN_PREFIX as HANDOFF_PREFIX
from .handoff import load_review_answers, send_for_review

DEFAULT_LABEL_FIELD = "autolabels"
TARGETS = ("SELECTED_LABELS", "SELECTED_SAMPLES", "VIEW")


class _PlainOperator:
    """Config, delegation and summary display shared by both operators."""

    op_name: str
    op_label: str
    op_icon: str
    form_title: str
    summary_labels: dict

    @property
    def config(self):
        return foo.OperatorConfig(
            name=self.op_name,
            label=self.op_label,
            icon=self.op_icon,
            dynamic=True,
            execute_as_generator=False,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        self._inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.form_title))

    def resolve_delegation(self, ctx):
        return ctx.params.get("delegate", None)

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key, label in self.summary_labels.items():
            if key.startswith("num_") or key.endswith("_id"):
                outputs.int(key, label=label)
            else:
                outputs.str(key, label=label)
        return types.Property(outputs, view=types.View(label=self.form_title))

    def _done(self, ctx, summary: dict) -> dict:
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return summary


def context_user(ctx) -> str | None:
    """The App's user (email, name or id) when known, else ``params.user``;
    None lets the core fall back to the operating-system user."""
    user = getattr(ctx, "user", None)
    for attr in ("email", "name", "id"):
        value = getattr(user, attr, None) if user is not None else None
        if value:
            return str(value)
    return ctx.params.get("user") or None


class ReviewLabels(_PlainOperator, foo.Operator):
    """Accepts, rejects or resets labels, or undoes your last action.

    The labels are the ones selected in the App, or all labels of the
    selected samples, or every label of a queue and/or class in the current
    view (``target``; by default the selected labels if any, else the
    selected samples, else the view). ``queue`` and ``label`` narrow any
    target.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/review_labels",
            ctx={"dataset": dataset, "view": dataset.view(),
                 "params": {"action": "accept", "label_field": "autolabels",
                            "queue": "green", "label": "car"}},
        )
        # undo it
        foo.execute_operator(
            "@stoplight/autolabel/review_labels",
            ctx={"dataset": dataset, "params": {"action": "undo"}},
        )
    """

    op_name = "review_labels"
    op_label = "Stoplight: review labels"
    op_icon = "fact_check"
    form_title = "Review labels"
    summary_labels = {
        "action": "Action",
        "action_id": "Action id",
        "user": "Reviewer",
        "label_field": "Label field",
        "num_labels": "Labels",
        "num_changed": "Labels whose review changed",
        "num_conflicts": "Labels left alone (decided again since)",
    }

    def _inputs(self, ctx, inputs):
        _review_inputs(ctx, inputs)

    def execute(self, ctx):
        p = ctx.params
        action = p.get("action", None)
        user = context_user(ctx)
        if action == "undo":
            return self._done(ctx, undo_last(ctx.dataset, user=user))
        if action not in ACTIONS:
            raise ValueError(f"Parameter 'action' must be one of {[*ACTIONS, 'undo']}; got {action!r}")
        target = p.get("target") or _default_target(ctx)
        if target not in TARGETS:
            raise ValueError(f"Parameter 'target' must be one of {TARGETS}; got {target!r}")
        label_field = p.get("label_field") or None
        kwargs = dict(queue=p.get("queue") or None, label=p.get("label") or None, user=user)
        if target == "SELECTED_LABELS":
            label_field, label_ids = _selected_labels(ctx.selected_labels, label_field)
            kwargs["label_ids"] = label_ids
        elif target == "SELECTED_SAMPLES":
            if not ctx.selected:
                raise ValueError("Nothing selected: select samples in the App first")
            kwargs["sample_ids"] = list(ctx.selected)
        summary = review_labels(ctx.view, label_field or DEFAULT_LABEL_FIELD, action, **kwargs)
        return self._done(ctx, summary)


def _default_target(ctx) -> str:
    if ctx.selected_labels:
        return "SELECTED_LABELS"
    if ctx.selected:
        return "SELECTED_SAMPLES"
    return "VIEW"


def _selected_labels(selected: list, label_field: str | None) -> tuple[str, list[str]]:
    """The field and label ids of the App's label selection."""
    if not selected:
        raise ValueError("Nothing selected: select labels in the App first")
    if any(s.get("frame_number") is not None for s in selected):
        raise ValueError("Labels of video frames are not supported")
    fields = sorted({s["field"] for s in selected})
    if label_field is None:
        if len(fields) > 1:
            raise ValueError(f"The selected labels come from several fields {fields}; set 'label_field'")
        label_field = fields[0]
    ids = [s["label_id"] for s in selected if s["field"] == label_field]
    if not ids:
        raise ValueError(f"None of the selected labels is in field {label_field!r} (selected: {fields})")
    return label_field, ids


def _review_inputs(ctx, inputs):
    actions = types.RadioGroup()
    actions.add_choice("accept", label="Accept")
    actions.add_choice("reject", label="Reject")
    actions.add_choice("reset", label="Reset to pending")
    actions.add_choice("undo", label="Undo my last action")
    inputs.enum("action", actions.values(), default="accept", required=True, label="Action", view=actions)
    if ctx.params.get("action", "accept") == "undo":
        return
    # every target stays a valid choice, so that an empty selection gets
    # the operator's own clear error rather than a bare enum failure
    targets = types.RadioGroup()
    targets.add_choice("SELECTED_LABELS", label=f"{len(ctx.selected_labels or [])} selected label(s)")
    targets.add_choice("SELECTED_SAMPLES", label=f"All labels of {len(ctx.selected or [])} selected sample(s)")
    targets.add_choice("VIEW", label="A queue and/or class in the current view")
    inputs.enum("target", targets.values(), default=_default_target(ctx), label="Labels", view=targets)
    fields = {s.get("field") for s in ctx.selected_labels or []}
    default_field = fields.pop() if len(fields) == 1 else DEFAULT_LABEL_FIELD
    inputs.str("label_field", default=default_field, label="Label field")
    queues = types.Dropdown()
    for q in QUEUES:
        queues.add_choice(q, label=q)
    inputs.enum("queue", queues.values(), label="Queue", description="Only labels of this triage queue", view=queues)
    inputs.str("label", label="Class", description="Only labels of this class")
    if getattr(ctx, "user", None) is None:
        inputs.str("user", label="Reviewer", description="Your name (default: the server's OS user)")
    inputs.bool("delegate", default=False, label="Delegate")


class FinalizeLabels(_PlainOperator, foo.Operator):
    """Copies accepted labels (and optionally green ones nobody rejected)
    into a clean ``fo.Detections`` field; see :mod:`.finalize`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/finalize_labels",
            ctx={"dataset": dataset,
                 "params": {"label_field": "autolabels", "final_field": "final",
                            "include_green": True}},
        )
    """

    op_name = "finalize_labels"
    op_label = "Stoplight: finalize labels"
    op_icon = "task_alt"
    form_title = "Finalize labels"
    summary_labels = {
        "run_key": "Run key",
        "final_field": "Final field",
        "num_samples": "Samples",
        "num_final_labels": "Final labels",
        "num_accepted": "Accepted by a reviewer",
        "num_green": "Green, not rejected",
    }

    def _inputs(self, ctx, inputs):
        inputs.view_target(ctx, action_description="Finalize the labels of")
        inputs.str("label_field", default=DEFAULT_LABEL_FIELD, label="Label field")
        inputs.str("final_field", label="Final field", description="Default: <label field>_final")
        inputs.bool(
            "include_green",
            default=False,
            label="Include green labels",
            description="Also copy labels in the green queue that nobody rejected",
        )
        inputs.bool("delegate", default=False, label="Delegate")

    def execute(self, ctx):
        p = ctx.params
        summary = finalize_labels(
            ctx.target_view(),
            label_field=p.get("label_field") or DEFAULT_LABEL_FIELD,
            final_field=p.get("final_field") or None,
            include_green=bool(p.get("include_green", False)),
            run_key=p.get("run_key") or None,
        )
        return self._done(ctx, summary)


class SendForReview(_PlainOperator, foo.Operator):
    """Sends the open labels of a triage queue (default: yellow) of the
    current view to an annotation tool; see :mod:`.handoff`.

    Credentials come from FiftyOne's annotation config (e.g.
    ``FIFTYONE_LABELSTUDIO_URL`` / ``FIFTYONE_LABELSTUDIO_API_KEY``,
    ``FIFTYONE_CVAT_USERNAME`` / ``FIFTYONE_CVAT_PASSWORD``) unless given as
    ``url`` / ``api_key``.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/send_for_review",
            ctx={"dataset": dataset, "view": dataset.view(),
                 "params": {"label_field": "autolabels", "anno_key": "yellow1",
                            "backend": "labelstudio", "limit": 500,
                            "url": "http://localhost:8080"}},
        )
    """

    op_name = "send_for_review"
    op_label = "Stoplight: send a queue to an annotation tool"
    op_icon = "outbox"
    form_title = "Send for review"
    summary_labels = {
        "anno_key": "Annotation key",
        "backend": "Tool",
        "label_field": "Label field",
        "queue": "Queue",
        "num_samples": "Samples sent",
        "num_labels": "Labels sent",
    }

    def _inputs(self, ctx, inputs):
        inputs.str("label_field", default=DEFAULT_LABEL_FIELD, label="Label field")
        inputs.str("anno_key", required=True, label="Annotation key", description="A new name for this hand-off")
        queues = types.Dropdown()
        for q in QUEUES:
            queues.add_choice(q, label=q)
        inputs.enum("queue", queues.values(), default="yellow", label="Queue", view=queues)
        inputs.int("limit", label="At most", description="Send only the first labels by review rank")
        backends = types.Dropdown()
        for b in ("labelstudio", "cvat"):
            backends.add_choice(b, label=b)
        inputs.enum("backend", backends.values(), default="labelstudio", label="Annotation tool", view=backends)
        inputs.str("url", label="URL", description="Default: FiftyOne's annotation config")
        inputs.bool("delegate", default=False, label="Delegate")

    def execute(self, ctx):
        p = ctx.params
        anno_key = p.get("anno_key")
        if not anno_key:
            raise ValueError("Parameter 'anno_key' is required: a new name for this hand-off")
        limit = p.get("limit", None)
        summary = send_for_review(
            ctx.view,
            p.get("label_field") or DEFAULT_LABEL_FIELD,
            anno_key,
            queue=p.get("queue", "yellow") or None,
            backend=p.get("backend") or "labelstudio",
            limit=int(limit) if isinstance(limit, float) and limit.is_integer() else limit,
            url=p.get("url") or None,
            api_key=p.get("api_key") or None,
            user=context_user(ctx),
        )
        return self._done(ctx, summary)


class LoadReviewAnswers(_PlainOperator, foo.Operator):
    """Loads the answers of a hand-off as review decisions; see
    :mod:`.handoff`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/load_review_answers",
            ctx={"dataset": dataset, "params": {"anno_key": "yellow1"}},
        )
    """

    op_name = "load_review_answers"
    op_label = "Stoplight: load answers from an annotation tool"
    op_icon = "move_to_inbox"
    form_title = "Load review answers"
    summary_labels = {
        "anno_key": "Annotation key",
        "user": "Recorded as reviewer",
        "num_answered_samples": "Answered samples",
        "num_accepted": "Accepted",
        "num_rejected": "Rejected",
        "num_corrected": "Corrected (relabeled or moved)",
        "num_added": "Boxes drawn",
        "num_unchanged": "Already loaded",
        "num_unanswered": "Labels not answered yet",
        "num_conflicts": "Decided in Stoplight since (left alone)",
    }

    def _inputs(self, ctx, inputs):
        keys = [k for k in ctx.dataset.list_runs() if k.startswith(HANDOFF_PREFIX)] if ctx.dataset else []
        choices = types.Dropdown()
        for key in keys:
            choices.add_choice(key[len(HANDOFF_PREFIX):], label=key[len(HANDOFF_PREFIX):])
        if keys:
            inputs.enum("anno_key", choices.values(), required=True, label="Annotation key", view=choices)
        else:
            inputs.str("anno_key", required=True, label="Annotation key")
        inputs.str("corrections_field", label="Corrections field", description="Default: <label field>_corrections")
        inputs.bool("cleanup", default=False, label="Delete the project in the tool afterwards")
        inputs.bool(
            "assume_all_answered",
            default=False,
            label="Every sent sample is answered",
            description="Needed for CVAT: it does not say which samples a reviewer finished",
        )
        inputs.bool("delegate", default=False, label="Delegate")

    def execute(self, ctx):
        p = ctx.params
        anno_key = p.get("anno_key")
        if not anno_key:
            raise ValueError("Parameter 'anno_key' is required: the key given to send_for_review")
        credentials = {k: p[k] for k in ("url", "api_key", "username", "password") if p.get(k)}
        summary = load_review_answers(
            ctx.dataset,
            anno_key,
            user=p.get("user") or None,
            corrections_field=p.get("corrections_field") or None,
            cleanup=bool(p.get("cleanup", False)),
            assume_all_answered=bool(p.get("assume_all_answered", False)),
            **credentials,
        )
        return self._done(ctx, summary)
