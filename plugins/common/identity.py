"""Who is acting: the one place a review decision's author is decided.

Every operator parameter is attacker-controlled, so a request may never
*choose* whose name a decision carries where the server knows better. In
order:

=================== ===========================================================
source              the name is
=================== ===========================================================
``login``           the signed-in App user (``ctx.user``: FiftyOne with user
                    accounts); a name in the request is ignored
``pinned``          ``STOPLIGHT_REVIEWER`` in the server's environment (one
                    person per App server, e.g. a personal App on a shared
                    machine); a name in the request is ignored
``self-declared``   typed by the person (open-source FiftyOne has no login):
                    recorded *as self-declared*, because anyone who can open
                    the App can type any name
``os-user``         nothing of the above: the operating-system user the App
                    server (or the Python process) runs as
``caller``          given by Python code calling the core functions directly
``annotation-tool`` answers loaded from an annotation tool (hand-off)
=================== ===========================================================

The source is stored with every decision in the audit log (``user_source``),
undo of "my last action" only ever undoes actions of the same identity (name
*and* source), and acting on a decision another named reviewer made is
logged as such (see :mod:`...review.decisions`).

Use :func:`resolve_identity` from operators and panels: given ``ctx`` and,
optionally, a name the person declared (a panel can keep one per session),
it returns the :class:`Identity` to record.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re

#: the server-side pin: the identity every App request of this server acts as
PIN_ENV = "STOPLIGHT_REVIEWER"
#: sources whose name a request cannot choose
VERIFIED_SOURCES = ("login", "pinned")
SOURCES = ("login", "pinned", "self-declared", "os-user", "caller", "annotation-tool")
#: longest name kept (longer ones are refused)
MAX_NAME_LENGTH = 128


@dataclasses.dataclass(frozen=True)
class Identity:
    """A reviewer's name and where it comes from (see the module docstring).

    Attributes:
        name: what is recorded as ``reviewed_by``
        source: one of :data:`SOURCES`
    """

    name: str
    source: str

    @property
    def verified(self) -> bool:
        """Whether the server, not the request, vouches for the name."""
        return self.source in VERIFIED_SOURCES

    def __str__(self) -> str:
        return self.name if self.verified else f"{self.name} ({self.source})"


def clean_name(name, param: str = "user") -> str:
    """A declared name, stripped; refuses empty, overlong or control-character
    names (they would forge or garble the audit log and the App's text)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Parameter '{param}' must be a non-empty name; got {name!r}")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or re.search(r"[\x00-\x1f\x7f]", name):
        raise ValueError(f"Parameter '{param}' must be a printable name of at most {MAX_NAME_LENGTH} characters")
    return name


def login_name(ctx) -> str | None:
    """The signed-in App user's email, name or id, when FiftyOne knows one."""
    user = getattr(ctx, "user", None)
    for attr in ("email", "name", "id"):
        value = getattr(user, attr, None) if user is not None else None
        if value:
            return str(value)
    return None


def pinned_name() -> str | None:
    """The server's pinned reviewer (``STOPLIGHT_REVIEWER``), if set."""
    value = os.environ.get(PIN_ENV, "").strip()
    return clean_name(value, PIN_ENV) if value else None


def os_user() -> str:
    """The operating-system user of this process (``"unknown"`` if none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (some containers)
        return "unknown"


def resolve_identity(ctx, declared: str | None = None) -> Identity:
    """The identity an App request acts as.

    Args:
        ctx: the operator's or panel's execution context
        declared: a name the person typed (e.g. once per session in a
            panel); used only where there is neither a login nor a pin,
            and then recorded as ``self-declared``

    Returns:
        an :class:`Identity`

    Raises:
        ValueError: for a declared name that is empty, overlong or holds
            control characters
    """
    name = login_name(ctx)
    if name:
        return Identity(name, "login")
    name = pinned_name()
    if name:
        return Identity(name, "pinned")
    if declared is not None and declared != "":
        return Identity(clean_name(declared), "self-declared")
    return Identity(os_user(), "os-user")


def as_identity(user: "str | Identity | None", source: str = "caller") -> Identity:
    """The identity of a core function's ``user`` argument: an
    :class:`Identity` as is, a name from Python code (``source``), or, for
    ``None``, the operating-system user."""
    if isinstance(user, Identity):
        if user.source not in SOURCES:
            raise ValueError(f"Unknown identity source {user.source!r}; one of {SOURCES}")
        return user
    if user is None or user == "":
        return Identity(os_user(), "os-user")
    return Identity(clean_name(str(user)), source)
