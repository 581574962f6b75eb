"""Operators' result forms, declared as rows.

Every operator shows its summary in a ``types.Object`` of labelled
outputs; listing them as ``(key, label, kind)`` rows keeps each operator to
what it shows, and the one place below to how each kind is declared.
"""

from __future__ import annotations

from typing import Iterable

#: the kinds a row may name; a row without one is an integer
KINDS = ("int", "str", "float", "markdown", "strings")


def result_form(rows: Iterable[tuple], outputs=None):
    """The ``types.Object`` of an operator's result form.

    Args:
        rows: ``(key, label)`` for an integer, or ``(key, label, kind)``
            with kind one of :data:`KINDS` (``markdown``: a string shown as
            Markdown; ``strings``: a list of strings)
        outputs: a ``types.Object`` to add the rows to; None: a new one

    Returns:
        the object, its properties in the order of ``rows``

    Raises:
        ValueError: for a kind not in :data:`KINDS`
    """
    import fiftyone.operators.types as types

    outputs = types.Object() if outputs is None else outputs
    for key, label, *kind in rows:
        kind = kind[0] if kind else "int"
        if kind not in KINDS:
            raise ValueError(f"Output {key!r}: kind must be one of {KINDS}; got {kind!r}")
        if kind == "markdown":
            outputs.str(key, label=label, view=types.MarkdownView())
        elif kind == "strings":
            outputs.list(key, types.String(), label=label)
        else:
            getattr(outputs, kind)(key, label=label)
    return outputs


def choices(view, options: Iterable):
    """Fills a choices view (``types.Dropdown()``, ``types.RadioGroup()``,
    ``types.Choices()``) and returns it.

    Args:
        view: the empty view
        options: values, each its own label, or ``(value, label)`` pairs
    """
    for option in options:
        value, label = option if isinstance(option, tuple) else (option, option)
        view.add_choice(value, label=label)
    return view


# The rows long runs share, worded once. Defaults come from the core
# function's signature (:func:`.operator_params.default_of`).

#: what an empty Device field means
DEVICE_HINT = "e.g. cuda, cuda:1, cpu. Empty uses CUDA when available"


def device_input(inputs, hint: str = DEVICE_HINT) -> None:
    """The Device row (empty: the core function picks)."""
    inputs.str("device", label="Device", description=hint)


def overwrite_input(inputs, core_fn, redo: str, label: str = "Overwrite") -> None:
    """The Overwrite row; ``redo`` says what it redoes (off: the run skips
    what is done, so an interrupted run resumes)."""
    from .operator_params import default_of

    inputs.bool("overwrite", default=default_of(core_fn, "overwrite"), label=label,
                description=f"{redo} (default: skip them, so runs resume)")


def batch_size_input(inputs, core_fn, label: str = "Batch size", most: int | None = None) -> None:
    """The batch size row, at most ``most`` (a :mod:`.limits` figure)."""
    from .operator_params import default_of

    inputs.int("batch_size", min=1, max=most, default=default_of(core_fn, "batch_size"), label=label)


def delegate_input(inputs, default: bool = False,
                   hint: str = "Run in a delegated-operation worker (for large datasets)") -> None:
    """The Delegate row (``resolve_delegation`` reads it)."""
    inputs.bool("delegate", default=default, label="Delegate", description=hint)
