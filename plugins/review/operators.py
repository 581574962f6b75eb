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

from ..common.app_progress import LongRunningOperator, operator_ui
from ..common.identity import Identity, resolve_identity
from ..common.label_vocab import DEFAULT_LABEL_FIELD
from ..common.operator_forms import choices, delegate_input
from ..common.operator_params import default_of, param_of, params_from
from .corrections import correct_label
from .decisions import ACTIONS, QUEUES, review_labels, undo_last
from .finalize import finalize_labels
from .handoff import RUN_PREFIX as HANDOFF_PREFIX
from .handoff import handoff_backend, load_review_answers, send_for_review
from .propagation import accept_similar, find_similar_group
from .tool_config import BACKENDS, check_backend, refuse_credential_params, server_credentials
from .tracks import review_tracks

TARGETS = ("SELECTED_LABELS", "SELECTED_SAMPLES", "VIEW")


class _PlainOperator(LongRunningOperator):
    """Stoplight's operator config, delegation and form (not as a
    generator: these actions return their summary), plus its display."""

    as_generator = False
    summary_labels: dict

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


def context_user(ctx) -> Identity:
    """Who the request acts as: :func:`..common.identity.resolve_identity`
    of ``ctx``, with ``params.user`` as a self-declared name (used only
    where FiftyOne has no login and the server pins no reviewer)."""
    return resolve_identity(ctx, declared=ctx.params.get("user") or None)


@operator_ui("review_labels", "Stoplight: review labels", "fact_check", "Review labels")
class ReviewLabels(_PlainOperator, foo.Operator):
    """Accepts, rejects, resets or corrects labels, accepts a cluster of
    similar labels at once, or undoes your last action.

    The labels are the ones selected in the App, or all labels of the
    selected samples, or every label of a queue and/or class in the current
    view (``target``; by default the selected labels if any, else the
    selected samples, else the view). ``queue`` and ``label`` narrow any
    target. Decisions on samples or on a queue/class are recorded as bulk
    (``review_bulk``: nobody looked at each label).

    ``action="correct"`` changes one label (``label_id``, or the one
    selected label): ``new_label`` and/or ``bounding_box`` (``[x, y, w, h]``
    relative to the image); see :mod:`.corrections`.
    ``action="accept_similar"`` accepts the open yellow labels of
    ``label_id``'s tight cluster once a run of accepts vouches for it
    (``label_ids``: exactly the group shown to the person, else it is
    found again); one logged bulk action, undoable.

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
        # correct a label's class and box
        foo.execute_operator(
            "@stoplight/autolabel/review_labels",
            ctx={"dataset": dataset,
                 "params": {"action": "correct", "label_id": label_id, "new_label": "7",
                            "bounding_box": [0.1, 0.2, 0.3, 0.25]}},
        )
    """

    summary_labels = {
        "action": "Action",
        "action_id": "Action id",
        "user": "Reviewer",
        "user_source": "Reviewer known from",
        "label_field": "Label field",
        "num_labels": "Labels",
        "num_changed": "Labels whose review changed",
        "num_conflicts": "Labels left alone (decided again since)",
        "num_reranked": "Open labels re-ranked by this answer",
        "num_overridden": "Labels that held another reviewer's decision",
    }

    def _inputs(self, ctx, inputs):
        _review_inputs(ctx, inputs)

    def execute(self, ctx):
        p = ctx.params
        action = p.get("action", None)
        user = context_user(ctx)
        if action == "undo":
            return self._done(ctx, undo_last(ctx.dataset, user=user))
        if action in ("correct", "accept_similar"):
            return self._done(ctx, _one_label_action(ctx, action, user))
        if action not in ACTIONS:
            raise ValueError(f"Parameter 'action' must be one of {[*ACTIONS, *EXTRA_ACTIONS]}; got {action!r}")
        target = p.get("target") or _default_target(ctx)
        if target not in TARGETS:
            raise ValueError(f"Parameter 'target' must be one of {TARGETS}; got {target!r}")
        label_field = p.get("label_field") or None
        # the reviewer is the request's identity, never a request key
        kwargs = params_from(ctx, review_labels, ("queue", "label"), user=user)
        # a request may mark a decision as bulk, never a group decision as looked at one by one
        kwargs["bulk"] = True if target != "SELECTED_LABELS" else bool(p.get("bulk", False))
        if target == "SELECTED_LABELS":
            label_field, label_ids = _selected_labels(ctx.selected_labels, label_field)
            if label_field.startswith("frames.") and p.get("whole_tracks", True):
                # video tracks: a decision on a frame label decides its track
                return self._done(ctx, review_tracks(ctx.view, label_field, action, label_ids, user=user))
            kwargs["label_ids"] = label_ids
        elif target == "SELECTED_SAMPLES":
            if not ctx.selected:
                raise ValueError("Nothing selected: select samples in the App first")
            kwargs["sample_ids"] = list(ctx.selected)
        summary = review_labels(ctx.view, label_field or DEFAULT_LABEL_FIELD, action, **kwargs)
        return self._done(ctx, summary)


EXTRA_ACTIONS = ("correct", "accept_similar", "undo")


def _one_label_action(ctx, action: str, user: str | None) -> dict:
    """``correct`` or ``accept_similar`` on ``params.label_id`` (or the one
    selected label)."""
    p = ctx.params
    label_field = p.get("label_field") or None
    label_id = p.get("label_id") or None
    if label_id is None:
        selected = ctx.selected_labels or []
        if len(selected) != 1:
            raise ValueError(f"Action {action!r} needs one label: give 'label_id' or select exactly one label")
        label_field, (label_id,) = _selected_labels(selected, label_field)
    label_field = label_field or DEFAULT_LABEL_FIELD
    if action == "correct":
        return correct_label(ctx.view, label_field, label_id,
                             label=param_of(ctx, correct_label, "label", key="new_label"),
                             bounding_box=param_of(ctx, correct_label, "bounding_box"), user=user)
    ids = p.get("label_ids") or find_similar_group(ctx.view, label_field, label_id)["label_ids"]
    return accept_similar(ctx.view, label_field, ids, anchor_id=label_id, user=user)


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
    # frame labels: the App may name the field with or without ``frames.``
    selected = [dict(s, field=f"frames.{s['field']}") if s.get("frame_number") is not None
                and not s["field"].startswith("frames.") else s for s in selected]
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
    actions.add_choice("correct", label="Correct the class or box of one label")
    actions.add_choice("accept_similar", label="Accept the similar labels of one label")
    actions.add_choice("undo", label="Undo my last action")
    inputs.enum("action", actions.values(), default="accept", required=True, label="Action", view=actions)
    action = ctx.params.get("action", "accept")
    if action == "undo":
        return
    if action in ("correct", "accept_similar"):
        _one_label_inputs(ctx, inputs, action)
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
    if any(s.get("frame_number") is not None for s in ctx.selected_labels or []):
        inputs.bool("whole_tracks", default=True, label="Whole tracks",
                     description="Video labels with a track index: decide every frame of their tracks")
    queues = choices(types.Dropdown(), QUEUES)
    inputs.enum("queue", queues.values(), label="Queue", description="Only labels of this triage queue", view=queues)
    inputs.str("label", label="Class", description="Only labels of this class")
    who = resolve_identity(ctx)
    if not who.verified:
        inputs.str(
            "user", label="Reviewer",
            description=("Your name, recorded as self-declared: this App has no login and the server pins "
                         f"no reviewer (default: the server's OS user, {who.name!r})"),
        )
    delegate_input(inputs)


def _one_label_inputs(ctx, inputs, action: str) -> None:
    selected = ctx.selected_labels or []
    default_id = selected[0]["label_id"] if len(selected) == 1 else None
    inputs.str("label_id", default=default_id, required=default_id is None, label="Label id",
               description="Default: the one selected label")
    inputs.str("label_field", default=(selected[0].get("field") if len(selected) == 1 else None) or DEFAULT_LABEL_FIELD,
               label="Label field")
    if action == "correct":
        inputs.str("new_label", label="Right class", description="Leave empty to keep the class")
        inputs.list("bounding_box", types.Number(), label="Right box [x, y, w, h]",
                    description="Relative to the image; leave empty to keep the box")
    if getattr(ctx, "user", None) is None:
        inputs.str("user", label="Reviewer", description="Your name (default: the server's OS user)")


@operator_ui("finalize_labels", "Stoplight: finalize labels", "task_alt", "Finalize labels")
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
        inputs.bool("include_green", default=default_of(finalize_labels, "include_green"), label="Include green labels",
                    description="Also copy labels in the green queue that nobody rejected")
        inputs.bool("adopt_field", default=default_of(finalize_labels, "adopt_field"),
                    label="Replace an existing field", description=(
                        "Take over a final field Stoplight did not create (its labels are replaced)"))
        delegate_input(inputs)

    def execute(self, ctx):
        summary = finalize_labels(ctx.target_view(), **params_from(
            ctx, finalize_labels, ("final_field", "include_green", "run_key", "adopt_field"), flags=("include_green",),
            label_field=ctx.params.get("label_field") or DEFAULT_LABEL_FIELD,
        ))
        return self._done(ctx, summary)


class _HandoffOperator(_PlainOperator):
    """An operator that talks to an annotation tool under an ``anno_key``:
    a request naming a host or credentials is refused before anything runs
    (the tool's come from the server only, see :mod:`.tool_config`)."""

    #: what ``anno_key`` names, for the error when it is missing
    anno_key_hint: str

    def check_request(self, ctx):
        refuse_credential_params(ctx.params)

    def _anno_key(self, ctx) -> str:
        # checked again here: a request may reach execute without a form
        refuse_credential_params(ctx.params)
        anno_key = ctx.params.get("anno_key")
        if not anno_key:
            raise ValueError(f"Parameter 'anno_key' is required: {self.anno_key_hint}")
        return anno_key


@operator_ui("send_for_review", "Stoplight: send a queue to an annotation tool", "outbox", "Send for review")
class SendForReview(_HandoffOperator, foo.Operator):
    """Sends the open labels of a triage queue (default: yellow) of the
    current view to an annotation tool; see :mod:`.handoff`.

    The tool's URL and credentials come from the server only: the plugin
    secrets ``FIFTYONE_LABELSTUDIO_URL`` / ``FIFTYONE_LABELSTUDIO_API_KEY``,
    ``FIFTYONE_CVAT_URL`` / ``FIFTYONE_CVAT_USERNAME`` /
    ``FIFTYONE_CVAT_PASSWORD`` (environment variables in open-source
    FiftyOne), or FiftyOne's annotation config. A request naming a host or
    credentials is refused (see :mod:`.tool_config`).

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/send_for_review",
            ctx={"dataset": dataset, "view": dataset.view(),
                 "params": {"label_field": "autolabels", "anno_key": "yellow1",
                            "backend": "labelstudio", "limit": 500}},
        )
    """

    anno_key_hint = "a new name for this hand-off"
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
        queues = choices(types.Dropdown(), QUEUES)
        inputs.enum("queue", queues.values(), default=default_of(send_for_review, "queue"), label="Queue", view=queues)
        inputs.int("limit", label="At most", description="Send only the first labels by review rank")
        backends = choices(types.Dropdown(), BACKENDS)
        inputs.enum("backend", backends.values(), default=default_of(send_for_review, "backend"),
                    label="Annotation tool", view=backends,
                    description="Its URL and credentials come from the server's configuration (plugin secrets)")
        delegate_input(inputs)

    def execute(self, ctx):
        p = ctx.params
        anno_key = self._anno_key(ctx)
        limit = param_of(ctx, send_for_review, "limit")
        backend = check_backend(param_of(ctx, send_for_review, "backend"))
        summary = send_for_review(
            ctx.view,
            p.get("label_field") or DEFAULT_LABEL_FIELD,
            anno_key,
            # a cleared queue: the undecided labels of every queue
            queue=param_of(ctx, send_for_review, "queue", cleared=None),
            backend=backend,
            limit=int(limit) if isinstance(limit, float) and limit.is_integer() else limit,
            user=context_user(ctx),
            # the tool's URL and credentials: the server's, never the request's
            **server_credentials(ctx, backend),
        )
        return self._done(ctx, summary)


@operator_ui(
    "load_review_answers", "Stoplight: load answers from an annotation tool", "move_to_inbox", "Load review answers",
)
class LoadReviewAnswers(_HandoffOperator, foo.Operator):
    """Loads the answers of a hand-off as review decisions; see
    :mod:`.handoff`.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/load_review_answers",
            ctx={"dataset": dataset, "params": {"anno_key": "yellow1"}},
        )
    """

    anno_key_hint = "the key given to send_for_review"
    summary_labels = {
        "anno_key": "Annotation key",
        "user": "Recorded as reviewer (the tool)",
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
        if keys:
            anno_keys = choices(types.Dropdown(), (key[len(HANDOFF_PREFIX):] for key in keys))
            inputs.enum("anno_key", anno_keys.values(), required=True, label="Annotation key", view=anno_keys)
        else:
            inputs.str("anno_key", required=True, label="Annotation key")
        inputs.str("corrections_field", label="Corrections field", description="Default: <label field>_corrections")
        inputs.bool("cleanup", default=default_of(load_review_answers, "cleanup"),
                     label="Delete the project in the tool afterwards")
        inputs.bool("assume_all_answered", default=default_of(load_review_answers, "assume_all_answered"),
                    label="Every sent sample is answered",
                    description="Needed for CVAT: it does not say which samples a reviewer finished")
        delegate_input(inputs)

    def execute(self, ctx):
        anno_key = self._anno_key(ctx)
        backend = handoff_backend(ctx.dataset, anno_key)
        credentials = server_credentials(ctx, backend) if backend in BACKENDS else {}
        summary = load_review_answers(ctx.dataset, anno_key, **params_from(
            ctx, load_review_answers, ("corrections_field", "cleanup", "assume_all_answered"),
            flags=("cleanup", "assume_all_answered"),
            # decisions are the tool's answers; who loaded them is recorded
            loaded_by=context_user(ctx),
            expect_host=credentials.get("url", ""),
            **credentials,
        ))
        return self._done(ctx, summary)
