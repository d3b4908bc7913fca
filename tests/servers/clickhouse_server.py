"""A private ClickHouse server for tests and benchmarks.

Debian's `clickhouse-server` (18.16) is started with a config of its own: a data
folder in a temporary directory, free TCP/HTTP/interserver ports (the interserver
port defaults to 9009, so two instances would collide without it), `listen_host`
127.0.0.1 and a `users.xml` whose default user only accepts loopback connections.
The process runs in its own session and is stopped by PID, never by name, so a
developer's own server is never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from servers import free_port, tcp_reachable
from servers._private_server import PrivateServer

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "apt-get install -y clickhouse-server clickhouse-client"

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_connections>256</max_connections>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


def clickhouse_server_command() -> list[str]:
    """The command that runs a server: `clickhouse-server`, or `clickhouse server`."""
    for candidate in ("clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"):
        found = shutil.which(candidate)
        if found:
            return [found]
    single = shutil.which("clickhouse")
    if single:
        return [single, "server"]
    raise FileNotFoundError(f"clickhouse-server is not installed; install it with: {INSTALL_COMMAND}")


def install_clickhouse_server(timeout: float = 600.0) -> bool:
    """Install Debian's clickhouse-server with apt when it is missing (needs root and
    apt-get); True when a server command is available afterwards."""
    try:
        clickhouse_server_command()
        return True
    except FileNotFoundError:
        pass
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return False
    logger.warning("clickhouse-server is missing; running: %s", INSTALL_COMMAND)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        [apt, "install", "-y", "clickhouse-server", "clickhouse-client"],
        env=env,
        check=False,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        clickhouse_server_command()
        return True
    except FileNotFoundError:
        return False


class ClickHouseServer(PrivateServer):
    """One private server process; a context manager that always stops it (by PID)."""

    _program = "clickhouse-server"
    _term_grace = 5.0

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(data_dir, prefix="bento-clickhouse-")
        self.host = "127.0.0.1"
        self.port = 0
        self.http_port = 0

    def start(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            return
        command = clickhouse_server_command()
        self.port, self.http_port, interserver = free_port(), free_port(), free_port()
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.data_dir / "users.xml").write_text(_USERS)
        config = self.data_dir / "config.xml"
        config.write_text(
            _CONFIG.format(
                dir=self.data_dir, tcp_port=self.port, http_port=self.http_port, interserver_port=interserver
            )
        )
        process = self._launch(
            [*command, f"--config-file={config}"], log_path=self.data_dir / "log" / "stdout.log", cwd=self.data_dir
        )
        self._wait_ready(
            lambda: tcp_reachable(self.host, self.port, timeout=0.2),
            timeout=timeout,
            timeout_message=f"clickhouse-server did not listen on {self.port} within {timeout:.0f}s",
            log_hint=self.data_dir / "log",
        )
        logger.info("clickhouse-server pid %s listening on %s:%s", process.pid, self.host, self.port)
