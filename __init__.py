"""Stoplight: verified zero-shot auto-labeling for FiftyOne.

This entry module only registers operators and panels; FiftyOne re-runs it
on every registry build, so it must stay cheap and stateless.
"""

from .plugins.autolabel.operators import ZeroShotDetect
from .plugins.autolabel.pipeline import zero_shot_detect
from .plugins.scoring.operators import ComputeLabelEmbeddings, ScoreLabels
from .plugins.triage.operators import AssignQueues, CalibrateTriage, TriageReport
from .plugins.review.operators import FinalizeLabels, LoadReviewAnswers, ReviewLabels, SendForReview
from .plugins.training.operators import TrainOnAccepted
from .plugins.panels.label_map_panel import LabelMapPanel
from .plugins.panels.verification_queues import VerificationQueues


def register(p):
    p.register(ZeroShotDetect)
    p.register(ComputeLabelEmbeddings)
    p.register(ScoreLabels)
    p.register(CalibrateTriage)
    p.register(AssignQueues)
    p.register(TriageReport)
    p.register(ReviewLabels)
    p.register(FinalizeLabels)
    p.register(SendForReview)
    p.register(LoadReviewAnswers)
    p.register(TrainOnAccepted)
    p.register(VerificationQueues)
    p.register(LabelMapPanel)


__all__ = ["zero_shot_detect", "register"]
