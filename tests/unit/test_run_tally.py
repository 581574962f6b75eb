"""``common/run_tally``: what every run (local or on Ray) keeps for its
summary, and ``common/label_attrs.ATTR_KINDS``: how each attribute is
declared."""

from __future__ import annotations

import logging

from stoplight.plugins.common import label_attrs
from stoplight.plugins.common.provenance import MAX_RECORDED_FAILURES
from stoplight.plugins.common.run_tally import RunTally


def test_summary_keeps_the_counts_order_then_failures_warnings_extra_timings():
    tally = RunTally(("num_b", "num_a"), ("decode_s", "write_s"), path_of={"s1": "/a.jpg"})
    tally.counts["num_a"] += 2
    tally.fail("s1", ValueError("broken"))
    tally.warn("s1", "tiny box")
    tally.add_timings({"decode_s": [0.123456, 1.0], "write_s": [], "other": [9.0]})
    out = tally.summary(actor_device="cpu")
    assert list(out) == ["num_b", "num_a", "failures", "warnings", "actor_device", "timings"]
    assert out["num_a"] == 2 and out["num_b"] == 0
    assert out["failures"] == [dict(sample_id="s1", filepath="/a.jpg", error="broken")]
    assert out["warnings"] == [dict(sample_id="s1", filepath="/a.jpg", warning="tiny box")]
    # only the stages it was given, summed and rounded as the run records store them
    assert out["timings"] == {"decode_s": 1.1235, "write_s": 0.0}
    assert "warnings" not in tally.summary(warnings=False)
    assert tally.rounded_timings(write_s=0.5)["write_s"] == 0.5


def test_failures_and_warnings_are_capped_but_every_failure_is_logged(caplog):
    tally = RunTally()
    n = MAX_RECORDED_FAILURES + 5
    with caplog.at_level(logging.WARNING, logger="stoplight"):
        for i in range(n):
            tally.fail(f"s{i}", "bad", filepath=f"/{i}.jpg", label_id=f"l{i}")
            tally.warn(f"s{i}", "odd", filepath=f"/{i}.jpg")
    assert len(tally.failures) == len(tally.warnings) == MAX_RECORDED_FAILURES
    assert tally.failures[0] == dict(sample_id="s0", filepath="/0.jpg", label_id="l0", error="bad")
    assert sum("Sample s" in r.getMessage() for r in caplog.records) == n
    tally.add_warnings([dict(sample_id="x", filepath=None, warning="w")])
    assert len(tally.warnings) == MAX_RECORDED_FAILURES


def test_every_attribute_stoplight_declares_has_a_kind():
    declared = (label_attrs.REVIEW_ATTRS + label_attrs.TRIAGE_ATTRS + label_attrs.SCORE_ATTRS
                + label_attrs.PROVENANCE_ATTRS + label_attrs.CORRECTION_ATTRS + label_attrs.DETECTION_ATTRS)
    assert set(declared) <= set(label_attrs.ATTR_KINDS)
    import fiftyone as fo

    for kind in label_attrs.ATTR_KINDS.values():
        for name in (kind,) if isinstance(kind, str) else kind:
            assert issubclass(getattr(fo, name), fo.Field), name
