"""App layer of masks and video tracks: ``segment_labels``, ``track_labels``.

Each operator only translates ``ctx`` into a call of its core generator
(:func:`.segment.iter_segment_labels`, :func:`.tracking.iter_track_labels`)
and forwards its progress. Defaults come from the core functions'
signatures, so the form, the SDK and HTTP callers get the same ones.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..common.app_progress import LongRunningOperator, operator_ui, run_with_progress
from ..common.kept_labels import INCLUDE
from ..common.operator_forms import batch_size_input, delegate_input, device_input, overwrite_input, result_form
from ..common.operator_params import default_of, param_of, params_from
from .sam import get_segmenter, segmenter_names
from .sam_video import get_tracker, tracker_names
from .segment import iter_segment_labels
from .tracking import iter_track_labels

TARGETS = ("VIEW", "SELECTED_LABELS")
#: the request keys each operator lets through to its core function
SEGMENT_KEYS = ("model", "checkpoint", "include", "overwrite", "batch_size", "device", "run_key")
TRACK_KEYS = ("track_field", "model", "checkpoint", "include", "frame_step", "overwrite", "device", "run_key",
              "adopt_field")


def _selected_label_ids(ctx, field: str) -> list[str]:
    return [s["label_id"] for s in (ctx.selected_labels or []) if s.get("field") == field]


def _target(ctx) -> str:
    target = ctx.params.get("target") or ("SELECTED_LABELS" if ctx.selected_labels else "VIEW")
    if target not in TARGETS:
        raise ValueError(f"Parameter 'target' must be one of {TARGETS}; got {target!r}")
    return target


def _target_inputs(ctx, inputs, what: str) -> None:
    choices = types.RadioGroup()
    choices.add_choice("VIEW", label=f"{what} of the current view")
    if ctx.selected_labels:
        choices.add_choice("SELECTED_LABELS", label=f"The {len(ctx.selected_labels)} selected labels")
    inputs.enum("target", choices.values(), default="SELECTED_LABELS" if ctx.selected_labels else "VIEW",
                label="Labels", view=choices)


def _model_inputs(ctx, inputs, fn, names, get_cls) -> None:
    models = types.Dropdown(label="Model")
    for name in names:
        models.add_choice(name, label=name, description=f"default: {get_cls(name).default_checkpoint}")
    inputs.enum("model", models.values(), default=default_of(fn, "model"), label="Model", view=models)
    try:
        default_ckpt = get_cls(param_of(ctx, fn, "model")).default_checkpoint
    except ValueError:
        default_ckpt = ""
    inputs.str("checkpoint", label="Checkpoint",
               description=f"Hub id or a local folder written by save_pretrained. Empty uses {default_ckpt}")


def _common_inputs(inputs, fn) -> None:
    include = types.RadioGroup()
    include.add_choice("accepted+green", label="Accepted and green (nobody rejected)")
    include.add_choice("accepted", label="Accepted only")
    include.add_choice("all", label="All labels")
    inputs.enum("include", list(INCLUDE), default=default_of(fn, "include"), label="Which labels",
                description="Ignored for selected labels", view=include)
    device_input(inputs)
    delegate_input(inputs)


@operator_ui("segment_labels", "Stoplight: masks from labels (SAM)", "texture", "Instance masks from labels")
class SegmentLabels(LongRunningOperator, foo.Operator):
    """Instance masks for chosen labels with box-prompted SAM 2 / SAM.

    Writes ``mask``, ``mask_iou`` and ``mask_stability`` onto each label
    (never its box, class or review). Default labels: accepted and green.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/segment_labels",
            ctx={"dataset": dataset, "view": dataset.view()},
            params={"label_field": "autolabels", "model": "sam2"},
        )
    """

    def _inputs(self, ctx, inputs):
        fn = iter_segment_labels
        _target_inputs(ctx, inputs, "Accepted / green labels")
        inputs.str("label_field", default=default_of(fn, "label_field"), label="Label field")
        _model_inputs(ctx, inputs, fn, segmenter_names(), get_segmenter)
        _common_inputs(inputs, fn)
        overwrite_input(inputs, fn, "Recompute masks that exist")
        batch_size_input(inputs, fn, "Batch size (images)")

    def execute(self, ctx):
        fn = iter_segment_labels
        field = param_of(ctx, fn, "label_field")
        label_ids = _selected_label_ids(ctx, field) if _target(ctx) == "SELECTED_LABELS" else None
        gen = fn(
            ctx.target_view() if label_ids is None else ctx.dataset,
            **params_from(ctx, fn, SEGMENT_KEYS, flags=("overwrite",), label_field=field, label_ids=label_ids,
                          num_workers=None if ctx.delegated else 0),
        )
        summary = yield from run_with_progress(ctx, gen, "Segmenting")
        outputs = result_form((
            ("run_key", "Run key", "str"), ("num_segmented", "Masks written"),
            ("num_skipped", "Skipped (already masked)"), ("num_box_changed", "Box edited meanwhile"),
            ("num_failed_samples", "Images that failed"),
        ))
        yield from self.show_summary(ctx, summary, outputs, list(outputs.properties))


@operator_ui(
    "track_labels", "Stoplight: track labels through videos (SAM 2)", "timeline", "Track labels through videos",
)
class TrackLabels(LongRunningOperator, foo.Operator):
    """Propagates accepted or green frame labels along each video with
    SAM 2 video (or SAM 3's tracker) into tracks: frame-level detections
    with an ``index`` per track, masks, and a ``track_jump`` flag.

    Example usage::

        import fiftyone.operators as foo

        foo.execute_operator(
            "@stoplight/autolabel/track_labels",
            ctx={"dataset": video_dataset, "view": video_dataset.view()},
            params={"label_field": "frames.autolabels", "track_field": "tracks"},
        )
    """

    def _inputs(self, ctx, inputs):
        fn = iter_track_labels
        _target_inputs(ctx, inputs, "Accepted / green frame labels")
        inputs.str("label_field", default=default_of(fn, "label_field"), label="Frame label field",
                   description="The frame-level detections whose labels seed the tracks")
        inputs.str("track_field", default=default_of(fn, "track_field"), label="Track field",
                   description="Frame-level field to write the tracks to")
        _model_inputs(ctx, inputs, fn, tracker_names(), get_tracker)
        _common_inputs(inputs, fn)
        inputs.int("frame_step", min=1, default=default_of(fn, "frame_step"), label="Track every k-th frame",
                   description="1 tracks every frame; seed frames are always tracked")
        inputs.bool("overwrite", default=default_of(fn, "overwrite"), label="Overwrite",
                    description="Track videos that have tracks again (tracks a person decided are kept)")
        inputs.bool("adopt_field", default=default_of(fn, "adopt_field"), label="Take over an existing field",
                    description="Write into a frame field Stoplight did not create for tracks (e.g. human "
                                "labels; their undecided labels are replaced). Off: such a field is refused")

    def execute(self, ctx):
        fn = iter_track_labels
        field = param_of(ctx, fn, "label_field")
        short = field[len("frames."):] if field.startswith("frames.") else field
        label_ids = None
        if _target(ctx) == "SELECTED_LABELS":
            label_ids = _selected_label_ids(ctx, f"frames.{short}") + _selected_label_ids(ctx, short)
        gen = fn(ctx.target_view(), **params_from(ctx, fn, TRACK_KEYS, flags=("overwrite",), label_field=field,
                                                  label_ids=label_ids))
        summary = yield from run_with_progress(ctx, gen, "Tracking")
        outputs = result_form((
            ("run_key", "Run key", "str"), ("num_tracks", "Tracks written"),
            ("num_track_labels", "Frame labels written"), ("num_jumping_tracks", "Tracks that jump"),
            ("num_skipped_videos", "Videos skipped (already tracked)"), ("num_failed_videos", "Videos that failed"),
        ))
        yield from self.show_summary(ctx, summary, outputs, list(outputs.properties))
