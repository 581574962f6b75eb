"""Where a hand-off goes and with which credentials: server-side only.

An App request must never combine a host it names with credentials the
server holds (that sends the server's API key or password to the
requester's host), nor carry credentials itself (a delegated operation
stores its parameters in plain text in the database). So the hand-off
operators:

- refuse every credential or host parameter (:data:`CREDENTIAL_PARAMS`)
  before anything runs or is queued (:func:`refuse_credential_params`);
- take the tool's URL and credentials from FiftyOne's plugin secrets,
  declared under ``secrets:`` in ``fiftyone.yml`` (:data:`SECRETS`; in
  open-source FiftyOne each resolves from the environment variable of the
  same name, which is also what FiftyOne's own annotation config reads;
  FiftyOne Enterprise stores them as plugin secrets), or else from
  FiftyOne's annotation config (``fo.annotation_config``) of the server;
- load a hand-off's answers only from the host the server is configured
  for: a hand-off whose stored host differs (sent from Python to another
  server) is refused from the App.

Nothing here writes a secret anywhere: run records and the audit log keep
the tool's URL without user info, query or fragment (:func:`public_url`).
"""

from __future__ import annotations

import urllib.parse

#: plugin secrets (fiftyone.yml ``secrets:``) per annotation backend and the
#: ``annotate()`` / ``load_annotations()`` argument each one fills
SECRETS = {
    "labelstudio": {"url": "FIFTYONE_LABELSTUDIO_URL", "api_key": "FIFTYONE_LABELSTUDIO_API_KEY"},
    "cvat": {
        "url": "FIFTYONE_CVAT_URL",
        "username": "FIFTYONE_CVAT_USERNAME",
        "password": "FIFTYONE_CVAT_PASSWORD",
        "email": "FIFTYONE_CVAT_EMAIL",
    },
}
#: annotation backends the App's hand-off operators offer
BACKENDS = tuple(SECRETS)
#: parameters a request may not carry (hosts and credentials of any backend)
CREDENTIAL_PARAMS = (
    "url", "api_key", "username", "password", "email", "headers", "token", "api_token", "access_token",
    "organization", "server", "host",
)


def refuse_credential_params(params) -> None:
    """Raises a ValueError naming any host or credential in ``params``."""
    given = sorted(k for k in CREDENTIAL_PARAMS if params.get(k) not in (None, ""))
    if given:
        raise ValueError(
            f"Parameter(s) {', '.join(repr(k) for k in given)} cannot be given in an operator request: the "
            "annotation tool's URL and credentials come from the server's configuration only (plugin "
            f"secrets {', '.join(sorted({v for s in SECRETS.values() for v in s.values()}))}, or FiftyOne's "
            "annotation config), so that they are never sent to a host a request names nor stored with it"
        )


def _secret(ctx, key: str) -> str | None:
    value = ctx.secrets.get(key) if getattr(ctx, "secrets", None) is not None else None
    value = getattr(value, "value", value)  # a resolved ISecret or its text
    return str(value) if value else None


def check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"Parameter 'backend' must be one of {BACKENDS}; got {backend!r}")
    return backend


def server_credentials(ctx, backend: str) -> dict:
    """The tool's URL and credentials as the server is configured: plugin
    secrets, else FiftyOne's annotation config (the URL is always given
    explicitly, so the host FiftyOne talks to is the configured one).

    Raises:
        ValueError: for an unknown backend, or a configured URL that holds
            user info (credentials belong in the secrets, not the URL,
            which FiftyOne stores with the annotation run)
    """
    import fiftyone as fo

    check_backend(backend)
    creds = {arg: _secret(ctx, key) for arg, key in SECRETS[backend].items()}
    creds = {k: v for k, v in creds.items() if v}
    if "url" not in creds:
        url = (fo.annotation_config.backends.get(backend) or {}).get("url")
        if url:
            creds["url"] = url
    url = creds.get("url")
    if url and urllib.parse.urlsplit(url).username is not None:
        raise ValueError(
            f"The server's {backend} URL holds credentials; put them in "
            f"{', '.join(v for k, v in SECRETS[backend].items() if k != 'url')} instead"
        )
    return creds


def same_host(a: str | None, b: str | None) -> bool:
    """Whether two tool URLs name the same server (scheme, host, port, path)."""
    if not a or not b:
        return False

    def norm(u):
        p = urllib.parse.urlsplit(u.strip())
        port = p.port or {"http": 80, "https": 443}.get(p.scheme)
        return p.scheme.lower(), (p.hostname or "").lower(), port, p.path.rstrip("/")

    return norm(a) == norm(b)


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query and fragment (what may be stored)."""
    if not url:
        return url
    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urllib.parse.urlunsplit((p.scheme, host, p.path, "", ""))
