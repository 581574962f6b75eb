"""The triage report of the labels as stored, and what it reads from runs.

:func:`triage_report` counts the queues and review decisions stored now
(one database aggregation) and adds what earlier runs recorded: the audit
plan of the latest ``assign_queues`` run, the labeling's GPU time, the
recall on the calibration's verified images and the missed objects.
"""

from __future__ import annotations

import datetime

from ..common import fo_private, provenance
from ..common.fields import check_detections_field
from ..common.label_cells import label_cells
from ..common.label_vocab import DEFAULT_LABEL_FIELD
from .calibrate_run import load_calibration
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, report_from_rows
from .verified_recall import calibration_recall

__all__ = ["labeling_gpu_hours", "latest_audit_plan", "triage_report"]


def triage_report(sample_collection, label_field: str = DEFAULT_LABEL_FIELD, calibration_key: str = "triage",
                  seconds_per_box: float = SECONDS_PER_BOX, cents_per_box: float = CENTS_PER_BOX,
                  usd_per_gpu_hour: float = USD_PER_GPU_HOUR, gpu_hours: float | None = None,
                  cells: list[dict] | None = None) -> dict:
    """The report of :func:`.report.build_report` for the labels as stored now
    (queues and review decisions), without changing anything. Counted by
    one database aggregation (:func:`label_cells`), not a Python loop;
    ``cells``: its rows when the caller has them already (the panel counts
    from the same rows). Adds ``audit`` (where the field's audit stands,
    :func:`.green_audit.peek_audit`) and ``audit_plan`` (what an audit
    could certify, from the latest ``assign_queues`` run) and ``recall`` (on the
    calibration's verified images, :func:`.verified_recall.recall_section`)."""
    from .green_audit import find_audit, peek_audit

    check_detections_field(sample_collection, label_field, "label_field")
    dataset = fo_private.view_dataset(sample_collection)
    calibration = load_calibration(dataset, calibration_key)
    report = report_from_rows(
        calibration, cells if cells is not None else label_cells(sample_collection, label_field),
        seconds_per_box=seconds_per_box, cents_per_box=cents_per_box, usd_per_gpu_hour=usd_per_gpu_hour,
        gpu_hours=gpu_hours if gpu_hours is not None else labeling_gpu_hours(dataset, label_field),
    )
    key = find_audit(dataset, label_field)
    audit = peek_audit(dataset, key) if key else None
    report["audit"] = None if audit is None else {k: v for k, v in audit.items() if k != "plan"}
    report["audit_plan"] = latest_audit_plan(dataset, label_field, calibration_key)
    report["recall"] = calibration_recall(sample_collection, label_field, calibration_key, calibration,
                                          seconds_per_box)
    report["missed"] = _missed(sample_collection, label_field, dataset, calibration_key)
    return report


def _missed(sample_collection, label_field: str, dataset, calibration_key: str) -> dict | None:
    """The report's ``missed`` section (:mod:`.missed`), on the calibration's
    verified labels field and IoU."""
    from .missed import missed_section

    config = dataset.get_run_info(calibration_key).config
    return missed_section(sample_collection, label_field, getattr(config, "gt_field", None),
                          iou=getattr(config, "iou", None) or 0.5)


def latest_audit_plan(dataset, label_field: str, calibration_key: str) -> dict | None:
    """The audit plan stored by the newest ``assign_queues`` run of the field
    under this calibration (None when there is none)."""
    runs = provenance.stoplight_runs(dataset, "assign_queues", label_field=label_field,
                                     calibration_key=calibration_key)
    return getattr(runs[-1][1], "audit_plan", None) if runs else None


def labeling_gpu_hours(dataset, label_field: str) -> float:
    """Wall-clock hours of the completed zero_shot_detect runs on the field."""
    total = 0.0
    for _, cfg in provenance.stoplight_runs(dataset, "zero_shot_detect", label_field=label_field):
        try:
            t0 = datetime.datetime.fromisoformat(cfg.started_at)
            t1 = datetime.datetime.fromisoformat(cfg.ended_at)
        except (TypeError, ValueError, AttributeError):
            continue
        total += max(0.0, (t1 - t0).total_seconds()) / 3600.0
    return total
