"""Blocks and records every network access except loopback (tests only).

Put this folder on ``PYTHONPATH``: Python imports ``sitecustomize`` at
startup, before any other code. Connections and name lookups for anything
but 127.0.0.1 / ::1 / localhost are appended to the file named by
``STOPLIGHT_NETLOG`` and then fail, so code that swallows the error is
still caught.
"""

import os
import socket
import traceback

_LOG = os.environ.get("STOPLIGHT_NETLOG")
_LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0"}


def _record(kind, target):
    if _LOG:
        stack = "".join(traceback.format_stack(limit=12)[:-2])
        with open(_LOG, "a") as f:
            f.write(f"=== {kind} {target!r}\n{stack}\n")


def _host(address):
    if isinstance(address, (tuple, list)) and address:
        return str(address[0])
    return None  # AF_UNIX paths and the like stay on this machine


def _guard(kind, address):
    host = _host(address)
    if host is not None and host not in _LOCAL:
        _record(kind, address)
        raise OSError(f"network access blocked by the test: {kind} {address!r}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    _guard("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    _guard("connect", address)
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _guard("sendto", args[-1])
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and str(host) not in _LOCAL:
        name = host.decode() if isinstance(host, bytes) else str(host)
        _record("getaddrinfo", name)
        raise socket.gaierror(socket.EAI_NONAME, f"name lookup blocked by the test: {name}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.sendto = sendto
socket.getaddrinfo = getaddrinfo


def control() -> str:
    """Tries one outside connection (TEST-NET-3 address): ``"connected"``, or
    the error that shows the block was in force in this process."""
    sock = socket.socket()
    sock.settimeout(1)
    try:
        sock.connect(("203.0.113.7", 80))
        return "connected"
    except OSError as e:
        return str(e)
    finally:
        sock.close()
