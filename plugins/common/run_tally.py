"""What a long run gathers for its summary: counts, failures, warnings and
stage timings.

Every run (local or on Ray) stores the same kinds of facts in its run
record: counts under their summary keys, the first
:data:`.provenance.MAX_RECORDED_FAILURES` failures and warnings (a run over
a broken share must not grow its record), and seconds per stage. One
:class:`RunTally` keeps them, so each run says only what it counts.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

from .provenance import MAX_RECORDED_FAILURES

logger = logging.getLogger(__name__)


class RunTally:
    """A run's counts, failures, warnings and stage timings.

    Args:
        counts: the summary keys of the counts, in the summary's order
            (each starts at 0; add to ``tally.counts[key]``)
        timings: the stage names (``"decode_s"``, ...), in order
        path_of: ``{sample id: filepath}``, for failures given by id only
    """

    def __init__(self, counts: Iterable[str] = (), timings: Iterable[str] = (),
                 path_of: Mapping[str, str] | None = None) -> None:
        self.counts: dict[str, int] = dict.fromkeys(counts, 0)
        self.timings: dict[str, float] = dict.fromkeys(timings, 0.0)
        self.failures: list[dict] = []
        self.warnings: list[dict] = []
        self.path_of = path_of if path_of is not None else {}

    def fail(self, sample_id: str, error: Any, filepath: str | None = None, **detail: Any) -> None:
        """Logs a failure and records it (the first ones only).

        Args:
            sample_id: the sample's id
            error: the error or its message
            filepath: the sample's path; None: from ``path_of``
            **detail: more keys of the record (e.g. ``label_id``)
        """
        filepath = self.path_of.get(sample_id) if filepath is None else filepath
        logger.warning("Sample %s (%s): %s", sample_id, filepath, error)
        _keep(self.failures, dict(sample_id=sample_id, filepath=filepath, **detail, error=str(error)))

    def warn(self, sample_id: str, warning: str, filepath: str | None = None) -> None:
        """Records a warning about a sample (the first ones only)."""
        filepath = self.path_of.get(sample_id) if filepath is None else filepath
        _keep(self.warnings, dict(sample_id=sample_id, filepath=filepath, warning=warning))

    def add_warnings(self, warnings: Sequence[dict]) -> None:
        """Records warnings already shaped as records."""
        self.warnings.extend(warnings[: max(0, MAX_RECORDED_FAILURES - len(self.warnings))])

    def add_timings(self, rows: Mapping[str, Sequence[float]]) -> None:
        """Adds each stage's seconds from a batch of worker rows
        (``{stage: [seconds per row]}``; a stage missing counts 0)."""
        for k in self.timings:
            self.timings[k] += sum(rows.get(k, ()))

    def rounded_timings(self, **more: float) -> dict[str, float]:
        """The timings as the summary stores them (``more`` overrides or
        adds stages timed elsewhere)."""
        return {k: round(v, 4) for k, v in dict(self.timings, **more).items()}

    def summary(self, *, warnings: bool = True, **extra: Any) -> dict:
        """The counts, failures, warnings (unless ``warnings=False``),
        ``extra`` and timings, in that order."""
        out: dict[str, Any] = dict(self.counts, failures=self.failures)
        if warnings:
            out["warnings"] = self.warnings
        return dict(out, **extra, timings=self.rounded_timings())


def _keep(records: list[dict], record: dict) -> None:
    if len(records) < MAX_RECORDED_FAILURES:
        records.append(record)
