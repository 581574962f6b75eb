"""What the security tests need: the whole test database as data, requests
the way an attacker sends them, and App servers with a given environment.

- :func:`db_snapshot` / :func:`db_changes`: every document of every
  collection of the tests' MongoDB database (GridFS chunks included), so a
  test can assert that a refused request wrote nothing anywhere;
- :func:`find_in_db`: every stored document (and GridFS chunk) holding one
  of some strings: no secret may ever be stored;
- :func:`http_execute`: one operator request to a real App server's
  ``/operators/execute`` (or the generator route), with parameters no form
  sends; returns the status and the error text the App would get;
- :func:`http_error`: the error text of such an answer, None if it ran;
- :func:`sdk_execute`: the same through ``foo.execute_operator``; returns
  the error text (``None`` if it ran);
- :func:`start_app_server`: an App server whose environment adds ``env``
  (server-side settings such as credentials or a reviewer pin, which a
  request cannot change);
- :class:`Payload`: an object whose unpickling runs code (it creates a
  marker directory), for the checkpoint-loading tests.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

from appkit import AppServer, operator_request, post_json

#: fields FiftyOne itself updates when the App (or a test) merely loads a
#: dataset; they are no write of the operator under test
VOLATILE_KEYS = {"last_loaded_at"}


def _db():
    import fiftyone.core.odm.database as fod

    return fod.get_db_conn()


def _strip(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if k not in VOLATILE_KEYS}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def db_snapshot() -> dict[str, dict]:
    """``{collection: {_id: document}}`` of the whole test database."""
    db = _db()
    out = {}
    for name in sorted(db.list_collection_names()):
        out[name] = {repr(d.get("_id")): _strip(d) for d in db[name].find({})}
    return out


def db_changes(before: dict, after: dict) -> list[str]:
    """Human-readable differences between two :func:`db_snapshot` s."""
    changes = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}), after.get(name, {})
        for key in sorted(set(b) | set(a)):
            if key not in b:
                changes.append(f"{name}: added {key}")
            elif key not in a:
                changes.append(f"{name}: removed {key}")
            elif a[key] != b[key]:
                changes.append(f"{name}: changed {key}")
    return changes


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k, f"{path}.<key>")
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def find_in_db(needles: Iterable[str]) -> list[str]:
    """``collection/_id:path`` of every stored value containing one of
    ``needles``: strings, and bytes (GridFS chunks, binary fields)."""
    needles = [n for n in needles if n]
    raw = [n.encode() for n in needles]
    db = _db()
    hits = []
    for name in db.list_collection_names():
        for doc in db[name].find({}):
            for path, value in _walk(doc):
                if isinstance(value, str) and any(n in value for n in needles):
                    hits.append(f"{name}/{doc.get('_id')}:{path}")
                elif isinstance(value, (bytes, bytearray)) and any(n in bytes(value) for n in raw):
                    hits.append(f"{name}/{doc.get('_id')}:{path}")
    return hits


def http_execute(server: AppServer, uri: str, dataset_name: str, params: dict,
                 generator: bool = False, **extra) -> tuple[int, str]:
    """POSTs one operator request; returns ``(status, response text)``."""
    route = "/operators/execute/generator" if generator else "/operators/execute"
    r = post_json(server, route, operator_request(uri, dataset_name, copy.deepcopy(params), **extra),
                  timeout=300)
    return r.status_code, r.text


def http_error(status: int, text: str) -> str | None:
    """The error of an ``/operators/execute`` answer (HTTP 200 with an
    ``error`` in its body, or an error status), None if it ran."""
    import json

    if status >= 400:
        return text
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("error"):
        return str(body.get("error_message") or body["error"])
    return None


def sdk_execute(uri: str, ctx: dict, **kwargs) -> str | None:
    """Runs an operator through the SDK; returns its error text or None."""
    import fiftyone.operators as foo

    try:
        result = foo.execute_operator(uri, ctx=ctx, **kwargs)
    except Exception as e:  # noqa: BLE001 - the refusal is what is tested
        return f"{type(e).__name__}: {e}"
    if result.error:
        return str(result.error)
    if result.result and isinstance(result.result, dict) and result.result.get("error"):
        return str(result.result["error"])
    return None


def start_app_server(tmp_root: Path, name: str, env: dict[str, str]) -> AppServer:
    """An App server with ``env`` added to the tests' environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = AppServer(log_path=Path(tmp_root) / f"app-server-{name}" / "server.log")
        server.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return server


class Payload:
    """Unpickling this creates the directory ``marker``: code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))
