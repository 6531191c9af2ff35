"""A throwaway MariaDB server on loopback, from Debian's packages (hack/install-debian-deps
installs them): for the data-path tests of the backup and restore scripts and for the
dump benchmark. It listens on 127.0.0.1 with a data directory of the caller's choosing,
and root can log in over TCP with a password, as the Jobs do."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

START_TIMEOUT_S: Final = 60.0
SQL_TIMEOUT_S: Final = 60.0
SERVER_TOOLS: Final = ("mariadbd", "mariadb-install-db")
CLIENT_TOOLS: Final = ("mariadb", "mysql", "mysqldump")


class SQLError(RuntimeError):
    pass


class ServerError(RuntimeError):
    """The server could not be started: a tool is missing, or it exited or never answered."""


@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    socket: Path
    user: str
    password: str

    def client_env(self, database: str) -> dict[str, str]:
        """The environment the Jobs give the scripts, pointed at this server."""
        return {
            "PATH": os.environ["PATH"],
            "MYSQL_HOST": self.host,
            "MYSQL_PORT": str(self.port),
            "MYSQL_USER": self.user,
            "MYSQL_PWD": self.password,
            "MYSQL_DATABASE": database,
        }

    def client(self, statement: str, database: str | None = None) -> list[str]:
        """The command line that runs SQL as root over the socket (for sessions that a
        caller keeps open, such as a sleeping query)."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "--user=root"]
        command += ["--batch", "--skip-column-names", f"--execute={statement}"]
        if database is not None:
            command.append(f"--database={database}")
        return command

    def over_tcp(self, tool: str, *args: str) -> list[str]:
        """The command line of a client tool that connects over TCP as `user`, as the
        Jobs' scripts do (the password comes from MYSQL_PWD, never the command line)."""
        return [
            tool,
            "--protocol=TCP",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.user}",
            *args,
        ]

    def sql(
        self, statement: str, database: str | None = None, timeout_s: float = SQL_TIMEOUT_S
    ) -> str:
        """Runs SQL as root over the socket; returns tab-separated rows."""
        command = self.client(statement, database)
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise SQLError(f"{statement!r} failed: {done.stderr.strip()}")
        return done.stdout


def find_tool(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


def missing_tools() -> list[str]:
    return [tool for tool in (*SERVER_TOOLS, *CLIENT_TOOLS) if find_tool(tool) is None]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(base: Path, root_password: str) -> Iterator[MariaDB]:
    """A new server with its data under `base`, stopped (and waited for) on exit."""
    missing = missing_tools()
    if missing:
        raise ServerError(f"missing {', '.join(missing)}: run hack/install-debian-deps")
    server, install_db = find_tool("mariadbd"), find_tool("mariadb-install-db")
    if server is None or install_db is None:
        raise ServerError("mariadbd or mariadb-install-db vanished")
    datadir, sock, log = base / "data", base / "mysqld.sock", base / "error.log"
    user = getpass.getuser()
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_loopback_port()
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--user={user}",
            f"--log-error={log}",
            f"--pid-file={base / 'mysqld.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        instance = MariaDB("127.0.0.1", port, sock, "root", root_password)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise ServerError(f"mariadbd exited: {log.read_text()[-2000:]}")
            try:
                instance.sql("SELECT 1")
                break
            except SQLError:
                if time.monotonic() > deadline:
                    raise ServerError(f"mariadbd not up in {START_TIMEOUT_S}s") from None
                time.sleep(0.2)
        # The scripts connect over TCP, as the Jobs do, with a password.
        instance.sql(
            f"CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY '{root_password}';"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        )
        yield instance
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ends a server process: SIGTERM, then SIGKILL if it has not exited 30 s later."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
