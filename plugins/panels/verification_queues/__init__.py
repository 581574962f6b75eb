"""The ``verification_queues`` panel (grid surface): counts by queue and
class, the triage report, bulk and selected decisions, the green audit.

- :mod:`.panel`: the App layer (:class:`VerificationQueues`)
- :mod:`.panel_content`: the state and data a refresh sets
- :mod:`.layout`: what is drawn from that state
- :mod:`.charts`, :mod:`.audit_section`: table rows, report lines and
  Plotly traces (pure)
"""

from .panel import NEXT_CROPS, NEXT_YELLOW, VerificationQueues

__all__ = ["NEXT_CROPS", "NEXT_YELLOW", "VerificationQueues"]
