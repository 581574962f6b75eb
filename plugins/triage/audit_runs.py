"""What the green audit (:mod:`.green_audit`) and the track audit
(:mod:`.track_audit_run`) share about their run records: the answers that
count, the parameter checks, and reading back a stored audit."""

from __future__ import annotations

#: review states that answer an audit question as correct
CORRECT = ("accepted",)
#: review states that are not answers (a label nobody decided)
UNDECIDED = (None, "", "pending")
#: most answers an audit may plan (the sample is kept in the run's config)
MAX_CHECKS = 10_000


def check_audit_params(audit_key, target, confidence, max_checks) -> None:
    """Raises ``ValueError`` naming the parameter for an audit key that is
    not an identifier, a target precision or confidence level outside
    (0, 1), or ``max_checks`` not an integer in [1, :data:`MAX_CHECKS`]."""
    if not audit_key or not isinstance(audit_key, str) or not audit_key.isidentifier():
        raise ValueError(f"Parameter 'audit_key' must be a valid identifier; got {audit_key!r}")
    for name, value in (("target_precision", target), ("confidence_level", confidence)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.0 < value < 1.0):
            raise ValueError(f"Parameter '{name}' must be in (0, 1); got {value!r}")
    if max_checks is not None and (isinstance(max_checks, bool) or not isinstance(max_checks, int)
                                   or not 1 <= max_checks <= MAX_CHECKS):
        raise ValueError(f"Parameter 'max_checks' must be an integer in [1, {MAX_CHECKS}]; got {max_checks!r}")


def load_audit_config(dataset, audit_key: str, method: str) -> dict | None:
    """The stored config of the audit ``audit_key`` (its FiftyOne run), or
    None when there is none.

    Raises:
        ValueError: when the run under ``audit_key`` is not a ``method`` run
    """
    if not dataset.has_run(audit_key):
        return None
    cfg = dataset.get_run_info(audit_key).config
    if getattr(cfg, "stoplight_method", None) != method:
        raise ValueError(f"Parameter 'audit_key': run {audit_key!r} on dataset '{dataset.name}' is not an "
                         f"{method} run; choose another key")
    return {k: v for k, v in cfg.serialize().items() if k not in ("cls", "type", "method")}


def check_same_audit(config: dict, **given) -> None:
    """Refuses (``ValueError``) a continued audit whose given parameters
    (those not None) differ from the ones it was started with: its sample
    was drawn for those."""
    for name, value in given.items():
        if value is not None and config.get(name) != value:
            raise ValueError(
                f"Parameter '{name}': audit {config['audit_key']!r} was started with "
                f"{name}={config.get(name)!r}, not {value!r}; pass restart=True to draw a new audit"
            )
