"""Kafka client errors that must not be retried silently: a broker refusing the credentials.

librdkafka treats a failed SASL handshake like any broken connection and retries it forever.
Left alone, an admin call ends with "Broker transport failure", a send with "Message timed out"
a minute later, and a consumer just waits; only the client log says "authentication". Every
client config built by ``Settings.kafka_client_config`` carries a :class:`ClientErrors` as its
``error_cb``: it logs the errors librdkafka reports there (librdkafka logs them itself only
while no callback is set) and remembers an authentication failure, so the code that owns the
client can stop with an error naming it: :func:`cluster_metadata` for admin calls
(``create_topics``), :meth:`ClientErrors.raise_if_auth_failed` in the consumer workers' loops.

The callback never raises: it runs inside ``poll()``/``flush()``/``consume()``, also in the
gateway's and the SDK's background poll threads, which must keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

log = logging.getLogger(__name__)
# Credentials whose authentication failure this process has logged at ERROR: every client of a
# worker (consumer, producer, admin) fails the same way, one ERROR line says it.
_reported: set[str] = set()
_reported_lock = threading.Lock()


class KafkaAuthenticationError(RuntimeError):
    """The Kafka broker refused this client's credentials (the password is never in the message)."""


class ClientErrors:
    """``error_cb`` of one librdkafka client: logs each error, keeps the first authentication
    failure. ``who`` describes the credentials without the secret (protocol, mechanism, user)."""

    def __init__(self, who: str) -> None:
        self.who = who
        self._lock = threading.Lock()
        self._auth: str | None = None
        self._failed = threading.Event()

    def __call__(self, err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            with self._lock:
                first = self._auth is None
                if first:
                    self._auth = err.str()
                    self._failed.set()
            if first:  # librdkafka repeats it on every reconnect: one line per client at most
                with _reported_lock:
                    level = logging.DEBUG if self.who in _reported else logging.ERROR
                    _reported.add(self.who)
                log.log(level, "Kafka authentication failed (%s): %s", self.who, err.str())
            return
        # What librdkafka would have logged without a callback; it keeps retrying these itself.
        log.warning("Kafka client error (%s): %s", err.name(), err.str())

    @property
    def auth_failure(self) -> str | None:
        """librdkafka's reason for the first authentication failure, or None."""
        return self._auth

    def wait_auth_failure(self, timeout: float) -> bool:
        return self._failed.wait(timeout)

    def auth_error(self) -> KafkaAuthenticationError | None:
        if self._auth is None:
            return None
        return KafkaAuthenticationError(
            f"Kafka authentication failed ({self.who}): {self._auth}. Check HFLOOP_KAFKA_SASL_USERNAME, "
            "HFLOOP_KAFKA_SASL_PASSWORD and HFLOOP_KAFKA_SASL_MECHANISM."
        )

    def raise_if_auth_failed(self) -> None:
        exc = self.auth_error()
        if exc is not None:
            raise exc

    # Client configs travel to Ray tasks (training window reads) and are pickled there: carry the
    # description only; a fresh state belongs to the client built on the other side.
    def __getstate__(self) -> dict[str, Any]:
        return {"who": self.who}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["who"])  # type: ignore[misc]


def describe(protocol: str, mechanism: str | None, username: str | None) -> str:
    """The credentials in words, for error messages: never the password."""
    parts = [f"security.protocol={protocol}"]
    if mechanism:
        parts.append(f"sasl.mechanism={mechanism}")
    if username:
        parts.append(f"sasl.username={username!r}")
    return ", ".join(parts)


def cluster_metadata(admin: AdminClient, errors: ClientErrors | None, timeout: float) -> ClusterMetadata:
    """``admin.list_topics(timeout=timeout)``, except that refused credentials end it within about
    half a second with :class:`KafkaAuthenticationError` instead of a transport error at ``timeout``.

    The admin client reports errors only from ``poll()``, and ``list_topics`` does not poll; so
    the wait is cut into slices with a poll between them. A healthy cluster answers within the
    first slice, as fast as a single call."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return admin.list_topics(timeout=max(0.05, min(0.5, left)))
        except KafkaException:
            admin.poll(0)
            if errors is not None:
                errors.raise_if_auth_failed()
            if time.monotonic() >= deadline:
                raise


def errors_of(conf: Mapping[str, Any]) -> ClientErrors | None:
    """The :class:`ClientErrors` a client config carries (None for a config built elsewhere)."""
    cb = conf.get("error_cb")
    return cb if isinstance(cb, ClientErrors) else None


__all__ = ["ClientErrors", "KafkaAuthenticationError", "cluster_metadata", "describe", "errors_of"]
