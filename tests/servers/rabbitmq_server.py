"""A private RabbitMQ node for tests that must stop and restart the broker.

The machine's shared broker (`rabbit@localhost` on 5672) must never be restarted by a
test, so this starts a second node from Debian's `rabbitmq-server` with everything of its
own: node name `bento-<pid>-<n>@localhost`, free AMQP and distribution ports, its own
mnesia / log folders, config (listener on 127.0.0.1 only, `guest` allowed), an empty
plugin list, its own HOME (so its own Erlang cookie) and an empty env file (so
`/etc/rabbitmq/rabbitmq-env.conf`, which names the shared node, is not read).

Debian's `/usr/sbin/rabbitmq-server` and `rabbitmqctl` wrappers switch to the `rabbitmq`
user (and its HOME and cookie), so the scripts under `/usr/lib/rabbitmq/bin` are run
directly. The epmd daemon is shared by every node on the machine; that is fine, node
names differ. If none runs, the first node starts one (bound to 127.0.0.1).

`stop()` sends SIGTERM to the launcher script's PID (it stops the VM gracefully, as
`rabbitmqctl stop` would) and `start()` again boots the SAME node on the SAME data folder
and ports, so durable queues and persistent messages survive and clients reconnect to
the same URL. Booting takes about 5-10 s on a 2-core machine.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from itertools import count
from pathlib import Path

import pytest

from servers import free_port, in_ci, tcp_reachable
from servers._private_server import PrivateServer

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "apt-get install -y rabbitmq-server"
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD_PORT = 4369
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_NODE_NUMBERS = count(1)

_CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users = none
log.console = false
log.file.level = warning
"""


def rabbitmq_server_installed() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and (RABBITMQ_BIN / "rabbitmqctl").exists()


def require_rabbitmq_server() -> None:
    """Fail (CI=true) or skip (locally) the calling test when rabbitmq-server is not installed."""
    if rabbitmq_server_installed():
        return
    reason = f"rabbitmq-server is not installed (no {RABBITMQ_BIN}/rabbitmq-server); run: {INSTALL_COMMAND}"
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def amqp_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True once the broker answers the AMQP 0-9-1 header with a method frame (Connection.Start).

    An open TCP port is not enough: the listener may accept before the broker is booted."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_AMQP_HEADER)
            first = sock.recv(1)
    except OSError:
        return False
    return first == b"\x01"


def epmd_names() -> str:
    """What the shared epmd lists (empty when it is not running)."""
    epmd = shutil.which("epmd")
    if epmd is None or not tcp_reachable("127.0.0.1", EPMD_PORT, timeout=0.5):
        return ""
    result = subprocess.run([epmd, "-names"], capture_output=True, text=True, timeout=10, check=False)
    return result.stdout


class RabbitMQServer(PrivateServer):
    """One private RabbitMQ node; stop/start keep its node name, ports and data folder."""

    _program = "rabbitmq-server"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(data_dir, prefix="bento-rabbitmq-")
        self.host = "127.0.0.1"
        self.port = 0
        self.dist_port = 0
        self.node_name = f"bento-{os.getpid()}-{next(_NODE_NUMBERS)}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def environment(self) -> dict[str, str]:
        """The variables that make the scripts address this node and nothing else."""
        base = self.data_dir
        return {
            **os.environ,
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _prepare(self) -> None:
        """First start only: pick ports and write the folders and files; restarts reuse them."""
        if self.port:
            return
        if not rabbitmq_server_installed():
            raise FileNotFoundError(f"rabbitmq-server is not installed; install it with: {INSTALL_COMMAND}")
        self.port, self.dist_port = free_port(), free_port()
        for sub in ("home", "mnesia", "log"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.data_dir / "rabbitmq.conf").write_text(_CONFIG.format(port=self.port))
        (self.data_dir / "enabled_plugins").write_text("[].\n")
        (self.data_dir / "rabbitmq-env.conf").write_text("# empty: keeps /etc/rabbitmq/rabbitmq-env.conf out\n")

    def start(self, timeout: float = 60.0) -> None:
        """Boot the node (again, on the same data folder) and wait until AMQP answers."""
        if self.process is not None:
            return
        self._prepare()
        short_name = self.node_name.split("@", 1)[0]
        if f"name {short_name} at port" in epmd_names():
            raise RuntimeError(f"a node named {self.node_name} is already registered with epmd")
        for port in (self.port, self.dist_port):
            if tcp_reachable(self.host, port, timeout=0.2):
                raise RuntimeError(f"port {port} of private node {self.node_name} is taken by another process")
        process = self._launch(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            log_path=self.data_dir / "log" / "stdout.log",
            cwd=self.data_dir,
            env=self.environment(),
        )
        took = self._wait_ready(
            lambda: amqp_ready(self.host, self.port, timeout=0.5),
            timeout=timeout,
            timeout_message=f"RabbitMQ node {self.node_name} did not answer AMQP within {timeout:.0f}s",
            log_hint=self.data_dir / "log",
            interval=0.1,
        )
        logger.info(
            "RabbitMQ node %s (pid %s) ready on %s:%s in %.1fs", self.node_name, process.pid, self.host, self.port, took
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop by PID (SIGTERM); SIGKILL to the node's own process group if it hangs."""
        super().stop(timeout)

    def _kill_hard(self, process: subprocess.Popen[bytes]) -> None:
        self._kill_group(process.pid)

    def _after_stop(self, process: subprocess.Popen[bytes]) -> None:
        # The launcher script exits after the VM; anything left in the node's session goes too.
        self._kill_group(process.pid)

    def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay down for `downtime` seconds, start again on the same data folder."""
        self.stop()
        time.sleep(downtime)
        self.start()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n <this node> ARGS` with this node's cookie; return its stdout."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node_name, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): {result.stderr[:500]}")
        return result.stdout

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
