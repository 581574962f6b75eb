"""How a local labeling run writes its labels: buffered, in bulk, keeping
the labels a person decided.

:class:`LabelWriter` buffers the documents :func:`.batches.label_batch`
makes and writes them every ``write_every`` samples with
:func:`.batches.write_labels` (the decision-preserving merge). A sample the
database refuses (e.g. a document over MongoDB's 16 MB limit) costs only its
own labels; a lost database connection ends the run with a message telling
how to resume.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from ..common import bulk, db_errors, fo_private
from .batches import write_labels

logger = logging.getLogger(__name__)

#: the advice of a run that lost the database while writing
RESUME_HINT = (
    "Labels written before are kept ({written} samples in this run); once the "
    "database is back, re-run with overwrite=False to label the remaining samples"
)


class LabelWriter:
    """Buffers a run's label documents and writes them in bulk.

    The counts say what the run has labeled so far: a sample counts once
    its labels are buffered, and stops counting if the database refuses
    them (``on_refused`` then records it as failed).

    Attributes:
        num_samples: samples labeled (buffered or written)
        num_labels: their labels
        num_candidates: missed-object candidates buffered or written
        num_written: samples whose labels are in the database
        write_s: seconds spent writing
    """

    def __init__(
        self,
        sample_collection,
        label_field: str,
        write_every: int,
        on_refused: Callable[[str, str], None],
        candidates_field: str | None = None,
    ) -> None:
        """
        Args:
            sample_collection: the collection whose dataset holds the samples
            label_field: the ``fo.Detections`` field of the labels
            write_every: samples buffered between bulk writes
            on_refused: called with ``(sample_id, error)`` for each sample
                whose labels the database refused
            candidates_field: the ``fo.Detections`` field of the candidates,
                if the run keeps them
        """
        self.sample_collection = sample_collection
        self.label_field = label_field
        self.write_every = write_every
        self.on_refused = on_refused
        self.candidates_field = candidates_field
        self.num_samples = 0
        self.num_labels = 0
        self.num_candidates = 0
        self.num_written = 0
        self.write_s = 0.0
        self._pending: dict[str, Any] = {}
        self._pending_candidates: dict[str, Any] = {}

    def add(self, docs: Mapping[str, dict], candidate_docs: Mapping[str, dict] | None = None) -> None:
        """Buffers one batch's documents (``{sample_id: fo.Detections
        document}``); writes the buffer once it holds ``write_every``
        samples."""
        for sid, doc in (candidate_docs or {}).items():
            self._pending_candidates[sid] = doc
            self.num_candidates += len(doc["detections"])
        for sid, doc in docs.items():
            self._pending[sid] = doc
            self.num_labels += len(doc["detections"])
            self.num_samples += 1
        if len(self._pending) >= self.write_every:
            self.flush()

    def flush(self) -> None:
        """Writes what is buffered.

        Raises:
            db_errors.DatabaseUnavailableError: the database is gone (the
                buffer is kept)
        """
        if not self._pending:
            return
        t0 = time.perf_counter()
        try:
            with bulk.gc_paused():
                if self._pending_candidates:
                    # first: a resume relabels (and re-finds candidates of)
                    # exactly the samples whose labels are missing
                    write_labels(self.sample_collection, self.candidates_field, self._pending_candidates)
                    self._pending_candidates.clear()
                self._write(self._pending)
        finally:
            self.write_s += time.perf_counter() - t0
        self._pending.clear()

    def _write(self, docs: Mapping[str, Any]) -> None:
        try:
            # human decisions stay on an overwrite: no run replaces a
            # person's work (new labels repeating them were dropped before)
            write_labels(self.sample_collection, self.label_field, docs)
        except Exception as e:  # noqa: BLE001 - classified below
            if db_errors.is_connection_error(e):
                raise db_errors.unavailable(
                    e,
                    f"writing the labels of {len(docs)} samples to field '{self.label_field}' "
                    f"of dataset '{fo_private.view_dataset(self.sample_collection).name}'",
                    RESUME_HINT.format(written=self.num_written),
                ) from e
            if len(docs) == 1:
                raise
            # one refused document (e.g. over MongoDB's 16 MB limit) must not
            # cost its chunk-mates their labels: write them one by one
            logger.warning("Bulk write failed (%s); writing samples one by one", e)
            for sid, doc in docs.items():
                self._write_alone(sid, doc)
            return
        self.num_written += len(docs)

    def _write_alone(self, sid: str, doc: dict) -> None:
        try:
            self._write({sid: doc})
        except db_errors.DatabaseUnavailableError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded per sample
            self.num_samples -= 1
            self.num_labels -= len(doc["detections"])
            self.on_refused(sid, f"The database refused the labels of this sample: {type(e).__name__}: {e}")
