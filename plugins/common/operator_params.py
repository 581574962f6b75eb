"""Operator parameters read the one way: from ``ctx.params``, with the core
function's own defaults.

An operator names the request keys it lets through; each one's default is
read from the signature of the core function it calls, so the form, the
SDK and HTTP callers get the same defaults and no operator restates them::

    kwargs = params_from(ctx, iter_segment_labels, ("label_field", "model", "overwrite"),
                         device=checked_device)

Only the named keys are read: a request key the operator does not name
never reaches the core function, whatever the function accepts (its
``detector``, ``record_run``, credentials, a reviewer's name). Values the
operator decides itself (an identity from ``ctx.user``, a path checked
against the allowed roots, an executor the server allows) are passed as
overrides, which replace whatever the request says.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

#: marks "no value given" where ``None`` is a value
_UNSET = object()


def _parameters(core_fn: Callable) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(core_fn).parameters)


def defaults_of(core_fn: Callable) -> dict[str, Any]:
    """``{name: default}`` of every parameter of ``core_fn`` that has one."""
    return {
        name: p.default
        for name, p in _parameters(core_fn).items()
        if p.default is not inspect.Parameter.empty
    }


def default_of(core_fn: Callable, name: str) -> Any:
    """The default of ``core_fn``'s parameter ``name`` (for a form field).

    Raises:
        TypeError: when ``core_fn`` has no such parameter, or it has no default
    """
    param = _parameters(core_fn).get(name)
    if param is None or param.default is inspect.Parameter.empty:
        raise TypeError(f"{core_fn.__name__}() has no parameter {name!r} with a default")
    return param.default


def is_cleared(value: Any) -> bool:
    """Whether a request value stands for "not given": ``None``, or an empty
    string, list or dict (what the App sends for a field cleared in the form)."""
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def param_of(ctx, core_fn: Callable, name: str, *, key: str | None = None, cleared: Any = _UNSET) -> Any:
    """One request value, ``ctx.params[name]``, for ``core_fn``'s parameter ``name``.

    Args:
        ctx: the operator's execution context
        core_fn: the core function whose default applies
        name: the parameter (and request key)
        key: the request key, where the form names it differently
        cleared: what a key present but cleared (see :func:`is_cleared`)
            stands for, where that differs from the default (a field the
            person emptied to switch something off); by default the
            function's default

    Returns:
        the request's value as it is (a value of the wrong type is the core
        function's to refuse: ``adopt_field="false"`` must not read as
        True); the signature default when the key is missing or cleared

    Raises:
        TypeError: when ``core_fn`` has no parameter ``name`` with a default
    """
    default = default_of(core_fn, name)
    key = key or name
    value = ctx.params.get(key)
    if is_cleared(value):
        return cleared if cleared is not _UNSET and key in ctx.params else default
    return value


def params_from(
    ctx, core_fn: Callable, names: Iterable[str], *, flags: Iterable[str] = (), **overrides: Any
) -> dict[str, Any]:
    """The keyword arguments of ``core_fn`` for an operator request.

    Args:
        ctx: the operator's execution context
        core_fn: the core function the operator calls
        names: the request keys the operator lets through; each is read
            with :func:`param_of` (missing or cleared: the signature
            default). Nothing else of ``ctx.params`` is read.
        flags: those of ``names`` passed as ``bool(value)`` (switches the
            operator has always read by truthiness)
        **overrides: keyword arguments the operator decides (checked
            paths, identities, an executor); they win over the request

    Returns:
        ``{name: value}`` for every name and override

    Raises:
        TypeError: when a name is not a parameter of ``core_fn`` with a
            default, or an override is not a parameter of ``core_fn`` (it
            takes no ``**kwargs``): a mistake in the operator, found on its
            first request
    """
    names, flags = tuple(names), set(flags)
    if not flags <= set(names):
        raise TypeError(f"flags {sorted(flags - set(names))} are not among the names read")
    kwargs = {}
    for name in names:
        if name not in overrides:
            value = param_of(ctx, core_fn, name)
            kwargs[name] = bool(value) if name in flags else value
    params = _parameters(core_fn)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in overrides if k not in params and not takes_any]
    if unknown:
        raise TypeError(f"{core_fn.__name__}() takes no parameter(s) {', '.join(unknown)}")
    kwargs.update(overrides)
    return kwargs
