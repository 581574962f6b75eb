"""Database failures during a run: told apart, and explained to people.

A bulk write can fail in two ways that call for opposite reactions:

- the database is gone (connection refused, server selection timed out,
  network error): nothing more can be stored, so the run stops at once with
  a :class:`DatabaseUnavailableError` saying what was kept and how to resume;
- one document was refused (larger than MongoDB's 16 MB limit, invalid):
  only that sample fails, is recorded, and the run goes on.

FiftyOne re-raises a ``BulkWriteError`` as ``ValueError`` (keeping it as
``__cause__``), so errors are classified by walking the cause chain.
"""

from __future__ import annotations


class DatabaseUnavailableError(RuntimeError):
    """The MongoDB database stopped answering during a run.

    Everything written before the failure is kept, whole (each sample's
    document is replaced atomically), so re-running with ``overwrite=False``
    resumes where the run stopped.
    """


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) means the database
    cannot be reached, as opposed to refusing one document."""
    from pymongo.errors import ConnectionFailure

    return any(isinstance(e, ConnectionFailure) for e in _chain(error))


def unavailable(error: BaseException, action: str, resume_hint: str) -> DatabaseUnavailableError:
    """A :class:`DatabaseUnavailableError` explaining ``error``.

    Args:
        error: the pymongo error (its text names the server address)
        action: what was being done, e.g. "writing labels of 4 samples to
            field 'autolabels' of dataset 'photos'"
        resume_hint: how to continue once the database is back
    """
    return DatabaseUnavailableError(
        f"Lost the connection to the MongoDB database while {action}: "
        f"{type(error).__name__}: {_first_line(error)}. {resume_hint}"
    )


def _first_line(error: BaseException, limit: int = 300) -> str:
    # pymongo appends a long topology description after the first sentence
    text = str(error).split(", Topology Description:")[0].strip()
    return text if len(text) <= limit else text[:limit] + "..."
