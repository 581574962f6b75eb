"""MM-Grounding-DINO backend (Hugging Face transformers).

MM-Grounding-DINO (OpenMMLab's open reimplementation of Grounding DINO,
trained on more grounding data: Objects365, GoldG, V3Det, GRIT) keeps
Grounding DINO's interface exactly: the same BERT caption ``"a. b."``, the
same ``(queries, 256 tokens)`` logits (its contrastive head only adds a
learned bias and a ``1/sqrt(d)`` scale before them) and the same
``cxcywh`` boxes normalized to the unpadded image, read through the same
``GroundingDinoProcessor``. So the caption building, token spans, chunking
of long prompt lists and box decoding are those of
:mod:`.grounding_dino`; only the checkpoint type and the random
architecture differ.
"""

from __future__ import annotations

from typing import ClassVar

from .base import register
from .grounding_dino import GroundingDinoDetector


@register
class MMGroundingDinoDetector(GroundingDinoDetector):
    """MM-Grounding-DINO (``openmmlab-community/mm_grounding_dino_*``).

    Options: as :class:`GroundingDinoDetector` (``min_score``,
    ``trust_remote_code``, ``token_score``).
    """

    name = "mm-grounding-dino"
    default_checkpoint = "openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det"
    model_types = ("mm-grounding-dino",)
    _config_cls: ClassVar[str] = "MMGroundingDinoConfig"
    _model_cls: ClassVar[str] = "MMGroundingDinoForObjectDetection"
