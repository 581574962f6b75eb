"""The ``label_map`` panel: a 2-D map of the label embeddings.

- :mod:`.core`: the projection, stored as a run, and what is drawn
- :mod:`.panel`: the App layer (:class:`LabelMapPanel`)
"""

from .core import (
    CLASS_PALETTE,
    COLOR_BY,
    FIT_SIZE,
    GL_THRESHOLD,
    MAX_PER_GROUP,
    METHOD_NAME,
    METHODS,
    QUEUE_COLORS,
    REVIEW_COLORS,
    compute_label_map,
    group_colors,
    join_map,
    label_states,
    load_label_map,
    map_key,
    map_traces,
    project_2d,
    review_state,
    sample_per_group,
    umap_available,
)
from .panel import LabelMapPanel

__all__ = [
    "CLASS_PALETTE",
    "COLOR_BY",
    "FIT_SIZE",
    "GL_THRESHOLD",
    "LabelMapPanel",
    "MAX_PER_GROUP",
    "METHOD_NAME",
    "METHODS",
    "QUEUE_COLORS",
    "REVIEW_COLORS",
    "compute_label_map",
    "group_colors",
    "join_map",
    "label_states",
    "load_label_map",
    "map_key",
    "map_traces",
    "project_2d",
    "review_state",
    "sample_per_group",
    "umap_available",
]
