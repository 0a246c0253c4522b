"""The secured test broker's credentials: a SCRAM/PLAIN user, and a throwaway certificate
authority made with the openssl CLI.

One CA signs the broker's certificate (SAN IP 127.0.0.1, so hostname checks stay on in every
client) and one client certificate (mutual TLS). The broker gets a PKCS12 keystore; clients
get PEM files, as HFLOOP_KAFKA_SSL_CAFILE / _CERTFILE / _KEYFILE expect.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from waiting import eventually  # noqa: F401  (re-exported to this folder's tests)

DAYS = "2"
USER, PASSWORD = "hfloop-svc", "s3cr3t-Sasl-Pw-7f2c"


@dataclass(frozen=True)
class TestPki:
    ca: Path  # PEM CA certificate: the clients' cafile and the broker's truststore
    keystore: Path  # PKCS12 broker key + certificate chain
    keystore_password: str
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr[-1000:]}")


def _signed(home: Path, name: str, subject: str, ext: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=home)  # fmt: skip
    (home / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", DAYS, "-sha256", "-extfile", f"{name}.ext", cwd=home)  # fmt: skip


def make_pki(home: Path, password: str = "keystore-pass") -> TestPki:
    home.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", DAYS, "-sha256", "-subj", "/CN=hfloop-test-ca", cwd=home)  # fmt: skip
    leaf = "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n"
    _signed(home, "broker", "/CN=127.0.0.1",
            leaf + "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    _signed(home, "client", "/CN=hfloop-client", leaf + "extendedKeyUsage=clientAuth\n")
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
             "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}", cwd=home)  # fmt: skip
    return TestPki(home / "ca.pem", home / "broker.p12", password, home / "client.pem", home / "client.key")
