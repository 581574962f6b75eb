"""Triage on FiftyOne views: calibrate, assign queues, report.

The FiftyOne edges of :mod:`.calibration`, :mod:`.queues` and
:mod:`.report`: labels and their signals are read in bulk, matched to
verified labels with FiftyOne's own ``evaluate_detections``, and the queue
attributes written back with one bulk update per sample.

Attributes written on ``{label_field}.detections`` by :func:`assign_queues`
(a public contract): ``queue`` (``green`` / ``yellow`` / ``red``),
``p_correct`` (cross-fitted P(label is correct)) and ``review_rank`` (1 =
look first; yellow labels only, None elsewhere). Labels that carry a human
decision (``review`` is ``accepted``, ``rejected`` or ``corrected``) are never
written. :func:`assign_queues` also lays the labels out for the App (the
queue and review state first in the tooltip, a logged copy of class and
box, :mod:`..common.label_docs`), colours the field by queue in the App
(:mod:`..common.app_colors`) and stores the yellow labels' review graph
(:mod:`..common.label_graph`) from which answers re-rank the queue.

This module is the public face of the triage's FiftyOne edge; the work is
in :mod:`.calibrate_run` (:func:`calibrate_triage`), :mod:`.assign_run`
(:func:`assign_queues`), :mod:`.stored_report` (:func:`triage_report`),
with the labels read in bulk by :mod:`.label_arrays` and the verified ones
chosen by :mod:`.verified_labels`. Import from here.
"""

from __future__ import annotations

from ..common.label_cells import label_cells
from .assign_run import QUEUE_ATTRS, WRITE_CHUNK, assign_queues, iter_assign_queues
from .calibrate_run import (
    DEFAULT_SIGNALS,
    METHOD,
    OPTIONAL_SIGNALS,
    PRESENT_SHARE,
    calibrate_triage,
    iter_calibrate_triage,
    load_calibration,
)
from .label_arrays import read_labels
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR
from .stored_report import latest_audit_plan, triage_report
from .verified_labels import reviewed_labels

__all__ = [
    "CENTS_PER_BOX", "DEFAULT_SIGNALS", "METHOD", "OPTIONAL_SIGNALS", "PRESENT_SHARE", "QUEUE_ATTRS",
    "SECONDS_PER_BOX", "USD_PER_GPU_HOUR", "WRITE_CHUNK", "assign_queues", "calibrate_triage",
    "iter_assign_queues", "iter_calibrate_triage", "label_cells", "latest_audit_plan", "load_calibration",
    "read_labels", "reviewed_labels", "triage_report",
]
