-- One table per topic. Column names are the Avro field names: the sink hands ClickHouse the
-- Avro bodies unchanged (an Avro object container built from the Kafka values) and ClickHouse
-- maps fields to columns by name. Nested records are Tuples, enums LowCardinality(String)
-- (a new symbol needs no migration), maps Map, arrays Array.
--
-- Deduplication: ReplacingMergeTree. The sorting key ends in event_id and every other part of it
-- is a function of the event itself, so a redelivered event has the same key and merges away.
-- Until the merge, readers go through the FINAL views (see docs/analytics.md), so each event is
-- counted once at any moment. non_replicated_deduplication_window additionally drops a retried
-- insert of the very same block (an HTTP insert that succeeded but whose answer was lost).
--
-- Partitioned by month (toYYYYMM(event_time)); a partition never holds two copies of an event in
-- different partitions because event_time is part of the event.

CREATE TABLE IF NOT EXISTS {db}.interactions
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    interaction_id String,
    session_id String,
    user_id String,
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    model_id LowCardinality(String),
    route LowCardinality(String),
    messages Array(Tuple(role LowCardinality(String), content String)),
    response String,
    retrieved_doc_ids Array(String),
    memory_ids_used Array(String),
    latency_ms Float64,
    prompt_tokens Int32,
    completion_tokens Int32,
    metadata Map(String, String),
    trace_id Nullable(String),
    parent_interaction_id Nullable(String),
    -- Reward-hacking monitors read these for every rated answer; computing them at insert keeps
    -- the queries off the response text (10M responses are gigabytes, these are bytes).
    response_chars UInt32 MATERIALIZED lengthUTF8(response),
    confident_phrases UInt8 MATERIALIZED multiSearchAnyCaseInsensitiveUTF8(response,
        ['definitely', 'certainly', 'absolutely', 'guaranteed', 'without a doubt', 'without any doubt',
         '100%', 'i am sure', 'i am certain', 'i am confident', 'rest assured', 'always works', 'no doubt']),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, agent_id, toDate(event_time), event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.feedback
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    interaction_id String,
    kind LowCardinality(String),
    source LowCardinality(String),
    annotator_id String,
    annotator_pool LowCardinality(Nullable(String)),
    session_id Nullable(String),
    -- Absent nested records read as default tuples (scale ''); `kind` says which one is set.
    rating Tuple(scale LowCardinality(String), value Float64),
    correction Nullable(String),
    comparison Tuple(response_a String, response_b String, choice LowCardinality(String), strength Nullable(Float64)),
    demonstration Nullable(String),
    comment Nullable(String),
    metadata Map(String, String),
    -- Every scale mapped onto [-1, 1] (THUMBS and SCORE are already; STARS5 1..5 -> -1..1),
    -- NULL when the event is not a rating.
    rating_norm Nullable(Float64) MATERIALIZED multiIf(kind != 'RATING', NULL,
        rating.scale = 'STARS5', (rating.value - 3) / 2, rating.value),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, toDate(event_time), interaction_id, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.outcomes
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    interaction_id String,
    session_id Nullable(String),
    user_id Nullable(String),
    kind LowCardinality(String),
    custom_kind LowCardinality(Nullable(String)),
    value Nullable(Float64),
    text Nullable(String),
    metadata Map(String, String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, toDate(event_time), interaction_id, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.labels
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    interaction_id String,
    version Int32,
    score Float64,
    confidence Float64,
    trigger LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    model_id LowCardinality(String),
    route LowCardinality(String),
    session_id String,
    user_id String,
    n_explicit Int32,
    n_implicit Int32,
    retrieved_doc_ids Array(String),
    memory_ids_used Array(String),
    annotator_ids Array(String),
    contributing_event_ids Array(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, agent_id, toDate(event_time), interaction_id, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.preferences
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    prompt Array(Tuple(role LowCardinality(String), content String)),
    chosen String,
    rejected String,
    source LowCardinality(String),
    explicit Bool,
    weight Float64,
    confidence Float64,
    agent_id LowCardinality(String),
    route LowCardinality(String),
    annotator_ids Array(String),
    interaction_ids Array(String),
    source_event_ids Array(String),
    -- Identity of the pair's content: two pairs with the same prompt and answers are one
    -- training example (what "pairs after dedup" counts).
    content_hash UInt64 MATERIALIZED cityHash64(arrayStringConcat(arrayMap(m -> concat(m.1, ':', m.2), prompt), '\n'), chosen, rejected),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, toDate(event_time), event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.memory
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    op LowCardinality(String),
    memory_id String,
    agent_id LowCardinality(String),
    route LowCardinality(String),
    situation String,
    original_answer Nullable(String),
    corrected_answer Nullable(String),
    annotator_id String,
    trust Float64,
    visibility LowCardinality(String),
    reason String,
    source_event_ids Array(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, agent_id, toDate(event_time), event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.routing
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    agent_id LowCardinality(String),
    route LowCardinality(String),
    action LowCardinality(String),
    target Nullable(String),
    bad_rate Float64,
    alpha Float64,
    beta Float64,
    evidence Float64,
    reason String,
    source_event_ids Array(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, agent_id, route, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.doc_weights
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    doc_id String,
    weight Float64,
    bad_share Float64,
    n Float64,
    reason String,
    source_event_ids Array(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, toDate(event_time), doc_id, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.training_runs
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    run_id String,
    kind LowCardinality(String),
    status LowCardinality(String),
    base_model String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    offsets Array(Tuple(topic String, partition Int32, start_offset Int64, end_offset Int64)),
    gate_report String,
    metrics Map(String, Float64),
    audits Array(Tuple(name String, passed Bool, detail String)),
    artifact_path Nullable(String),
    promoted Bool,
    model_version Nullable(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 100;

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    event_id String,
    tenant_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    reason LowCardinality(String),
    error String,
    origin_topic LowCardinality(String),
    origin_partition Int32,
    origin_offset Int64,
    processor LowCardinality(String),
    key Nullable(String),
    payload String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, toDate(event_time), origin_topic, event_id)
SETTINGS non_replicated_deduplication_window = 100;
