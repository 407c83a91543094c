"""Real local services for development, tests and CI: a Kafka KRaft broker and Redis.

Kafka runs from the official jars on Maven Central (fetched once with ``mvn`` into
``.services/kafka/libs``) as a single combined broker+controller on loopback; Redis is Debian's
``redis-server`` (installed with ``apt-get`` when missing and we are root). Nothing here needs
Docker; ``docker-compose.yml`` at the repository root is the equivalent for people who have it.

``up`` is idempotent: a service that already answers on the configured address is used as it is
("external") and never touched by ``down``, which stops only the processes whose PID files we
wrote, after checking that each PID still belongs to the process we started.

Command line (the same as ``quorum services``, usable before the package CLI is installed)::

    python -m quorum.services up|down|status [--only kafka|redis]

``QUORUM_KAFKA_BOOTSTRAP`` (``host:port``) and ``QUORUM_REDIS_URL`` (``redis://host:port/db``)
override the addresses. The state folder (jars, configs, data, logs, PID files) is ``.services``
in the working directory, or ``QUORUM_SERVICES_HOME``; nothing is written next to this module.
Development-only tooling: nothing in ``streams/`` (the runtime I/O) imports it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "SERVICES",
    "ServiceConfig",
    "ServiceError",
    "ServiceState",
    "ServiceStatus",
    "down",
    "kafka_dependencies",
    "main",
    "new_cluster_id",
    "parse_bootstrap",
    "parse_redis_url",
    "render_log4j2_properties",
    "render_pom",
    "render_redis_conf",
    "render_server_properties",
    "status",
    "up",
]

#: Kafka release run locally (and by docker-compose.yml). Verified here with confluent-kafka 2.16,
#: aiokafka 0.14 and faust-streaming 0.15.3.
KAFKA_VERSION = "4.2.2"
#: Kafka 4.x publishes slf4j-api 1.7.36 but no logging backend: pin log4j2 and its slf4j 1.x
#: binding (``log4j-slf4j-impl``, not ``-slf4j2-impl``) to the version kafka-server 4.2.2 uses.
LOG4J_VERSION = "2.25.5"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

KAFKA_READY_TIMEOUT_S = 180.0
REDIS_READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0
INT64_MAX = 2**63 - 1

BROKER_JVM_OPTS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
TOOL_JVM_OPTS: tuple[str, ...] = ("-Xmx256m", "-Djava.awt.headless=true")

SERVICES: tuple[str, ...] = ("kafka", "redis")

Log = Callable[[str], None]


class ServiceError(RuntimeError):
    """A service could not be fetched, started, reached or stopped."""


def _default_home() -> Path:
    """``.services`` in the working directory (never next to the installed package: that can be
    a read-only site-packages). ``QUORUM_SERVICES_HOME`` overrides it (``ServiceConfig.from_env``).
    """
    return Path.cwd().resolve() / ".services"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ServiceConfig:
    """Where the local services listen and where their files live."""

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    controller_port: int = 9093
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    kafka_version: str = KAFKA_VERSION
    home: Path = field(default_factory=_default_home)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ServiceConfig:
        """Defaults, then ``QUORUM_KAFKA_BOOTSTRAP`` / ``QUORUM_REDIS_URL`` /
        ``QUORUM_SERVICES_HOME`` from ``environ`` (default ``os.environ``), then ``overrides``.
        """
        env = os.environ if environ is None else environ
        cfg = cls()
        bootstrap = env.get("QUORUM_KAFKA_BOOTSTRAP", "").strip()
        if bootstrap:
            host, port = parse_bootstrap(bootstrap)
            cfg = replace(cfg, kafka_host=host, kafka_port=port)
        redis_url = env.get("QUORUM_REDIS_URL", "").strip()
        if redis_url:
            host, port, db = parse_redis_url(redis_url)
            cfg = replace(cfg, redis_host=host, redis_port=port, redis_db=db)
        home = env.get("QUORUM_SERVICES_HOME", "").strip()
        if home:
            cfg = replace(cfg, home=Path(home).expanduser().resolve())
        if overrides:
            cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
        return cfg

    # addresses
    @property
    def kafka_bootstrap(self) -> str:
        return f"{_host_for_url(self.kafka_host)}:{self.kafka_port}"

    @property
    def controller_address(self) -> str:
        return f"{_host_for_url(self.kafka_host)}:{self.controller_port}"

    @property
    def redis_address(self) -> str:
        return f"{_host_for_url(self.redis_host)}:{self.redis_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_address}/{self.redis_db}"

    # files
    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_dir / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def server_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.kafka_dir / "log4j2.properties"

    @property
    def tools_log4j_config(self) -> Path:
        return self.kafka_dir / "tools-log4j2.properties"

    @property
    def broker_log(self) -> Path:
        return self.kafka_dir / "broker.log"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def redis_data(self) -> Path:
        return self.redis_dir / "data"

    @property
    def redis_log(self) -> Path:
        return self.redis_dir / "redis.log"

    @property
    def redis_pid_file(self) -> Path:
        return self.redis_dir / "redis.pid"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _parse_port(text: str, what: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{what}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{what}: port {port} out of range")
    return port


def parse_bootstrap(value: str, default_port: int = 9092) -> tuple[str, int]:
    """``host:port`` (the first entry of a comma list; a ``kafka://`` style scheme and IPv6
    brackets are accepted) -> ``(host, port)``."""
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    first = first.rstrip("/")
    if not first:
        raise ValueError(f"QUORUM_KAFKA_BOOTSTRAP: no host in {value!r}")
    if first.startswith("["):
        host, sep, rest = first[1:].partition("]")
        if not sep or not host:
            raise ValueError(f"QUORUM_KAFKA_BOOTSTRAP: bad IPv6 address in {value!r}")
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise ValueError(f"QUORUM_KAFKA_BOOTSTRAP: bad address {value!r}")
        return host, _parse_port(rest[1:], "QUORUM_KAFKA_BOOTSTRAP")
    if first.count(":") > 1:
        raise ValueError(f"QUORUM_KAFKA_BOOTSTRAP: put IPv6 addresses in brackets: {value!r}")
    host, sep, port_text = first.partition(":")
    if not host:
        raise ValueError(f"QUORUM_KAFKA_BOOTSTRAP: no host in {value!r}")
    return host, _parse_port(port_text, "QUORUM_KAFKA_BOOTSTRAP") if sep else default_port


def parse_redis_url(url: str) -> tuple[str, int, int]:
    """``redis://[user:password@]host[:port][/db]`` -> ``(host, port, db)``."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"QUORUM_REDIS_URL: expected a redis:// URL, got {url!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"QUORUM_REDIS_URL: bad port in {url!r}") from None
    host = parts.hostname or "127.0.0.1"
    path = parts.path.strip("/")
    if not path:
        db = 0
    elif path.isdigit():
        db = int(path)
    else:
        raise ValueError(f"QUORUM_REDIS_URL: database {path!r} is not a number")
    return host, port, db


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _kafka_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise ValueError(f"bad Kafka version {version!r}") from None


# --------------------------------------------------------------------------- rendering


def render_server_properties(cfg: ServiceConfig) -> str:
    """server.properties for one combined broker+controller node listening on loopback only.

    Static controller voters (``controller.quorum.voters``), so the storage is formatted without
    ``--standalone`` and the ports can change later without reformatting.
    """
    if _kafka_major(cfg.kafka_version) < 4:
        raise ValueError(f"Kafka {cfg.kafka_version}: this module renders 4.x configuration only")
    host = _host_for_url(cfg.kafka_host)
    broker = f"PLAINTEXT://{host}:{cfg.kafka_port}"
    controller = f"CONTROLLER://{host}:{cfg.controller_port}"
    props: list[tuple[str, object]] = [
        ("process.roles", "broker,controller"),
        ("node.id", 1),
        ("controller.quorum.voters", f"1@{cfg.controller_address}"),
        ("listeners", f"{broker},{controller}"),
        ("advertised.listeners", f"{broker},{controller}"),
        ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("log.dirs", cfg.kafka_data.resolve()),
        ("num.partitions", 6),
        ("default.replication.factor", 1),
        ("min.insync.replicas", 1),
        ("offsets.topic.replication.factor", 1),
        # The default (50) makes the first consumer-group join slow on a laptop.
        ("offsets.topic.num.partitions", 1),
        ("transaction.state.log.replication.factor", 1),
        ("transaction.state.log.min.isr", 1),
        ("transaction.state.log.num.partitions", 1),
        ("share.coordinator.state.topic.replication.factor", 1),
        ("share.coordinator.state.topic.min.isr", 1),
        ("group.initial.rebalance.delay.ms", 0),
        ("auto.create.topics.enable", "true"),
        ("num.network.threads", 2),
        ("num.io.threads", 2),
        # The default preallocates 128 MiB of heap for the log cleaner.
        ("log.cleaner.dedupe.buffer.size", 16 * 1024 * 1024),
        # Replayed market data carries old (or skewed) event timestamps: accept them all.
        ("log.message.timestamp.after.max.ms", INT64_MAX),
        ("log.message.timestamp.before.max.ms", INT64_MAX),
    ]
    head = (
        "# Generated by quorum/services.py: a single-node KRaft broker+controller for local use.\n"
        f"# Kafka {cfg.kafka_version}; listens on loopback only. Edits are overwritten by `up`.\n"
    )
    return head + "".join(f"{key}={value}\n" for key, value in props)


def render_log4j2_properties(*, level: str = "INFO", stderr: bool = False) -> str:
    """A console-only log4j2 configuration (the broker's console goes to broker.log)."""
    target = "SYSTEM_ERR" if stderr else "SYSTEM_OUT"
    return (
        "# Generated by quorum/services.py\n"
        "status = warn\n"
        "name = quorum-kafka\n"
        # Keep logging while Kafka's own shutdown hook runs (else the log stops mid-shutdown).
        "shutdownHook = disable\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDOUT\n"
        f"appender.console.target = {target}\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        f"rootLogger.level = {level}\n"
        "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        "logger.state.name = state.change.logger\n"
        "logger.state.level = WARN\n"
        "logger.request.name = kafka.request.logger\n"
        "logger.request.level = WARN\n"
        "logger.clients.name = org.apache.kafka.clients\n"
        "logger.clients.level = WARN\n"
    )


def kafka_dependencies(cfg: ServiceConfig) -> list[tuple[str, str, str]]:
    """``(groupId, artifactId, version)`` of everything the broker needs at runtime."""
    if _kafka_major(cfg.kafka_version) < 4:
        raise ValueError(f"Kafka {cfg.kafka_version}: only 4.x is supported here")
    log4j = "org.apache.logging.log4j"
    return [
        ("org.apache.kafka", "kafka_2.13", cfg.kafka_version),
        (log4j, "log4j-api", LOG4J_VERSION),
        (log4j, "log4j-core", LOG4J_VERSION),
        (log4j, "log4j-slf4j-impl", LOG4J_VERSION),
    ]


def render_pom(cfg: ServiceConfig) -> str:
    """A throwaway ``packaging=pom`` project whose runtime dependencies are the broker's jars."""
    deps = "".join(
        "    <dependency>\n"
        f"      <groupId>{group}</groupId>\n"
        f"      <artifactId>{artifact}</artifactId>\n"
        f"      <version>{version}</version>\n"
        "    </dependency>\n"
        for group, artifact, version in kafka_dependencies(cfg)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- Generated by quorum/services.py: only used to copy the Kafka broker jars. -->\n"
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.quorum</groupId>\n"
        "  <artifactId>kafka-broker-libs</artifactId>\n"
        f"  <version>{cfg.kafka_version}</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{deps}"
        "  </dependencies>\n"
        "</project>\n"
    )


def render_redis_conf(cfg: ServiceConfig) -> str:
    """redis.conf: loopback only, no persistence, runs in the foreground (we own the PID)."""
    return (
        "# Generated by quorum/services.py: a throwaway local Redis. Edits are overwritten.\n"
        f"bind {cfg.redis_host}\n"
        f"port {cfg.redis_port}\n"
        "protected-mode yes\n"
        "daemonize no\n"
        'save ""\n'
        "appendonly no\n"
        f'dir "{cfg.redis_data.resolve()}"\n'
        'logfile ""\n'
        "databases 16\n"
    )


def new_cluster_id() -> str:
    """A Kafka cluster id like ``kafka-storage random-uuid`` makes (url-safe base64, 22 chars).

    Made here because the storage tool prints log lines on stdout next to the id.
    """
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        # Kafka reserves the all-zero and ...01 ids and avoids a leading dash (CLI parsing).
        if int.from_bytes(raw, "big") > 1 and not text.startswith("-"):
            return text


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ServiceState:
    """One service as seen from here."""

    name: str
    address: str
    running: bool
    pid: int | None = None
    detail: str = ""

    @property
    def managed(self) -> bool:
        """Started by us (our PID file names a live process that is ours)."""
        return self.pid is not None

    @property
    def state(self) -> str:
        if self.running:
            return "running"
        return "starting" if self.managed else "stopped"

    @property
    def owner(self) -> str:
        if self.managed:
            return f"managed (pid {self.pid})"
        return "external" if self.running else "-"

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.name, self.state, self.owner, self.address, self.detail)


@dataclass(frozen=True)
class ServiceStatus:
    """Kafka and Redis together; ``rows()`` feeds a table, ``str()`` is one."""

    kafka: ServiceState
    redis: ServiceState

    HEADERS = ("service", "state", "owner", "address", "detail")

    @property
    def services(self) -> tuple[ServiceState, ServiceState]:
        return (self.kafka, self.redis)

    @property
    def all_running(self) -> bool:
        return all(s.running for s in self.services)

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        return [s.row() for s in self.services]

    def __str__(self) -> str:
        table = [self.HEADERS, *self.rows()]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.HEADERS))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in table
        )


def status(cfg: ServiceConfig) -> ServiceStatus:
    """Read-only look at both services (TCP probe for Kafka, PING for Redis)."""
    return ServiceStatus(kafka=_kafka_state(cfg), redis=_redis_state(cfg))


def _kafka_state(cfg: ServiceConfig, detail: str = "") -> ServiceState:
    return ServiceState(
        name="kafka",
        address=cfg.kafka_bootstrap,
        running=_tcp_open(cfg.kafka_host, cfg.kafka_port),
        pid=_managed_pid(cfg.kafka_pid_file, _kafka_markers(cfg)),
        detail=detail,
    )


def _redis_state(cfg: ServiceConfig, detail: str = "") -> ServiceState:
    return ServiceState(
        name="redis",
        address=cfg.redis_address,
        running=_redis_ping(cfg.redis_host, cfg.redis_port) is not None,
        pid=_managed_pid(cfg.redis_pid_file, _redis_markers(cfg)),
        detail=detail,
    )


# --------------------------------------------------------------------------- probes


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _redis_ping(host: str, port: int, timeout: float = 1.0) -> str | None:
    """The first reply line to a raw RESP ``PING`` (``+PONG``, or ``-NOAUTH ...`` for a Redis
    with a password), or None when nothing answers like Redis."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while b"\r\n" not in reply and len(reply) < 512:
                chunk = sock.recv(512)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    line = reply.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    return line if line[:1] in ("+", "-") else None


def _kafka_metadata(cfg: ServiceConfig, timeout: float) -> str | None:
    """None when an AdminClient gets cluster metadata, else why not."""
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
    except ImportError:  # pragma: no cover - confluent-kafka is a project dependency
        return None  # the TCP probe alone has to do
    admin = AdminClient(
        {
            "bootstrap.servers": cfg.kafka_bootstrap,
            "socket.timeout.ms": max(1000, int(timeout * 1000)),
            "log_level": 3,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return str(exc)
    return None if metadata.brokers else "no brokers in metadata"


# --------------------------------------------------------------------------- processes


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _proc_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def _kafka_markers(cfg: ServiceConfig) -> tuple[str, ...]:
    return ("kafka.Kafka", str(cfg.server_properties.resolve()))


def _redis_markers(cfg: ServiceConfig) -> tuple[str, ...]:
    # redis-server rewrites its title to "redis-server <bind>:<port>".
    return ("redis-server", f":{cfg.redis_port}")


def _is_ours(pid: int, markers: Sequence[str]) -> bool:
    if not _alive(pid):
        return False
    cmdline = _proc_cmdline(pid)
    return cmdline is not None and all(marker in cmdline for marker in markers)


def _managed_pid(pid_file: Path, markers: Sequence[str]) -> int | None:
    pid = _read_pid(pid_file)
    return pid if pid is not None and _is_ours(pid, markers) else None


def _spawn(argv: Sequence[str], *, log_file: Path, pid_file: Path) -> int:
    """Start ``argv`` detached (own session, stdin /dev/null, stdout+stderr to ``log_file``),
    write its PID file and return the PID.

    ``os.posix_spawn`` rather than ``subprocess.Popen``: no Popen object outlives this call, so
    no "subprocess still running" ResourceWarning when the caller (a test run) exits first.
    """
    pid = os.posix_spawn(
        argv[0],
        list(argv),
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pid_file.write_text(f"{pid}\n")
    return pid


def _stop(name: str, pid_file: Path, markers: Sequence[str], log: Log) -> None:
    pid = _read_pid(pid_file)
    if pid is None:
        log(f"{name}: no PID file of ours; not stopping anything")
        pid_file.unlink(missing_ok=True)
        return
    if not _is_ours(pid, markers):
        log(f"{name}: PID {pid} from {pid_file.name} is gone or not ours; removing the PID file")
        pid_file.unlink(missing_ok=True)
        return
    log(f"{name}: stopping PID {pid} (SIGTERM)")
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        log(f"{name}: PID {pid} still alive after {STOP_TIMEOUT_S:.0f} s; SIGKILL")
        if _is_ours(pid, markers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, KILL_TIMEOUT_S):
            raise ServiceError(f"{name}: PID {pid} survived SIGKILL")
    pid_file.unlink(missing_ok=True)
    log(f"{name}: stopped in {time.monotonic() - started:.1f} s")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: Sequence[str], what: str, *, cwd: Path | None = None) -> None:
    env = dict(os.environ)
    env.setdefault("DEBIAN_FRONTEND", "noninteractive")
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise ServiceError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{output}")


@contextlib.contextmanager
def _locked(cfg: ServiceConfig) -> Iterator[None]:
    """Serialise up/down between processes (e.g. parallel test workers)."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    with (cfg.home / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _which(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` not found on PATH: {hint}")
    return path


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return _which("java", "Kafka 4.x needs a Java 17+ runtime (apt-get install openjdk-17-jre)")


# --------------------------------------------------------------------------- kafka


def _ensure_kafka_libs(cfg: ServiceConfig, log: Log) -> None:
    stamp_name = ".quorum-libs"
    wanted = "\n".join(":".join(dep) for dep in kafka_dependencies(cfg)) + "\n"
    stamp = cfg.kafka_libs / stamp_name
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    mvn = _which("mvn", "Maven fetches the Kafka jars (apt-get install maven)")
    pom = cfg.kafka_dir / "pom.xml"
    pom.write_text(render_pom(cfg))
    partial = cfg.kafka_dir / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log(f"kafka: fetching Kafka {cfg.kafka_version} jars with Maven (first run only)...")
    started = time.monotonic()
    _run(
        [
            mvn,
            "-B",
            "-ntp",
            "-Dstyle.color=never",
            "-q",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        "mvn copy-dependencies",
    )
    if not (partial / f"kafka_2.13-{cfg.kafka_version}.jar").is_file():
        raise ServiceError(f"mvn finished but {partial} has no kafka_2.13-{cfg.kafka_version}.jar")
    (partial / stamp_name).write_text(wanted)
    shutil.rmtree(cfg.kafka_libs, ignore_errors=True)
    partial.rename(cfg.kafka_libs)
    jars = len(list(cfg.kafka_libs.glob("*.jar")))
    log(f"kafka: {jars} jars in {cfg.kafka_libs} ({time.monotonic() - started:.1f} s)")


def _write_kafka_config(cfg: ServiceConfig) -> None:
    cfg.server_properties.write_text(render_server_properties(cfg))
    cfg.log4j_config.write_text(render_log4j2_properties())
    cfg.tools_log4j_config.write_text(render_log4j2_properties(level="WARN", stderr=True))


def _classpath(cfg: ServiceConfig) -> str:
    return str(cfg.kafka_libs.resolve() / "*")


def _format_storage(cfg: ServiceConfig, log: Log) -> None:
    if (cfg.kafka_data / "meta.properties").is_file():
        return
    cfg.kafka_data.mkdir(parents=True, exist_ok=True)
    cluster_id = new_cluster_id()
    log(f"kafka: formatting {cfg.kafka_data} (cluster id {cluster_id})")
    _run(
        [
            _java(),
            *TOOL_JVM_OPTS,
            f"-Dlog4j2.configurationFile={cfg.tools_log4j_config.resolve()}",
            "-cp",
            _classpath(cfg),
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(cfg.server_properties.resolve()),
            "--cluster-id",
            cluster_id,
        ],
        "kafka storage format",
    )


def _wait_kafka(cfg: ServiceConfig, pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "not listening yet"
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            raise ServiceError(
                f"kafka: broker (PID {pid}) exited during start-up; tail of {cfg.broker_log}:\n"
                f"{_tail(cfg.broker_log)}"
            )
        if _tcp_open(cfg.kafka_host, cfg.kafka_port):
            problem = _kafka_metadata(cfg, timeout=min(10.0, max(1.0, deadline - time.monotonic())))
            if problem is None:
                return
            last = problem
        time.sleep(0.5)
    raise ServiceError(
        f"kafka: not ready on {cfg.kafka_bootstrap} after {timeout:.0f} s ({last}); "
        f"tail of {cfg.broker_log}:\n{_tail(cfg.broker_log)}"
    )


def _up_kafka(cfg: ServiceConfig, log: Log) -> ServiceState:
    pid = _managed_pid(cfg.kafka_pid_file, _kafka_markers(cfg))
    if pid is not None:
        _wait_kafka(cfg, pid, KAFKA_READY_TIMEOUT_S)
        log(f"kafka: already running (ours, PID {pid}) on {cfg.kafka_bootstrap}")
        return _kafka_state(cfg, "already running")
    cfg.kafka_pid_file.unlink(missing_ok=True)
    if _tcp_open(cfg.kafka_host, cfg.kafka_port):
        problem = _kafka_metadata(cfg, timeout=15.0)
        if problem is not None:
            raise ServiceError(
                f"kafka: something listens on {cfg.kafka_bootstrap} but does not answer as Kafka "
                f"({problem}); free the port or set QUORUM_KAFKA_BOOTSTRAP"
            )
        log(f"kafka: using the external broker already on {cfg.kafka_bootstrap}")
        return _kafka_state(cfg, "external, left as is")
    if not _is_loopback(cfg.kafka_host):
        raise ServiceError(
            f"kafka: nothing answers on {cfg.kafka_bootstrap}, and only a loopback broker can be "
            "started here"
        )
    if _tcp_open(cfg.kafka_host, cfg.controller_port):
        raise ServiceError(
            f"kafka: controller port {cfg.controller_address} is already in use by something else"
        )
    started = time.monotonic()
    cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
    _ensure_kafka_libs(cfg, log)
    _write_kafka_config(cfg)
    _format_storage(cfg, log)
    argv = [
        _java(),
        *BROKER_JVM_OPTS,
        f"-XX:ErrorFile={cfg.kafka_dir.resolve()}/hs_err_pid%p.log",
        f"-Dlog4j2.configurationFile={cfg.log4j_config.resolve()}",
        "-cp",
        _classpath(cfg),
        "kafka.Kafka",
        str(cfg.server_properties.resolve()),
    ]
    pid = _spawn(argv, log_file=cfg.broker_log, pid_file=cfg.kafka_pid_file)
    log(
        f"kafka: started broker PID {pid}; waiting for {cfg.kafka_bootstrap} (log: "
        f"{cfg.broker_log})"
    )
    try:
        _wait_kafka(cfg, pid, KAFKA_READY_TIMEOUT_S)
    except ServiceError:
        _stop("kafka", cfg.kafka_pid_file, _kafka_markers(cfg), log)
        raise
    log(f"kafka: ready on {cfg.kafka_bootstrap} ({time.monotonic() - started:.1f} s)")
    return _kafka_state(cfg, "started")


# --------------------------------------------------------------------------- redis


def _redis_server(log: Log) -> str:
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.geteuid() != 0:
        raise ServiceError(
            "redis-server not found; install it (sudo apt-get install redis-server) or point "
            "QUORUM_REDIS_URL at a running Redis"
        )
    apt_get = _which("apt-get", "install redis-server with your system's package manager")
    log("redis: installing redis-server with apt-get...")
    started = time.monotonic()
    install = [apt_get, "install", "-y", "--no-install-recommends", "redis-server"]
    try:
        _run(install, "apt-get install redis-server")
    except ServiceError:
        log("redis: install failed; running apt-get update and retrying")
        _run([apt_get, "update"], "apt-get update")
        _run(install, "apt-get install redis-server")
    log(f"redis: installed ({time.monotonic() - started:.1f} s)")
    return _which("redis-server", "apt-get install redis-server did not provide it")


def _wait_redis(cfg: ServiceConfig, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ServiceError(
                f"redis: redis-server (PID {pid}) exited during start-up; tail of "
                f"{cfg.redis_log}:\n{_tail(cfg.redis_log)}"
            )
        if _redis_ping(cfg.redis_host, cfg.redis_port) is not None:
            return
        time.sleep(0.1)
    raise ServiceError(
        f"redis: no PING reply on {cfg.redis_address} after {timeout:.0f} s; tail of "
        f"{cfg.redis_log}:\n{_tail(cfg.redis_log)}"
    )


def _up_redis(cfg: ServiceConfig, log: Log) -> ServiceState:
    pid = _managed_pid(cfg.redis_pid_file, _redis_markers(cfg))
    if pid is not None:
        _wait_redis(cfg, pid, REDIS_READY_TIMEOUT_S)
        log(f"redis: already running (ours, PID {pid}) on {cfg.redis_address}")
        return _redis_state(cfg, "already running")
    cfg.redis_pid_file.unlink(missing_ok=True)
    reply = _redis_ping(cfg.redis_host, cfg.redis_port)
    if reply is not None:
        log(f"redis: using the external Redis already on {cfg.redis_address} (PING -> {reply})")
        return _redis_state(cfg, "external, left as is")
    if _tcp_open(cfg.redis_host, cfg.redis_port):
        raise ServiceError(
            f"redis: something listens on {cfg.redis_address} but does not answer PING; free the "
            "port or set QUORUM_REDIS_URL"
        )
    if not _is_loopback(cfg.redis_host):
        raise ServiceError(
            f"redis: nothing answers on {cfg.redis_address}, and only a loopback Redis can be "
            "started here"
        )
    server = _redis_server(log)
    # Where no policy-rc.d stops it, the Debian package starts its own service on 6379.
    reply = _redis_ping(cfg.redis_host, cfg.redis_port)
    if reply is not None:
        log(f"redis: the installed package started a Redis on {cfg.redis_address}; using it")
        return _redis_state(cfg, "external (system service), left as is")
    cfg.redis_data.mkdir(parents=True, exist_ok=True)
    cfg.redis_conf.write_text(render_redis_conf(cfg))
    started = time.monotonic()
    pid = _spawn(
        [server, str(cfg.redis_conf.resolve())],
        log_file=cfg.redis_log,
        pid_file=cfg.redis_pid_file,
    )
    try:
        _wait_redis(cfg, pid, REDIS_READY_TIMEOUT_S)
    except ServiceError:
        _stop("redis", cfg.redis_pid_file, ("redis-server",), log)
        raise
    log(
        f"redis: started PID {pid}; ready on {cfg.redis_address} "
        f"({time.monotonic() - started:.1f} s)"
    )
    return _redis_state(cfg, "started")


# --------------------------------------------------------------------------- public API


def _check_services(services: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(services)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {unknown}; expected some of {list(SERVICES)}")
    return chosen


def up(
    cfg: ServiceConfig, *, log: Log = print, services: Iterable[str] = SERVICES
) -> ServiceStatus:
    """Make Kafka and Redis answer on ``cfg``'s addresses; idempotent.

    Already answering -> used as is (external, never stopped by ``down``); started by an earlier
    ``up`` -> waited for; otherwise fetched/installed as needed and started detached.
    """
    chosen = _check_services(services)
    with _locked(cfg):
        kafka = _up_kafka(cfg, log) if "kafka" in chosen else _kafka_state(cfg)
        redis = _up_redis(cfg, log) if "redis" in chosen else _redis_state(cfg)
    return ServiceStatus(kafka=kafka, redis=redis)


def down(cfg: ServiceConfig, *, log: Log = print, services: Iterable[str] = SERVICES) -> None:
    """Stop what ``up`` started (by the PIDs in our PID files), nothing else."""
    chosen = _check_services(services)
    with _locked(cfg):
        if "kafka" in chosen:
            _stop("kafka", cfg.kafka_pid_file, _kafka_markers(cfg), log)
        if "redis" in chosen:
            _stop("redis", cfg.redis_pid_file, _redis_markers(cfg), log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quorum.services",
        description="Start, stop or inspect the local Kafka broker and Redis used by quorum.",
        epilog="status exits 0 when every service answers, 3 otherwise.",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--only", choices=SERVICES, action="append", help="act on this service only (repeatable)"
    )
    args = parser.parse_args(argv)
    chosen: tuple[str, ...] = tuple(args.only) if args.only else SERVICES
    try:
        cfg = ServiceConfig.from_env()
        if args.command == "up":
            print(up(cfg, services=chosen), flush=True)
        elif args.command == "down":
            down(cfg, services=chosen)
        else:
            current = status(cfg)
            print(current)
            return 0 if all(s.running for s in current.services if s.name in chosen) else 3
    except (ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
