"""A secured broker of the security tests: SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL, and
mutual TLS, on free ports. Started when the first test here asks for it and stopped as soon as
the run leaves this directory, so it never runs next to the other wings' brokers for long."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from security_helpers import PASSWORD, USER, TestPki, make_pki

from hfloop.config import Settings
from hfloop.kafka_local import LocalKafka, SecuredListeners, free_port


class _Secured:
    broker: LocalKafka | None = None
    home: Path | None = None
    pki: TestPki | None = None

    @classmethod
    def get(cls) -> LocalKafka:
        if cls.broker is None:
            cls.home = Path(tempfile.mkdtemp(prefix="hfloop-kafka-secured-"))
            cls.pki = pki = make_pki(cls.home / "pki")
            base = Settings()
            secured = SecuredListeners(
                users={USER: PASSWORD}, sasl_plaintext_port=free_port(), sasl_ssl_port=free_port(),
                ssl_port=free_port(), keystore=pki.keystore, keystore_password=pki.keystore_password,
                truststore=pki.ca, mechanisms=("SCRAM-SHA-512", "PLAIN"),
            )  # fmt: skip
            broker = LocalKafka(home=cls.home / "kafka", port=free_port(), version=base.kafka_version,
                                cache_dir=base.cache_dir, heap="512m", secured=secured)  # fmt: skip
            broker.start()
            cls.broker = broker
        return cls.broker

    @classmethod
    def close(cls) -> None:
        if cls.broker is not None:
            cls.broker.stop()
        if cls.home is not None:
            shutil.rmtree(cls.home, ignore_errors=True)
        cls.broker = cls.home = cls.pki = None


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    here = Path(__file__).parent
    if nextitem is None or here not in Path(nextitem.path).parents:
        _Secured.close()


@pytest.fixture
def secured_broker() -> LocalKafka:
    return _Secured.get()


@pytest.fixture
def pki(secured_broker: LocalKafka) -> TestPki:
    assert _Secured.pki is not None
    return _Secured.pki


@pytest.fixture
def secure_settings(secured_broker: LocalKafka, pki: TestPki, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one of the broker's secured listeners, as a deployment would write them."""

    def make(protocol: str = "SASL_SSL", password: str = PASSWORD, mechanism: str = "SCRAM-SHA-512",
             **overrides: Any) -> Settings:  # fmt: skip
        conf: dict[str, Any] = {"kafka_bootstrap": secured_broker.bootstrap_of(protocol),
                                "kafka_security_protocol": protocol, "data_dir": tmp_path / "data"}  # fmt: skip
        if protocol.startswith("SASL_"):
            conf.update(
                kafka_sasl_mechanism=mechanism, kafka_sasl_username=USER, kafka_sasl_password=password
            )
        if protocol.endswith("SSL"):
            conf["kafka_ssl_cafile"] = pki.ca
        if protocol == "SSL":
            conf.update(kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key)
        conf.update(overrides)
        return Settings(**conf)

    return make
