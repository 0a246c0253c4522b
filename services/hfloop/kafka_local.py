"""A local single-node Apache Kafka broker (KRaft) from the official jars on Maven Central.

``hfloop kafka start`` resolves ``org.apache.kafka:kafka_2.13`` with Maven into
``<cache_dir>/kafka/<version>/libs`` (outside the repo, reused), formats a KRaft data
directory once, and runs ``kafka.Kafka`` detached on 127.0.0.1. The data directory survives
``stop``/``start``. The test suite uses the same class on free ports.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hfloop.config import Settings

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


class KafkaLocalError(RuntimeError):
    pass


def pom_path() -> Path:
    repo = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
    if repo.is_file():
        return repo
    return Path(str(resources.files("hfloop") / "_kafka" / "pom.xml"))


def java_major_version(java: str = "java") -> int:
    if shutil.which(java) is None:
        raise KafkaLocalError(
            "Java not found: the local Kafka broker needs Java 17+ (apt-get install openjdk-17-jre)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise KafkaLocalError(f"cannot read the Java version from: {out.strip()[:200]}")
    major = int(m[1])
    return int(m[2]) if major == 1 and m[2] else major


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64. Like Kafka's own Uuid.randomUuid,
    never one starting with '-', which the storage tool would read as an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class SecuredListeners:
    """Secured client listeners a local broker opens next to its PLAINTEXT one.

    Only tests use them, to prove every client honours the HFLOOP_KAFKA_SECURITY_* settings
    against a real broker. The PLAINTEXT listener stays for the controller, inter-broker
    traffic and the readiness probe; the clients under test connect to these ports only.
    """

    users: Mapping[str, str]  # SCRAM user -> password, written into the log at format time
    sasl_plaintext_port: int | None = None
    sasl_ssl_port: int | None = None
    ssl_port: int | None = None  # TLS with client certificates required (mutual TLS)
    keystore: Path | None = None  # PKCS12: the broker's key and certificate (SSL listeners)
    keystore_password: str = ""
    truststore: Path | None = None  # PEM CA certificates that sign accepted client certificates
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-512",)  # SCRAM-SHA-256 | SCRAM-SHA-512 | PLAIN

    def ports(self) -> dict[str, int]:
        named = {
            "SASL_PLAINTEXT": self.sasl_plaintext_port,
            "SASL_SSL": self.sasl_ssl_port,
            "SSL": self.ssl_port,
        }
        return {name: port for name, port in named.items() if port is not None}

    def properties(self) -> dict[str, str]:
        """server.properties entries of the secured listeners (listener names = protocol names)."""
        props: dict[str, str] = {}
        ports = self.ports()
        if "SSL" in ports or "SASL_SSL" in ports:
            if self.keystore is None:
                raise KafkaLocalError("an SSL or SASL_SSL listener needs a keystore")
            props.update({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(self.keystore),
                          "ssl.keystore.password": self.keystore_password,
                          "ssl.key.password": self.keystore_password})  # fmt: skip
        if "SSL" in ports:
            if self.truststore is None:
                raise KafkaLocalError("the SSL listener checks client certificates: it needs a truststore")
            props.update({"listener.name.ssl.ssl.client.auth": "required", "ssl.truststore.type": "PEM",
                          "ssl.truststore.location": str(self.truststore)})  # fmt: skip
        sasl = [name for name in ports if name.startswith("SASL_")]
        if sasl:
            props["sasl.enabled.mechanisms"] = ",".join(self.mechanisms)
            for mechanism in self.mechanisms:
                if mechanism == "PLAIN":  # the broker checks PLAIN passwords against its JAAS entry
                    users = " ".join(f'user_{u}="{pw}"' for u, pw in self.users.items())
                    module = f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
                else:
                    module = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for name in sasl:
                    props[f"listener.name.{name.lower()}.{mechanism.lower()}.sasl.jaas.config"] = module
        return props

    def format_args(self) -> list[str]:
        """``kafka-storage format`` options that create the SCRAM users (KIP-900)."""
        out: list[str] = []
        for mechanism in self.mechanisms:
            if mechanism.startswith("SCRAM-"):
                for user, password in self.users.items():
                    out += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return out


@dataclass
class LocalKafka:
    """One broker+controller process. ``home`` holds its data, config, log and pid file."""

    home: Path
    port: int
    version: str
    cache_dir: Path
    heap: str = "768m"
    controller_port: int | None = None
    secured: SecuredListeners | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        return cls(
            home=settings.data_dir / "kafka",
            port=settings.kafka_port,
            version=settings.kafka_version,
            cache_dir=settings.cache_dir,
            heap=settings.kafka_heap,
        )

    # --- paths -------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bootstrap_of(self, protocol: str) -> str:
        """Bootstrap address of the listener speaking ``protocol`` (PLAINTEXT or a secured one)."""
        if protocol == "PLAINTEXT":
            return self.bootstrap
        port = (self.secured.ports() if self.secured else {}).get(protocol)
        if port is None:
            raise KafkaLocalError(f"this broker has no {protocol} listener")
        return f"127.0.0.1:{port}"

    @property
    def libs(self) -> Path:
        return self.cache_dir / "kafka" / self.version / "libs"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def data(self) -> Path:
        return self.home / "data"

    # --- jars --------------------------------------------------------------------
    def fetch(self) -> Path:
        """Resolve the broker jars with Maven (once per version)."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        if shutil.which("mvn") is None:
            raise KafkaLocalError("Maven (mvn) not found: it resolves the Kafka jars (apt-get install maven)")
        tmp = self.libs.with_name("libs.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            "mvn", "-q", "-B", "-f", str(pom_path()), "dependency:copy-dependencies",
            f"-Dkafka.version={self.version}", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaLocalError(
                f"mvn failed to resolve Kafka {self.version}:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)
        marker.touch()
        return self.libs

    # --- lifecycle ---------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A zombie or an unrelated process that reused the pid is not our broker.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return None
        if b"kafka.Kafka" not in cmdline or state == "Z":
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.port)

    def _write_config(self) -> Path:
        cport = self.controller_port or self._stored_controller_port() or free_port()
        self.controller_port = cport
        extra = self.secured.ports() if self.secured else {}
        clients = "".join(f",{name}://127.0.0.1:{port}" for name, port in extra.items())
        protocols = "".join(f",{name}:{name}" for name in extra)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{cport}{clients}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}{clients}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": f"PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT{protocols}",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data.resolve()),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        if self.secured:
            props.update(self.secured.properties())
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.properties").write_text(LOG4J2)
        return path

    def _stored_controller_port(self) -> int | None:
        path = self.home / "server.properties"
        if path.exists():
            m = re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", path.read_text())
            if m:
                return int(m[1])
        return None

    def _java(
        self, main: str, *args: str, log: Path | None = None, detach: bool = False
    ) -> subprocess.Popen[bytes]:
        cp = f"{self.libs}/*"
        cmd = [
            "java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={(self.home / 'log4j2.properties').resolve()}",
            "-cp", cp, main, *args,
        ]  # fmt: skip
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=detach)

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker if it is not running; returns the bootstrap address."""
        if self.running():
            return self.bootstrap
        if java_major_version() < 17:
            raise KafkaLocalError("Kafka 4 needs Java 17 or newer; found an older `java` on PATH")
        self.fetch()
        self.home.mkdir(parents=True, exist_ok=True)
        if port_open(self.port):
            raise KafkaLocalError(f"port {self.port} is taken by another process; set HFLOOP_KAFKA_PORT")
        config = self._write_config()
        if not (self.data / "meta.properties").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            cid = cluster_id()
            scram = self.secured.format_args() if self.secured else []
            fmt = self._java(
                "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(config), *scram, log=self.log_file
            )
            if fmt.wait() != 0:
                raise KafkaLocalError(
                    f"formatting the KRaft log failed; see {self.log_file}\n{self._log_tail()}"
                )
        proc = self._java("kafka.Kafka", str(config), log=self.log_file, detach=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaLocalError(f"broker exited with code {proc.returncode}:\n{self._log_tail()}")
            if port_open(self.port) and self._answers():
                return self.bootstrap
            time.sleep(0.3)
        self.stop()
        raise KafkaLocalError(f"broker did not answer within {timeout:.0f}s:\n{self._log_tail()}")

    def _answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:
            return False

    def stop(self, timeout: float = 30.0, kill: bool = False) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); returns whether one ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None and port_open(self.port),
            "pid": pid,
            "bootstrap": self.bootstrap,
            "version": self.version,
            "data": str(self.data.resolve()),
            "log": str(self.log_file.resolve()),
        }

    def _log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"
