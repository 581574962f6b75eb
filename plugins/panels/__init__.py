"""The App's panels, one folder each (as FiftyOne's own
``plugins/panels/similarity_search/``):

- :mod:`.verification_queues`: counts by queue and class, decisions, the
  green audit
- :mod:`.label_map`: a 2-D map of the label embeddings
- :mod:`.review_queue`: one question at a time, answered from a key
- :mod:`.shared`: what several panels use (App context, counts and their
  stored copy, crops)

The entry ``__init__.py`` registers the panels.
"""

from .label_map import LabelMapPanel, compute_label_map, load_label_map, project_2d
from .review_queue import ReviewQueue
from .shared import app_context, count_cache, crops, queue_stats
from .shared.count_cache import count_labels_cached, next_yellow_cached
from .shared.queue_stats import count_labels, next_yellow, summarize_counts
from .verification_queues import VerificationQueues, audit_section, charts

__all__ = [
    "LabelMapPanel",
    "ReviewQueue",
    "VerificationQueues",
    "compute_label_map",
    "count_labels",
    "count_labels_cached",
    "load_label_map",
    "next_yellow",
    "next_yellow_cached",
    "project_2d",
    "summarize_counts",
]
