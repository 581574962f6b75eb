"""Which label fields Stoplight created, and for what: never replace another.

``zero_shot_detect(overwrite=True)`` replaces a field's labels and
``finalize_labels`` rewrites its whole ``final_field``: pointed at a field of
human labels (``ground_truth``), either would wipe them. So each writer
only writes a field that does not exist yet or that Stoplight created for
the same purpose, unless its caller says explicitly that it takes the field
over (``adopt_field=True``).

A field Stoplight creates carries its purpose in the field's ``info``
(``{"stoplight": {"purpose": ...}}``, set in the same database update that
creates the field). Fields created before this mark existed are recognised
by the runs registry: a completed or running Stoplight run that wrote that
field for that purpose.

Video frame fields get the same check under their full path
(``frames.<field>``): ``zero_shot_detect`` on videos replaces the labels of
relabeled frames and ``track_labels`` replaces a video's undecided tracks,
so pointed at ``frames.detections`` of human labels either would wipe them.
Runs record frame fields by their full path too.
"""

from __future__ import annotations

from . import provenance

#: purpose -> (run methods that write such a field, their config attribute)
PURPOSES = {
    "autolabels": (("zero_shot_detect", "zero_shot_detect_shard"), "label_field"),
    "final": (("finalize_labels",), "final_field"),
    # missed-object candidates of a label field (the field's info also
    # names that field, see candidates_info)
    "candidates": (("zero_shot_detect",), "candidates_field"),
    "tracks": (("track_labels",), "track_field"),
}
INFO_KEY = "stoplight"


def purpose_info(purpose: str) -> dict:
    """The ``info`` a field created for ``purpose`` is declared with."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown field purpose {purpose!r}; one of {sorted(PURPOSES)}")
    return {INFO_KEY: {"purpose": purpose}}


def candidates_info(label_field: str) -> dict:
    """The ``info`` of a field of missed-object candidates of ``label_field``."""
    info = purpose_info("candidates")
    info[INFO_KEY]["label_field"] = label_field
    return info


def candidates_label_field(dataset, field: str) -> str | None:
    """The label field whose missed-object candidates ``field`` holds, or
    None when it is no candidates field."""
    f = dataset.get_field(field)
    mark = (getattr(f, "info", None) or {}).get(INFO_KEY) if f is not None else None
    if isinstance(mark, dict) and mark.get("purpose") == "candidates":
        return mark.get("label_field")
    return None


def field_purpose(dataset, field: str) -> str | None:
    """What Stoplight created ``field`` of ``dataset`` for, or None
    (``field``: a sample field, or a frame field as ``frames.<name>``)."""
    f = dataset.get_field(field)
    if f is None:
        return None
    mark = (getattr(f, "info", None) or {}).get(INFO_KEY)
    if isinstance(mark, dict) and mark.get("purpose") in PURPOSES:
        return mark["purpose"]
    for _, config in provenance.stoplight_runs(dataset):
        method = config.stoplight_method
        for purpose, (methods, attr) in PURPOSES.items():
            if method in methods and getattr(config, attr, None) == field:
                return purpose
    return None


def mark_field(dataset, field: str, purpose: str) -> None:
    """Marks an existing ``field`` as Stoplight's, for ``purpose``."""
    f = dataset.get_field(field)
    info = dict(getattr(f, "info", None) or {})
    if info.get(INFO_KEY) != purpose_info(purpose)[INFO_KEY]:
        info.update(purpose_info(purpose))
        f.info = info
        f.save()


def check_field_claim(dataset, field: str, purpose: str, adopt: bool, param: str) -> None:
    """Raises unless ``field`` is free, Stoplight's for ``purpose``, or
    ``adopt`` says the caller takes it over.

    Raises:
        ValueError: naming ``param`` and ``adopt_field``
    """
    if not isinstance(adopt, bool):
        raise ValueError(f"Parameter 'adopt_field' must be True or False; got {adopt!r}")
    if dataset.get_field(field) is None or adopt:
        return
    found = field_purpose(dataset, field)
    if found == purpose:
        return
    what = f"Stoplight created it for {found!r} labels" if found else "Stoplight did not create it"
    raise ValueError(
        f"Parameter '{param}': field {field!r} exists and {what}; writing it would replace labels "
        "that may be a person's. Choose a new field, or pass adopt_field=True to take it over"
    )
