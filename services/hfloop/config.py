"""One settings object for every hfloop process (env vars with the prefix ``HFLOOP_``).

Unknown ``HFLOOP_*`` variables are rejected so a typo never silently falls back to a
default; secrets are ``SecretStr`` and print masked.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "HFLOOP_"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise print the offending input, and
    # for the unknown-variable check that input is every HFLOOP_* value, secrets included.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="forbid", validate_default=True, hide_input_in_errors=True
    )

    # --- where things live -------------------------------------------------------
    data_dir: Path = Field(Path(".hfloop"), description="Root of embedded stores and local Kafka data.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "hfloop", description="Download cache (Kafka jars); outside the repo."
    )

    # --- Kafka ---------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset means the local broker (`hfloop kafka start`)."
    )
    kafka_port: int = Field(9092, description="Port of the local broker's client listener.")
    kafka_version: str = Field("4.1.1", description="Apache Kafka version the local broker runs.")
    kafka_heap: str = Field("768m", description="JVM heap of the local broker.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 | ...")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_client_log_level: int = Field(
        6,
        description="librdkafka log level (syslog numbering: 3 errors, 6 info, 7 debug); failures still raise.",
    )
    kafka_partitions: int = Field(3, description="Partitions of the event topics created by `topics create`.")
    kafka_replication: int = Field(1, description="Replication factor of created topics.")
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible Schema Registry; when set, Confluent framing is written."
    )

    # --- stores --------------------------------------------------------------------
    qdrant_url: str | None = Field(None, description="Qdrant server; unset means embedded (qdrant_path).")
    qdrant_path: Path | None = Field(None, description="Embedded Qdrant folder; default <data_dir>/qdrant.")
    qdrant_api_key: SecretStr | None = None
    clickhouse_dsn: str | None = Field(
        None, description="clickhouse-connect DSN: chdb:///path (default <data_dir>/chdb) or http(s)://..."
    )
    embedder: str = Field(
        "minilm-onnx",
        description="Embedder backend: minilm-onnx (int8 ONNX export of all-MiniLM-L6-v2, cached on first use) | "
        "minilm (the same model on PyTorch) | hash (no semantics; wiring tests only).",
    )

    # --- HTTP ------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8787
    api_keys: SecretStr = Field(
        SecretStr(""), description="Comma-separated key:tenant pairs, e.g. 'k1:acme,k2:globex'."
    )
    max_body_bytes: int = Field(1_000_000, description="Largest accepted HTTP body; larger gets 413.")
    max_batch: int = Field(1000, description="Most events in one POST /v1/events.")
    api_url: str = Field("http://127.0.0.1:8787", description="Where SDK lookups and remote CLI calls go.")
    api_key: SecretStr | None = Field(None, description="Key the CLI/SDK sends to the API.")

    # --- analytics (ClickHouse history) ---------------------------------------------------
    analytics_database: str = Field("hfloop", description="ClickHouse database holding one table per topic.")
    analytics_group: str = Field("hfloop-analytics", description="Consumer group of the ClickHouse sink.")
    analytics_batch_rows: int = Field(50_000, description="Sink flushes once this many records are buffered.")
    analytics_batch_ms: int = Field(
        1_000, description="Sink flushes buffered records at least this often (ms)."
    )
    analytics_retry_max_s: float = Field(
        10.0, description="Longest wait between insert retries while ClickHouse is down."
    )
    analytics_max_rows: int = Field(
        10_000, description="Most rows POST /v1/analytics/query returns (then truncated)."
    )
    analytics_max_execution_s: int = Field(30, description="Time limit of one analytics query (seconds).")

    # --- stream processing -------------------------------------------------------------
    join_grace_s: float = Field(
        180.0, description="How long an orphan outcome/feedback waits for its interaction."
    )
    label_window_s: float = Field(
        60.0, description="Label emitted this long after the interaction's last signal."
    )
    state_ttl_s: float = Field(86_400.0, description="Join state expires after this long.")
    stream_app_id: str = Field(
        "hfloop-stream",
        description="Faust app id of the stream processors: consumer group and internal-topic prefix.",
    )
    stream_tick_s: float = Field(
        1.0, description="How often label windows, orphan grace and state TTL are checked."
    )
    stream_hole_timeout_s: float = Field(
        10.0,
        description="A partition whose next record stays unprocessed this long while later ones are done "
        "is re-read from that record (stream/offsets.py).",
    )
    stream_batch_max: int = Field(2000, description="Most input records the join agent processes per batch.")
    stream_batch_within_s: float = Field(
        0.05, description="Longest wait to fill a batch before processing it."
    )
    stream_session_timeout_s: float = Field(
        60.0,
        description="Stream group session timeout: how long a dead worker's partitions wait before moving "
        "(faust's default; lower it where workers never block their event loop that long).",
    )
    stream_heartbeat_interval_s: float = Field(3.0, description="Stream group heartbeat interval.")
    stream_stuck_timeout_s: float = Field(
        180.0,
        description="A stream worker that spends this long in a rebalance or table recovery without "
        "progress exits for its supervisor to restart it (0: never).",
    )
    stream_rebalance_timeout_s: float = Field(
        60.0, description="How long a stream group rebalance waits for its members to rejoin."
    )
    stream_commit_interval_s: float = Field(
        1.0, description="How often the stream worker commits acknowledged offsets."
    )
    stream_label_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "RATING": 1.0, "CORRECTION": 2.0, "PREFERENCE": 1.0, "DEMONSTRATION": 0.5,
            "ACCEPTED": 1.0, "COPIED": 0.5, "EDITED": 1.0, "DELETED": 1.0, "REPHRASED": 1.0, "ESCALATED": 1.5,
            "RESOLVED": 1.5, "REOPENED": 1.5, "ABANDONED": 0.5, "CUSTOM": 1.0,
        },
        description="Weight of each signal kind (feedback kind or outcome kind) in a label; JSON object.",
    )  # fmt: skip
    stream_outcome_values: dict[str, float] = Field(
        default_factory=lambda: {
            "ACCEPTED": 0.6, "COPIED": 0.4, "EDITED": -0.3, "DELETED": -0.6, "REPHRASED": -0.5, "ESCALATED": -0.8,
            "RESOLVED": 0.8, "REOPENED": -0.7, "ABANDONED": -0.3,
        },
        description="Value in [-1, 1] of each outcome kind (EDITED and CUSTOM use the outcome's own value when set).",
    )  # fmt: skip
    stream_implicit_share: float = Field(
        0.25,
        description="Share of the implicit signals in a label's score when explicit signals exist (explicit wins).",
    )
    stream_implicit_feedback_factor: float = Field(
        0.5, description="Weight multiplier of feedback whose source is IMPLICIT (inferred, e.g. a judge)."
    )
    stream_strong_signal: float = Field(
        1.0, description="An explicit signal with |value| x weight at or above this emits a label at once."
    )
    stream_pair_weights: dict[str, float] = Field(
        default_factory=lambda: {"COMPARISON": 1.0, "CORRECTION": 1.0, "DEMONSTRATION": 0.8,
                                 "IMPLICIT_REPHRASE": 0.5, "IMPLICIT_OUTCOME": 0.4},
        description="Training weight of a preference pair per source; JSON object.",
    )  # fmt: skip
    stream_pair_confidence: dict[str, float] = Field(
        default_factory=lambda: {"COMPARISON": 0.9, "CORRECTION": 0.9, "DEMONSTRATION": 0.8,
                                 "IMPLICIT_REPHRASE": 0.6, "IMPLICIT_OUTCOME": 0.5},
        description="Confidence of a preference pair per source (a comparison's strength overrides it); JSON object.",
    )  # fmt: skip
    stream_session_max: int = Field(64, description="Interactions kept per session for rephrase detection.")
    stream_prompt_max: int = Field(
        16, description="Accepted and rejected answers kept per prompt for implicit pairs."
    )

    # --- fast loop (memory wing) -------------------------------------------------------------
    memory_collection_prefix: str = Field(
        "hfloop_", description="Prefix of the memory wing's Qdrant collections."
    )
    memory_group_id: str = Field("hfloop-memory", description="Consumer group of the memory worker.")
    memory_batch_max: int = Field(
        64, description="Most records the memory worker embeds and applies per batch."
    )
    memory_trusted_annotators: str = Field(
        "",
        description="Comma-separated annotator ids whose corrections are shared at once and corroborate others.",
    )
    memory_trust_threshold: float = Field(
        0.8, description="An entry arriving with trust >= this is shared at once."
    )
    memory_corroborating_users: int = Field(
        3, description="Distinct annotators with similar corrections that make a private entry shared."
    )
    memory_situation_similarity: float = Field(
        0.8, description="Cosine above which two situations are 'similar'."
    )
    memory_answer_similarity: float = Field(
        0.75, description="Cosine above which two corrected answers agree."
    )
    memory_rate_per_min: float = Field(
        30.0, description="Corrections one annotator may add per minute (0: no limit)."
    )
    memory_rate_burst: float = Field(20.0, description="Burst of the per-annotator correction rate limit.")
    memory_max_k: int = Field(50, description="Largest k a memory search may ask for.")
    embed_threads: int = Field(
        1, description="ONNX Runtime threads per embedding call (parallelism comes from concurrent calls)."
    )
    routing_upper: float = Field(
        0.5, description="Bad-rate posterior mean at which a route flips to the fallback."
    )
    routing_lower: float = Field(
        0.3, description="Bad-rate posterior mean at which a route flips back (hysteresis)."
    )
    routing_min_evidence: float = Field(
        8.0, description="Decayed labels needed before a route may flip away."
    )
    routing_half_life_s: float = Field(86_400.0, description="Half-life of routing evidence.")
    routing_prior_bad: float = Field(1.0, description="Beta prior pseudo-count of bad labels (routing).")
    routing_prior_good: float = Field(4.0, description="Beta prior pseudo-count of good labels (routing).")
    routing_fallback_action: Literal["FALLBACK_MODEL", "HUMAN"] = Field(
        "FALLBACK_MODEL", description="Where a flipped route goes."
    )
    routing_fallback_target: str = Field(
        "fallback", description="Fallback model id or human queue of flipped routes."
    )
    weights_half_life_s: float = Field(7 * 86_400.0, description="Half-life of retrieval-weight evidence.")
    weights_prior_bad: float = Field(1.0, description="Smoothing pseudo-count of bad labels per document.")
    weights_prior_good: float = Field(4.0, description="Smoothing pseudo-count of good labels per document.")
    weights_floor: float = Field(0.1, description="Smallest retrieval multiplier of a document.")
    weights_min_change: float = Field(
        0.05, description="A DocWeightUpdate is published when a weight moves this much."
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, data: Any) -> Any:
        known = {PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return data

    # --- derived ---------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def qdrant_folder(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def clickhouse(self) -> str:
        return self.clickhouse_dsn or f"chdb:///{(self.data_dir / 'chdb').resolve()}"

    def tenants_by_key(self) -> dict[str, str]:
        """Parse ``api_keys`` into {key: tenant}; a malformed entry is an error, not ignored."""
        out: dict[str, str] = {}
        raw = self.api_keys.get_secret_value().strip()
        if not raw:
            return out
        for item in raw.split(","):
            key, sep, tenant = item.strip().partition(":")
            if not sep or not key or not tenant:
                raise ValueError("HFLOOP_API_KEYS entries must look like key:tenant")
            out[key] = tenant
        return out

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.kafka_security_protocol,
            "log_level": self.kafka_client_log_level,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            conf["ssl.certificate.location"] = str(self.kafka_ssl_certfile)
        if self.kafka_ssl_keyfile:
            conf["ssl.key.location"] = str(self.kafka_ssl_keyfile)
        # Imported here: config is the ground floor and must not load the events package (schemas,
        # serde) just to be read. A fresh callback per client: each client's failures are its own.
        from hfloop.events.errors import ClientErrors, describe

        who = describe(self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_sasl_username)
        conf["error_cb"] = ClientErrors(who)
        return conf

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """The one place producer defaults live: idempotent, acks=all, compressed, batched."""
        conf = self.kafka_client_config()
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 500_000,
                "message.timeout.ms": 60_000,
            }
        )
        conf.update(overrides)
        return conf

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """Consumers commit manually, after their effects are durable."""
        conf = self.kafka_client_config()
        conf.update(
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
            }
        )
        conf.update(overrides)
        return conf


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
