"""Real database and queue servers for the tests, each started on a loopback port
with a private data folder and configuration, and stopped by its own PID.

- :class:`PostgreSQL`: Debian's ``postgresql`` package; ``initdb`` into a temporary
  folder, then ``postgres`` itself on 127.0.0.1 (no Unix socket in a shared place),
  with password authentication, ``fsync = off`` (a test cluster loses nothing it
  needs on a crash). Run as the ``postgres`` user when the tests run as root, as
  PostgreSQL refuses root.
- :class:`Redis`: Debian's ``redis-server``, with a password and no persistence.
- :class:`RabbitMQ`: Debian's ``rabbitmq-server``, a node of its own (name, config,
  data, Erlang port mapper), a user with a password.

A missing binary skips the test with the reason, or fails it under
``EVENTHUB_REQUIRE_SERVERS=1`` (CI): see :func:`tests.conftest.require_binary`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .conftest import require_binary

#: The test cluster's superuser and its password (a real password: the tests check
#: it never shows in errors).
PG_USER = "eventhub"
PG_PASSWORD = "pg-secret-Zq81vT4m"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin(name: str) -> str:
    places = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    return require_binary(name, *places, package="postgresql")


class PostgreSQL:
    """A PostgreSQL cluster of its own on a loopback port."""

    def __init__(self) -> None:
        initdb = _postgres_bin("initdb")
        postgres = str(Path(initdb).with_name("postgres"))
        self.home = Path(tempfile.mkdtemp(prefix="eventhub-postgres-"))
        self.data = self.home / "data"
        self.port = free_port()
        user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.home, owner.pw_uid, owner.pw_gid)
            user = {"user": owner.pw_uid, "group": owner.pw_gid}
        password_file = self.home / "password"
        password_file.write_text(PG_PASSWORD + "\n")
        if user:
            os.chown(password_file, user["user"], user["group"])
        subprocess.run(
            [
                initdb,
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **user,
        )
        self.process = subprocess.Popen(
            [
                postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.home}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=32MB",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **user,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database (psycopg 3)."""
        return self.url_of("postgres")

    def url_of(self, database: str, *, password: str = PG_PASSWORD) -> str:
        return (
            f"postgresql+psycopg://{PG_USER}:{password}@127.0.0.1:{self.port}"
            f"/{database}"
        )

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
                self.stop()
                raise RuntimeError(f"postgres did not start: {error}")
            with contextlib.suppress(psycopg.OperationalError):
                with self.connect():
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not accept connections within 30 s")

    def connect(self, database: str = "postgres", **options: Any) -> Any:
        """A psycopg connection as the superuser (the tests' own access)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname=database,
            connect_timeout=5,
            **options,
        )

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.home, ignore_errors=True)


#: The test Redis server's password (checked never to show in errors).
REDIS_PASSWORD = "redis-secret-Hq72xW9p"


class Redis:
    """A redis-server of its own on a loopback port: no persistence, a password,
    its log in its folder. :meth:`kill` and :meth:`start` make an outage."""

    def __init__(self) -> None:
        self.binary = require_binary(
            "redis-server", "/usr/bin/redis-server", package="redis-server"
        )
        self.home = Path(tempfile.mkdtemp(prefix="eventhub-redis-"))
        self.port = free_port()
        self.config = self.home / "redis.conf"
        self.config.write_text(
            f"""\
port {self.port}
bind 127.0.0.1
protected-mode yes
daemonize no
dir {self.home}
logfile {self.home / "redis.log"}
save ""
appendonly no
requirepass {REDIS_PASSWORD}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start: {self.log()}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not listen within 20 s")

    def client(self) -> Any:
        """A redis-py client of the tests' own."""
        import redis

        return redis.Redis.from_url(self.url)

    def log(self) -> str:
        path = self.home / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (its data goes with it: nothing is persisted)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.home, ignore_errors=True)


#: The test RabbitMQ user and password.
RABBIT_USER = "eventhub"
RABBIT_PASSWORD = "amqp-secret-Vb38nQ1z"


class RabbitMQ:
    """A RabbitMQ node of its own: a private node name, config, data and log
    folders, its AMQP listener on a loopback port, its own Erlang port mapper
    (``ERL_EPMD_PORT``) and distribution port, so it shares nothing with another
    node on the machine."""

    def __init__(self) -> None:
        server = require_binary(
            "rabbitmq-server",
            "/usr/lib/rabbitmq/bin/rabbitmq-server",
            package="rabbitmq-server",
        )
        # The wrapper in /usr/sbin switches to the rabbitmq user; the node's own
        # script runs as whoever starts it.
        script = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.server = str(script) if script.exists() else server
        self.ctl = str(Path(self.server).with_name("rabbitmqctl"))
        self.home = Path(tempfile.mkdtemp(prefix="eventhub-rabbitmq-"))
        self.port = free_port()
        self.epmd_port = free_port()
        self.node = f"eventhub-test-{self.port}@localhost"
        (self.home / "rabbitmq.conf").write_text(
            f"""\
listeners.tcp.default = 127.0.0.1:{self.port}
default_user = {RABBIT_USER}
default_pass = {RABBIT_PASSWORD}
log.file.level = warning
log.console = false
"""
        )
        (self.home / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "rabbitmq.pid"),
        }
        self.env.pop("NOTIFY_SOCKET", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.server],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=(self.home / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import logging

        import pika

        # pika logs every refused attempt at ERROR while the node boots.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server did not start: {self.log()}")
            with contextlib.suppress(Exception):
                connection = pika.BlockingConnection(pika.URLParameters(self.url))
                connection.close()
                return
            time.sleep(0.25)
        raise RuntimeError(f"rabbitmq did not accept AMQP within 90 s: {self.log()}")

    def connection(self) -> Any:
        """A pika connection of the tests' own."""
        import pika

        return pika.BlockingConnection(pika.URLParameters(self.url))

    def log(self) -> str:
        parts = [
            path.read_text(errors="replace")[-3000:]
            for path in [self.home / "stdout.log", *self.home.glob("log/*.log")]
            if path.exists()
        ]
        return "\n".join(parts)

    def kill(self) -> None:
        """SIGKILL the node (its process group: the Erlang VM and its helpers)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # The node's own port mapper, started on ERL_EPMD_PORT for it alone.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["epmd", "-port", str(self.epmd_port), "-kill"],
                env=self.env,
                capture_output=True,
                timeout=10,
            )
        shutil.rmtree(self.home, ignore_errors=True)
