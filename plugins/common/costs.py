"""Prices and times the reports turn label counts into: hours and dollars.

The triage report (what the queues cost) and the training comparison (what
the human review behind a model cost) price the same work, so they share
the defaults and the check of user-given figures.
"""

from __future__ import annotations

import numpy as np

#: hand-drawing price per box (a common vendor figure) and box-verification
#: time (Papadopoulos et al. 2016 measured ~1.6 s per yes/no box check;
#: we assume a slower, careful check)
CENTS_PER_BOX = 7.0
SECONDS_PER_BOX = 3.0
USD_PER_GPU_HOUR = 2.5


def check_costs(**params: float) -> None:
    """Checks cost figures given as keyword arguments (name = value).

    Raises:
        ValueError: naming the parameter, for a value that is missing,
            not finite, or negative
    """
    for name, v in params.items():
        if v is None or not np.isfinite(v) or v < 0:
            raise ValueError(f"Parameter '{name}' must be a number >= 0; got {v!r}")
