"""App layer: the ``review_queue`` panel, a review surface that asks one
question at a time ("Is this a 7?") and takes the answer from a key.

The panel is a Python panel whose whole view is one JS component
(``StoplightReviewQueue`` in the plugin's bundle, ``plugins/js``): the
component keeps the questions, shows the next one as soon as a key is
pressed, prefetches the next images, and sends each answer in the
background, in order. Every answer goes through this panel's methods to
the review core (:func:`...review.decisions.review_labels`,
:func:`...review.decisions.undo_last`), so it is stored and logged exactly
like any other decision; the methods only translate ``ctx`` into those
calls and hand back what they return.

Methods the component calls (``params`` from the component):

- ``load``: label fields, classes, whether a reviewer name is needed, the
  first questions and the counts;
- ``questions``: more questions (``exclude``: the labels it holds);
- ``answer``: accept or reject one label;
- ``undo``: undo the reviewer's last action;
- ``correct``: change one label's class and/or box (a ``corrected``
  decision), available once the review core has corrections;
- ``accept_group``: accept a group of similar labels as one bulk action.

A candidates field of missed objects (``<label_field>_candidates``, see
:mod:`...review.missing`) is reviewed the same way, one key each: its
questions are the open candidates, most likely first; ``accept`` (A) adds
the candidate's box as a new label of its label field and ``reject`` (R)
dismisses it, both logged decisions of the reviewer.

When the review core offers groups (``review.propagation``), an accepted
answer comes back with ``similar``: the open labels of its tight cluster
once a run of accepts vouches for it, which the component asks about as
one question ("Accept these 37 similar labels?").

``on_load`` and ``on_change_view`` keep ``view_key`` in the panel state, a
digest of the App's view: when it changes, the component asks again for
the new view's questions (drill-downs of the verification panel, App
filters). The App sends ``on_change_view`` also when the view did not
change (on load, after a reload), hence a digest rather than a counter.
"""

from __future__ import annotations

import functools
import logging

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ...common.fo_private import view_stages
from ...common.identity import Identity
from ...common.field_owner import candidates_label_field
from ...review.decisions import HUMAN_DECISIONS, review_labels, undo_last
from ...review.missing import add_missing, dismiss_missing
from ...triage.green_audit import apply_certificate
from ...review.operators import context_user
from ..shared import app_context
from ..shared.panel_config import grid_panel
from . import questions as qs

logger = logging.getLogger(__name__)

COMPONENT = "StoplightReviewQueue"
#: questions per batch when the component does not say
BATCH = 20
ANSWERS = ("accept", "reject")
#: most labels of a group the component is sent (with boxes, to show them)
MAX_GROUP_SHOWN = 500


def answers_errors(method):
    """A method the component calls: an error comes back as ``{"error":
    message}`` instead of being raised (the App replaces a whole panel with
    the traceback of a method that raised: the reviewer would lose the
    surface, its questions and what is still being saved)."""

    @functools.wraps(method)
    def wrapper(self, ctx):
        try:
            return method(self, ctx)
        except ValueError as e:
            return dict(error=str(e))
        except Exception as e:  # noqa: BLE001 - reported to the reviewer, logged here
            logger.exception("review_queue.%s failed", method.__name__)
            return dict(error=f"{type(e).__name__}: {e}")

    return wrapper


def reviewer_identity(ctx) -> Identity | None:
    """The reviewer of a request: the one place the surface asks who is
    answering (:func:`...review.operators.context_user`: the App's login, the
    server's pinned reviewer, else the name the reviewer gave for this
    session, sent as ``params.user`` and recorded as self-declared). None:
    nobody known (only the server's OS user); the component then asks for a
    name before the first answer."""
    who = context_user(ctx)
    return None if who.source == "os-user" else who


def reviewer(ctx) -> str | None:
    """The name :func:`reviewer_identity` records, for the component."""
    who = reviewer_identity(ctx)
    return who.name if who else None


def _require_reviewer(ctx) -> Identity:
    who = reviewer_identity(ctx)
    if who is None:
        raise ValueError("Who is reviewing? Enter your name in the review queue first")
    return who


@grid_panel(
    "review_queue", "Stoplight: review queue", "quiz",
    "Answers the yellow queue one label at a time. Keys: A accept, R reject, "
    "C change class, B fix the box, S unsure/skip, U undo, arrows previous/next. "
    "Choose a candidates field (e.g. autolabels_candidates) for the missing queue: "
    "A adds the box as a new label, R dismisses it."
)
class ReviewQueue(foo.Panel):
    """One label at a time, answered from the keyboard."""

    def on_load(self, ctx):
        ctx.panel.state.view_key = view_key(ctx.view)

    def on_change_view(self, ctx):
        key = view_key(ctx.view)
        if ctx.panel.state.view_key != key:
            ctx.panel.state.view_key = key

    # -- methods the component calls ------------------------------------------

    @answers_errors
    def load(self, ctx):
        dataset = ctx.dataset
        field = app_context.choose_label_field(dataset, ctx.params.get("label_field"))
        out = dict(
            fields=app_context.label_fields(dataset), label_field=field, reviewer=reviewer(ctx),
            can_correct=_corrections() is not None, can_group=_group_functions()[0] is not None,
            classes=[], questions=[], stats=None, error=None,
        )
        if field is None:
            out["error"] = "This dataset has no fo.Detections field to review."
            return out
        out["adds_to"] = candidates_label_field(dataset, field)
        if out["adds_to"]:  # a candidate is added or dismissed as drawn; a fix of it would decide it
            out["can_correct"] = out["can_group"] = False
        out["classes"] = _classes(dataset, field)
        out.update(self._questions(ctx, field))
        return out

    @answers_errors
    def questions(self, ctx):
        return self._questions(ctx, self._field(ctx))

    @answers_errors
    def answer(self, ctx):
        action = ctx.params.get("action")
        if action not in ANSWERS:
            raise ValueError(f"Parameter 'action' must be one of {ANSWERS}; got {action!r}")
        if candidates_label_field(ctx.dataset, self._field(ctx)):
            return self._decide(ctx, lambda field, label_id, user: _answer_missing(
                ctx.dataset, field, action, label_id, user))
        out = self._decide(ctx, lambda field, label_id, user: review_labels(
            ctx.dataset, field, action, label_ids=[label_id], user=user))
        if out.get("conflict") is None:
            # an audit question's answer may complete a certificate: apply it now
            apply_certificate(ctx.dataset, self._field(ctx))
        if action == "accept" and out.get("conflict") is None:
            out["similar"] = _similar_offer(ctx, self._field(ctx), out["label_id"])
        return out

    @answers_errors
    def accept_group(self, ctx):
        accept_similar = _group_functions()[1]
        if accept_similar is None:
            raise ValueError("Accepting similar labels is not available in this version of the review core")
        field = self._field(ctx)
        label_ids = ctx.params.get("label_ids")
        if not isinstance(label_ids, list) or not label_ids or not all(isinstance(i, str) for i in label_ids):
            raise ValueError("Parameter 'label_ids' must be a non-empty list of label ids")
        if len(label_ids) > MAX_GROUP_SHOWN:
            raise ValueError(f"Parameter 'label_ids' holds {len(label_ids)} ids; at most {MAX_GROUP_SHOWN}")
        user = _require_reviewer(ctx)
        # only labels still open: a bulk accept never overrides a person
        view = ctx.dataset.select_labels(ids=label_ids, fields=field)
        ids, review = view.values([f"{field}.detections.id", f"{field}.detections.review"], unwind=True)
        still_open = [i for i, r in zip(ids, review) if r not in HUMAN_DECISIONS]
        if not still_open:
            return dict(action_id=None, num_labels=0, num_skipped=len(label_ids))
        out = accept_similar(ctx.dataset, field, still_open, anchor_id=ctx.params.get("anchor_id"), user=user)
        return dict(out, num_skipped=len(label_ids) - len(still_open))

    @answers_errors
    def undo(self, ctx):
        return undo_last(ctx.dataset, user=_require_reviewer(ctx))

    @answers_errors
    def correct(self, ctx):
        correct_label = _corrections()
        if correct_label is None:
            raise ValueError("Corrections are not available in this version of the review core")
        if candidates_label_field(ctx.dataset, self._field(ctx)):
            raise ValueError("Candidates of missed objects are added (A) or dismissed (R); fix the added label")
        change = {k: ctx.params[k] for k in ("label", "bounding_box") if ctx.params.get(k) is not None}
        return self._decide(ctx, lambda field, label_id, user: correct_label(
            ctx.dataset, field, label_id, user=user, **change))

    def _decide(self, ctx, decide) -> dict:
        """One decision on ``params.label_id`` by the request's reviewer,
        unless someone else decided that label after the surface showed it
        (``params.expected``: the state it showed): then nothing is written
        and ``conflict`` tells who decided what."""
        field = self._field(ctx)
        label_id = ctx.params.get("label_id")
        if not isinstance(label_id, str) or not label_id:
            raise ValueError(f"Parameter 'label_id' must be a label id; got {label_id!r}")
        user = _require_reviewer(ctx)
        other = _decided_by_other(ctx.dataset, field, label_id, ctx.params.get("expected"), user)
        if other is not None:
            return dict(conflict=other, label_id=label_id)
        out = decide(field, label_id, user)
        return dict(out, label_id=label_id, conflict=out.get("conflict"))

    # -- helpers --------------------------------------------------------------------

    def _field(self, ctx) -> str:
        field = ctx.params.get("label_field")
        if not isinstance(field, str) or not field:
            raise ValueError(f"Parameter 'label_field' must be a field name; got {field!r}")
        return field

    def _questions(self, ctx, field: str) -> dict:
        limit = ctx.params.get("limit", BATCH)
        exclude = ctx.params.get("exclude") or []
        view = ctx.view
        if candidates_label_field(ctx.dataset, field):  # the missing queue
            rows = qs.next_questions(view, field, limit=limit, exclude=exclude, sources=(qs.missing_candidates,))
            return dict(questions=qs.question_details(ctx.dataset, field, rows, None),
                        stats=qs.missing_stats(view, field), calibration_key=None)
        rows = qs.next_questions(view, field, limit=limit, exclude=exclude)
        key = app_context.calibration_key(ctx.dataset, field)
        calibration = qs.load_calibration_or_none(ctx.dataset, key)
        return dict(
            questions=qs.question_details(ctx.dataset, field, rows, calibration),
            stats=qs.review_stats(view, field),
            calibration_key=key,
        )

    def render(self, ctx):
        methods = {m: getattr(self, m) for m in ("load", "questions", "answer", "undo", "correct", "accept_group")}
        return types.Property(
            types.Object(),
            view=types.View(component=COMPONENT, composite_view=True, **methods),
        )


def view_key(view) -> str:
    """A digest of a view's stages (the same view gives the same key)."""
    import hashlib
    import json

    stages = view_stages(view) if view is not None else []
    return hashlib.sha1(json.dumps(stages, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _classes(dataset, field: str) -> list[str]:
    return sorted(str(c) for c in dataset.distinct(f"{field}.detections.label") if c is not None)


def _decided_by_other(dataset, field: str, label_id: str, expected, user) -> dict | None:
    """The label's decision when someone else made it after the surface
    showed it (``expected``: the review state it showed), else None."""
    if expected is None:
        return None
    view = dataset.select_labels(ids=[label_id], fields=field)
    review, by = view.values([f"{field}.detections.review", f"{field}.detections.reviewed_by"], unwind=True)
    if not review:
        raise ValueError(f"Label {label_id!r} not found in field {field!r}")
    state = review[0] if review[0] in HUMAN_DECISIONS else "pending"
    if state != expected and by[0] != user:
        return dict(review=state, reviewed_by=by[0])
    return None


def _answer_missing(dataset, field: str, action: str, label_id: str, user) -> dict:
    """A missing-queue answer: accept adds the candidate as a label, reject
    dismisses it (:mod:`...review.missing`); ``conflict`` when someone
    decided it first (nothing written)."""
    out = (add_missing if action == "accept" else dismiss_missing)(dataset, field, [label_id], user=user)
    if label_id in out["conflicts"]:
        view = dataset.select_labels(ids=[label_id], fields=field)
        review, by = view.values([f"{field}.detections.review", f"{field}.detections.reviewed_by"], unwind=True)
        return dict(out, conflict=dict(review=review[0] if review else None, reviewed_by=by[0] if by else None))
    return out


def _similar_offer(ctx, field: str, label_id: str) -> dict | None:
    """The group the review core offers after ``label_id`` was accepted
    (within the App's view), with what the component shows of each label;
    None when it offers none (or has no groups)."""
    find_similar_group = _group_functions()[0]
    if find_similar_group is None:
        return None
    group = find_similar_group(ctx.view, field, label_id)
    if not group.get("label_ids"):
        return None
    rows = [dict(label_id=l, sample_id=s, source="similar")
            for l, s in zip(group["label_ids"], group["sample_ids"])][:MAX_GROUP_SHOWN]
    members = qs.question_details(ctx.dataset, field, rows, None)
    return dict(anchor_id=label_id, label=group.get("label"), num_accepted=group.get("num_accepted"),
                members=[{k: m[k] for k in ("label_id", "sample_id", "filepath", "bounding_box", "p_correct",
                                             "label", "queue")} for m in members])


def _group_functions():
    """The review core's ``(find_similar_group, accept_similar)``, or Nones
    when this version of it has no groups."""
    try:
        from ...review.propagation import accept_similar, find_similar_group
    except ImportError:
        return None, None
    return find_similar_group, accept_similar


def _corrections():
    """The review core's correction function
    (``review.corrections.correct_label``), None when this version of the
    review core has none: the surface then turns its correction keys off."""
    try:
        from ...review.corrections import correct_label
    except ImportError:
        return None
    return correct_label
