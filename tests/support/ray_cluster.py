"""A real multi-node Ray cluster on 127.0.0.1, for tests and benchmarks.

Each node is a ``ray start --block`` process started in its own session;
Ray's processes for that node (GCS, raylet, workers, agents) stay in that
session, so a node is killed (SIGKILL of each of its processes, as a lost
machine) or stopped without touching any other Ray on the machine (never
``ray stop``, which stops every Ray of every user). Ports are picked free
and the temp dir is private, so several clusters can run side by side.
The cluster uses Ray's token authentication with its own token
(:attr:`LocalCluster.client_env` holds what a driver needs to connect),
never the user's ``~/.ray/auth_token``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))

#: node failure detection in seconds rather than Ray's default ~30 s
FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Every live process of session ``sid`` (a node's processes); zombies,
    dead but not yet reaped, are left out."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid and not _zombie(int(entry)):
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "pid (comm) state ...": comm may hold spaces and parentheses
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # gone


def private_auth(directory: Path | None = None) -> dict[str, str]:
    """Writes a new Ray auth token; returns the environment that uses it.

    Set it in a driver's environment before it imports ``ray`` (Ray reads
    its authentication settings at import), and pass it to
    :class:`LocalCluster`.
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="slray-auth-"))
        atexit.register(shutil.rmtree, directory, True)
    token = Path(directory) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


class Node:
    """One ``ray start`` process and its session."""

    def __init__(self, proc: subprocess.Popen, node_manager_port: int, log: Path) -> None:
        self.proc = proc
        self.node_manager_port = node_manager_port
        self.log = log

    @property
    def sid(self) -> int:
        return self.proc.pid  # started with start_new_session: its pid is the session id

    def signal(self, sig: int) -> int:
        n = 0
        for pid in session_pids(self.sid):
            try:
                os.kill(pid, sig)
                n += 1
            except OSError:
                pass
        return n

    def alive(self) -> bool:
        return bool(session_pids(self.sid))


class LocalCluster:
    """A head node and worker nodes, each a separate process tree.

    Use as a context manager; every node is stopped on exit, also when the
    body fails. ``cpus`` and ``object_store_mb`` are per node.
    """

    def __init__(self, cpus: int = 1, object_store_mb: int = 80, auth: dict | None = None) -> None:
        self.cpus = cpus
        self.object_store = object_store_mb * 1024 * 1024
        self.tmp = Path(tempfile.mkdtemp(prefix="slray-"))  # short: Ray's socket paths
        #: what a driver process needs in its environment (before it imports
        #: ray, which reads it once) to connect
        self.client_env = auth or private_auth(self.tmp)
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **FAST_FAILURE_DETECTION,
                        **self.client_env)
        for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
            self.env.pop(var, None)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []

    def __enter__(self) -> "LocalCluster":
        try:
            self.start_head()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def _node_args(self) -> tuple[list[str], int]:
        nm = free_port()
        args = [
            "--num-cpus", str(self.cpus), "--num-gpus", "0",
            "--object-store-memory", str(self.object_store),
            "--node-ip-address", "127.0.0.1", "--node-manager-port", str(nm),
            "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()),
            "--metrics-export-port", str(free_port()),
            "--disable-usage-stats", "--block",
        ]
        return args, nm

    def _start(self, args: list[str], nm: int) -> Node:
        log = self.tmp / f"node{len(self.nodes)}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([RAY, "start", *args], stdout=f, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True)
        node = Node(proc, nm, log)
        self.nodes.append(node)
        return node

    def start_head(self, timeout: float = 180.0) -> Node:
        args, nm = self._node_args()
        head = self._start(["--head", "--port", str(self.port), "--temp-dir", str(self.tmp),
                            "--include-dashboard", "false", "--dashboard-port", str(free_port()),
                            *args], nm)
        self._wait_listening(head, self.port, timeout)  # GCS
        self._wait_listening(head, nm, timeout)  # the head's raylet: drivers attach to it
        return head

    def add_node(self, timeout: float = 180.0) -> Node:
        args, nm = self._node_args()
        node = self._start(["--address", self.address, *args], nm)
        self._wait_listening(node, nm, timeout)
        return node

    @staticmethod
    def _wait_listening(node: Node, port: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"Ray node exited: {node.log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"Ray node not listening on {port} after {timeout} s")
                time.sleep(0.2)

    def connect(self, timeout: float = 180.0) -> None:
        """``ray.init`` to this cluster, retried until the head's raylet has
        registered (on a loaded machine it can lag behind its port)."""
        import ray

        deadline = time.time() + timeout
        while True:
            try:
                ray.init(address=self.address, logging_level="WARNING")
                return
            except (ConnectionError, RuntimeError):
                ray.shutdown()
                if time.time() > deadline:
                    raise
                time.sleep(2)

    def alive_nodes(self) -> list[dict]:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def wait_for_nodes(self, n: int, timeout: float = 240.0) -> list[dict]:
        """Waits (connected with ``ray.init(address)``) until ``n`` nodes are alive."""
        deadline = time.time() + timeout
        while True:
            nodes = self.alive_nodes()
            if len(nodes) == n:
                return nodes
            if time.time() > deadline:
                raise RuntimeError(f"{len(nodes)} Ray nodes alive after {timeout} s, {n} expected")
            time.sleep(0.3)

    def node_id(self, node: Node) -> str | None:
        """The Ray node id of ``node`` (matched by its node manager port)."""
        for n in self.alive_nodes():
            if n.get("NodeManagerPort") == node.node_manager_port:
                return n["NodeID"]
        return None

    def kill(self, node: Node, timeout: float = 60.0) -> None:
        """SIGKILLs every process of ``node``: a machine lost mid-run.

        Repeated until none is left: a process the node's raylet forked
        while the first signals went out is killed too."""
        _kill_until_gone([node], timeout)

    def shutdown(self, grace: float = 5.0) -> None:
        """Stops every node: SIGTERM, then SIGKILL what is left after
        ``grace``, until no process of any node is left."""
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(n.alive() for n in self.nodes):
            time.sleep(0.2)
        _kill_until_gone(self.nodes, 60.0)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_until_gone(nodes: list[Node], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = [node for node in nodes if node.signal(signal.SIGKILL)]
        for node in nodes:
            if node.proc.poll() is None:
                try:
                    node.proc.wait(max(0.1, min(10.0, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
        if not left or not any(node.alive() for node in nodes):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray processes left after SIGKILL: "
                               f"{[session_pids(n.sid) for n in nodes]}")
        time.sleep(0.1)
