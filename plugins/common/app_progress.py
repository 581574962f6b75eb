"""Forwarding a core generator's progress to the App, for operators."""

from __future__ import annotations

from typing import Any, Generator, Iterator


def run_with_progress(ctx, gen: Iterator, what: str) -> Generator[Any, None, dict]:
    """Drives a core ``Progress`` generator from a generator operator.

    Use as ``summary = yield from run_with_progress(ctx, gen, "Labeling")``.
    Immediate runs yield ``set_progress`` operations to the App; delegated
    runs report through ``ctx.set_progress``. An error is notified to the
    App before it is re-raised (a generator's HTTP stream has already
    started, so an exception alone would end it silently), and the core
    generator is always closed, so a cancelled run records what it wrote.

    Returns:
        the core generator's summary
    """
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if ctx.delegated:
                ctx.set_progress(progress=p.fraction, label=p.label)
            else:
                yield ctx.ops.set_progress(progress=p.fraction, label=p.label)
    except Exception as e:
        if not ctx.delegated:
            yield ctx.ops.notify(f"{what} failed: {e}", variant="error")
        raise
    finally:
        gen.close()


def operator_ui(name: str, label: str, icon: str, form_title: str | None = None):
    """Class decorator naming a :class:`LongRunningOperator`: its URI name
    (``@stoplight/autolabel/<name>``), App label, icon and form title
    (default: the label).

    Example usage::

        @operator_ui("score_labels", "Stoplight: score labels", "traffic", "Score labels")
        class ScoreLabels(LongRunningOperator, foo.Operator):
            ...
    """

    def name_it(cls):
        cls.op_name, cls.op_label, cls.op_icon = name, label, icon
        cls.form_title = form_title or label
        return cls

    return name_it


class LongRunningOperator:
    """Mixin for Stoplight's operators: config, form, delegation.

    Subclasses are named by :func:`operator_ui` and
    implement ``_inputs(ctx, inputs)`` and ``execute``. They run immediately
    or delegated (the ``delegate`` input decides). ``execute`` is a
    generator, so that immediate runs stream progress to the App, unless
    the subclass sets ``as_generator = False`` (short actions that return
    their summary).
    """

    op_name: str
    op_label: str
    op_icon: str
    form_title: str
    as_generator: bool = True

    @property
    def config(self):
        import fiftyone.operators as foo

        return foo.OperatorConfig(
            name=self.op_name,
            label=self.op_label,
            icon=self.op_icon,
            dynamic=True,
            execute_as_generator=self.as_generator,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        import fiftyone.operators.types as types

        inputs = types.Object()
        self._inputs(ctx, inputs)
        self.check_request(ctx)
        return types.Property(inputs, view=types.View(label=self.form_title))

    def check_request(self, ctx) -> None:
        """Refuses, by raising ``ValueError``, parameters no form sends and
        no request may set (unsafe loading, credentials).

        FiftyOne resolves the inputs before it executes or queues any
        request (App, HTTP, SDK, delegated worker), so a refusal here means
        nothing ran and nothing was queued. Values a person types into the
        form (a path outside the allowed roots) are marked invalid on their
        property instead, which refuses the request the same way without
        interrupting the form while they type.
        """

    def resolve_delegation(self, ctx):
        return ctx.params.get("delegate", None)

    def show_summary(self, ctx, summary: dict, outputs, keys) -> Iterator:
        """After an immediate run: reloads the App and shows ``keys`` of
        ``summary`` (those not None) in the ``outputs`` form object."""
        import fiftyone.operators.types as types

        if ctx.delegated:
            return
        yield ctx.ops.reload_dataset()
        shown = {k: summary.get(k) for k in keys if summary.get(k) is not None}
        yield ctx.ops.show_output(types.Property(outputs).to_json(), shown)
