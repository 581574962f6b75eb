"""Stoplight: verified zero-shot auto-labeling for FiftyOne.

This entry module only registers operators and panels; FiftyOne re-runs it
on every registry build, so it must stay cheap and stateless.

``plugins/`` has no ``__init__.py`` on purpose: as a namespace package it
loses to the regular ``plugins`` package of fiftyone's wheel (FiftyOne's
built-in operators and panels) when Python starts in this folder, and is
still reached from here as ``.plugins``.
"""

from .plugins.autolabel.operators import ZeroShotDetect
from .plugins.autolabel.mask_operators import SegmentLabels, TrackLabels
from .plugins.autolabel.pipeline import zero_shot_detect
from .plugins.autolabel.candidate_operators import FindMissing
from .plugins.review.missing_operators import ReviewMissing
from .plugins.scoring.operators import ComputeLabelEmbeddings, ScoreLabels
from .plugins.triage.operators import AssignQueues, AuditGreen, AuditTracks, CalibrateTriage, TriageReport
from .plugins.review.operators import FinalizeLabels, LoadReviewAnswers, ReviewLabels, SendForReview
from .plugins.training.operators import TrainOnAccepted
from .plugins.panels.label_map import LabelMapPanel
from .plugins.panels.review_queue import ReviewQueue
from .plugins.panels.verification_queues import VerificationQueues


def register(p):
    p.register(ZeroShotDetect)
    p.register(SegmentLabels)
    p.register(TrackLabels)
    p.register(ComputeLabelEmbeddings)
    p.register(ScoreLabels)
    p.register(CalibrateTriage)
    p.register(AssignQueues)
    p.register(TriageReport)
    p.register(AuditGreen)
    p.register(AuditTracks)
    p.register(ReviewLabels)
    p.register(FinalizeLabels)
    p.register(SendForReview)
    p.register(LoadReviewAnswers)
    p.register(TrainOnAccepted)
    p.register(FindMissing)
    p.register(ReviewMissing)
    p.register(VerificationQueues)
    p.register(LabelMapPanel)
    p.register(ReviewQueue)


__all__ = ["zero_shot_detect", "register"]
