"""What several panels use.

- :mod:`.app_context`: label fields, selection, calibration run
- :mod:`.queue_stats`: counts by queue / class / review state, next yellow
  labels, drill-down views
- :mod:`.count_cache`: a whole dataset's counts and next yellow labels,
  stored while its samples are unchanged
- :mod:`.crops`: small crops of labels, as data URLs
- :mod:`.panel_config`: the config every panel shares
"""

from .count_cache import count_labels_cached, forget_counts, label_cells_cached, next_yellow_cached
from .queue_stats import count_labels, drilldown_view, next_yellow, summarize_counts

__all__ = [
    "count_labels",
    "count_labels_cached",
    "drilldown_view",
    "forget_counts",
    "label_cells_cached",
    "next_yellow",
    "next_yellow_cached",
    "summarize_counts",
]
