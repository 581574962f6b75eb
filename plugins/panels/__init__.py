"""The App's panels: verification queues and the label map.

- :mod:`.queue_stats`: counts by queue / class / review state (MongoDB
  aggregations), next yellow labels, drill-down views
- :mod:`.count_cache`: a whole dataset's counts and next yellow labels,
  stored while its samples are unchanged
- :mod:`.label_map`: 2-D projection of label embeddings, cached as a run,
  sampled per colour
- :mod:`.charts`: table rows and Plotly traces (pure)
- :mod:`.app_context`: label fields, selection, calibration run
- :mod:`.verification_queues`, :mod:`.label_map_panel`: the App layer
"""

from .count_cache import count_labels_cached, next_yellow_cached
from .label_map import compute_label_map, load_label_map, project_2d
from .queue_stats import count_labels, next_yellow, summarize_counts

__all__ = [
    "compute_label_map",
    "count_labels",
    "count_labels_cached",
    "load_label_map",
    "next_yellow",
    "next_yellow_cached",
    "project_2d",
    "summarize_counts",
]
