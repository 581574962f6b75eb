"""Stoplight: verified zero-shot auto-labeling for FiftyOne.

This entry module only registers operators and panels; FiftyOne re-runs it
on every registry build, so it must stay cheap and stateless.
"""

from .plugins.autolabel.operators import ZeroShotDetect
from .plugins.autolabel.pipeline import zero_shot_detect
from .plugins.scoring.operators import ComputeLabelEmbeddings, ScoreLabels


def register(p):
    p.register(ZeroShotDetect)
    p.register(ComputeLabelEmbeddings)
    p.register(ScoreLabels)


__all__ = ["zero_shot_detect", "register"]
