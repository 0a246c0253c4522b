"""Event backbone: SDK vs raw producer, Avro serde rates, gateway events/s per core.

* SDK vs raw: the same N interactions, once through ``FeedbackClient.log_interaction`` (build the
  record, encode, produce; one call per record) and once as pre-encoded bytes through a bare
  confluent-kafka Producer with the same settings calling ``produce()`` per record (the
  baseline). Then the batch API, ``FeedbackClient.log_interactions`` (chunks of BATCH items per
  call), against the same baseline and against a second one: the raw Producer's
  ``produce_batch`` with the same chunks of pre-encoded bytes. Every run ends with ``flush()``
  (every record acknowledged); the four run back to back on the same broker, ROUNDS times, per
  record size (prompt padded to ~2 KB and ~8 KB records) and per N; each ratio is the median of
  its rounds. The sending thread's CPU per record is recorded too: it does not move with the
  machine's load, while the raw producer's wall time (mostly broker and librdkafka work on the
  same cores) does.
* Serde: fastavro single-object encode/decode of a realistic Interaction, records/s.
* Gateway: a uvicorn process serving POST /v1/events against the broker, driven by concurrent
  batch requests from this process; events per CPU-second of the gateway process is the
  per-core figure (the client shares the 2 cores, so wall-clock rate understates it).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
from confluent_kafka import Producer
from fastavro import schemaless_writer

from benchmarks.common import BenchContext
from hfloop.events import native
from hfloop.events.kafka import create_topics
from hfloop.events.serde import Serde
from hfloop.events.topics import INTERACTIONS, key_of
from hfloop.kafka_local import free_port, port_open
from hfloop.sdk import FeedbackClient
from hfloop.sdk import events as ev

PROMPT = [
    {"role": "system", "content": "You are a helpful support agent for an online shop."},
    {"role": "user", "content": "I ordered a jacket last week and it has not arrived yet, what can I do?"},
]
RESPONSE = "Orders usually arrive within 5 business days. You can track yours under Orders > Track package."


BATCH = 1000
ROUNDS = 3  # raw / per call / raw batch / batch, repeated
# Extra prompt text per size label: "base" is the realistic ~374-byte record.
SIZES = {"base": 0, "2KB": 1650, "8KB": 7800}


def _prompt(pad: int) -> list[dict[str, str]]:
    if not pad:
        return PROMPT
    filler = ("Order history and shipping notes for context. " * (pad // 46 + 1))[:pad]
    return [PROMPT[0], {"role": "user", "content": PROMPT[1]["content"] + " " + filler}]


def _interaction(i: int, prompt: list[dict[str, str]] = PROMPT) -> dict[str, Any]:
    return ev.interaction(
        tenant_id="bench", agent_id="support", prompt=prompt, response=RESPONSE, interaction_id=f"i-{i}",
        session_id=f"s-{i // 4}", user_id=f"u-{i % 500}", agent_version="1.4.2", model_id="small", route="orders",
        retrieved_doc_ids=["kb-shipping-v3", "kb-orders-v1"], latency_ms=640.0, prompt_tokens=52, completion_tokens=24,
    )  # fmt: skip


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def _timed(producer: Any, send: Callable[[], None], cpu: list[float] | None = None) -> float:
    """Seconds from the first send until flush() saw every record acknowledged.

    ``cpu`` receives the calling thread's CPU seconds over the same span: what the sender
    itself spent, apart from the broker's and librdkafka's threads and the machine's load."""
    t0, c0 = time.perf_counter(), time.thread_time()
    send()
    producer.flush()
    if cpu is not None:
        cpu.append(time.thread_time() - c0)
    return time.perf_counter() - t0


def _raw_produce(raw: Producer, encoded: list[tuple[bytes, bytes]]) -> None:
    for key, value in encoded:
        while True:
            try:
                raw.produce(INTERACTIONS, value, key)
                break
            except BufferError:
                raw.poll(0.01)
        raw.poll(0)


def _raw_batches(raw: Producer, encoded: list[tuple[bytes, bytes]]) -> None:
    for i in range(0, len(encoded), BATCH):
        msgs: list[Any] = [{"key": k, "value": v} for k, v in encoded[i : i + BATCH]]
        while msgs:
            raw.produce_batch(INTERACTIONS, msgs)
            msgs = [m for m in msgs if "_error" in m]  # queue full: retry after serving reports
            for m in msgs:
                del m["_error"]
            raw.poll(0.01 if msgs else 0)


def _run_size(settings: Any, serde: Serde, size: int, pad: int) -> dict[str, Any]:
    prompt = _prompt(pad)
    records = [_interaction(i, prompt) for i in range(size)]
    encoded = [(key_of(INTERACTIONS, r), serde.encode("Interaction", r)) for r in records]
    # What a caller passes: everything but what the SDK generates (event_id) or takes positionally.
    fields = [{k: v for k, v in r.items() if k not in ("tenant_id", "agent_id", "messages", "response", "event_id")}
              for r in records]  # fmt: skip
    items = [{"agent_id": "support", "prompt": prompt, "response": RESPONSE, **f} for f in fields]

    raw = Producer(settings.producer_config())
    raw.produce(INTERACTIONS, encoded[0][1], encoded[0][0])  # warm-up: connection + idempotent PID
    raw.flush(30)
    fb = FeedbackClient("bench", settings=settings, serde=serde)
    fb.log_interaction("support", PROMPT, RESPONSE, wait=True)  # warm-up, as above

    def per_call() -> None:
        for f in fields:
            fb.log_interaction("support", prompt, RESPONSE, **f)

    def batched() -> None:
        for i in range(0, size, BATCH):
            fb.log_interactions(items[i : i + BATCH])

    # ROUNDS rounds of the four runs back to back: the machine's load swings within seconds, so
    # each ratio is the median of its per-round ratios (both sides of a ratio ran seconds apart).
    t: dict[str, list[float]] = {
        k: [] for k in ("raw", "sdk", "raw_batch", "sdk_batch", "raw_cpu", "sdk_cpu")
    }
    for _ in range(ROUNDS):
        cpu: list[float] = []
        t["raw"].append(_timed(raw, lambda: _raw_produce(raw, encoded), cpu))
        t["sdk"].append(_timed(fb, per_call, cpu))
        t["raw_batch"].append(_timed(raw, lambda: _raw_batches(raw, encoded)))
        t["sdk_batch"].append(_timed(fb, batched))
        t["raw_cpu"].append(cpu[0])
        t["sdk_cpu"].append(cpu[1])

    def ratios(num: str, den: str) -> list[float]:
        return [round(a / b, 3) for a, b in zip(t[num], t[den], strict=True)]

    med = {k: statistics.median(v) for k, v in t.items()}
    per_call, batch, batch_raw_batch = (
        ratios("raw", "sdk"),
        ratios("raw", "sdk_batch"),
        ratios("raw_batch", "sdk_batch"),
    )
    return {
        "record_size": pad and f"{len(encoded[0][1])} B" or f"{len(encoded[0][1])} B (base)",
        "record_bytes": len(encoded[0][1]), "records": size, "rounds": ROUNDS,
        "raw_producer_rec_s": _rate(size, med["raw"]), "sdk_rec_s": _rate(size, med["sdk"]),
        "sdk_over_raw": statistics.median(per_call), "sdk_over_raw_rounds": per_call,
        "raw_produce_batch_rec_s": _rate(size, med["raw_batch"]), "sdk_batch_rec_s": _rate(size, med["sdk_batch"]),
        "sdk_batch_over_raw": statistics.median(batch), "sdk_batch_over_raw_rounds": batch,
        "sdk_batch_over_raw_batch": statistics.median(batch_raw_batch),
        "raw_thread_cpu_us": round(med["raw_cpu"] / size * 1e6, 2),
        "sdk_thread_cpu_us": round(med["sdk_cpu"] / size * 1e6, 2),
        "sdk_over_raw_thread_cpu": round(med["raw_cpu"] / med["sdk_cpu"], 3),
        "raw_wall_us": round(med["raw"] / size * 1e6, 2), "sdk_wall_us": round(med["sdk"] / size * 1e6, 2),
    }  # fmt: skip


def bench_sdk_vs_raw(ctx: BenchContext, n: int) -> list[dict[str, Any]]:
    settings = ctx.settings()
    create_topics(settings)
    serde = Serde()
    runs = [(n // 4, 0), (n, 0), (n // 4, SIZES["2KB"]), (n // 4, SIZES["8KB"])]
    return [_run_size(settings, serde, size, pad) for size, pad in runs]


def bench_serde(n: int) -> dict[str, Any]:
    serde = Serde()
    rec = _interaction(1)
    t0 = time.perf_counter()
    for _ in range(n):
        data = serde.encode("Interaction", rec)
    enc = time.perf_counter() - t0
    # The reference the native encoder must match byte for byte (same header, same body).
    codec, header = serde._readers["Interaction"], data[:10]
    assert header + fastavro_bytes(codec.plain, rec) == data
    t0 = time.perf_counter()
    for _ in range(n):
        fastavro_bytes(codec.plain, rec, header)
    enc_fastavro = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        serde.encode("Interaction", rec, strict=True)
    enc_strict = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        serde.decode(data)
    dec = time.perf_counter() - t0
    return {"bytes_per_record": len(data), "encoder": serde.encoder, "encode_rec_s": _rate(n, enc),
            "fastavro_encode_rec_s": _rate(n, enc_fastavro), "encode_strict_rec_s": _rate(n, enc_strict),
            "decode_rec_s": _rate(n, dec)}  # fmt: skip


def fastavro_bytes(schema: Any, record: dict[str, Any], header: bytes = b"") -> bytes:
    buf = io.BytesIO()
    buf.write(header)
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def bench_gateway(ctx: BenchContext, seconds: float, batch: int) -> dict[str, Any]:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")},
           "HFLOOP_KAFKA_BOOTSTRAP": ctx.broker.bootstrap, "HFLOOP_API_KEYS": "bench:bench",
           "HFLOOP_DATA_DIR": str(ctx.workdir / "gw")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "hfloop.cli", "gateway", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway did not start")
            time.sleep(0.2)
        body = json.dumps({"events": [{"type": "interaction", **{k: v for k, v in _interaction(i).items()
                                                                 if k != "tenant_id"}} for i in range(batch)]})  # fmt: skip
        headers = {"Authorization": "Bearer bench", "content-type": "application/json"}
        gw = psutil.Process(proc.pid)
        results: dict[str, Any] = {}
        for label, size, payload in (("batch", batch, body),
                                     ("single", 1, json.dumps({"type": "interaction", **{k: v for k, v in _interaction(0).items() if k != "tenant_id"}}))):  # fmt: skip
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
                client.post("/v1/events", content=payload).raise_for_status()  # warm-up
                cpu0 = sum(gw.cpu_times()[:2])
                t0 = time.perf_counter()
                sent = 0

                def worker(
                    end: float, client: httpx.Client = client, payload: str = payload, size: int = size
                ) -> int:
                    count = 0
                    while time.perf_counter() < end:
                        client.post("/v1/events", content=payload).raise_for_status()
                        count += size
                    return count

                with ThreadPoolExecutor(8) as pool:
                    sent = sum(pool.map(worker, [t0 + seconds] * 8))
                wall = time.perf_counter() - t0
                cpu = sum(gw.cpu_times()[:2]) - cpu0
            results[label] = {"events": sent, "events_s_wall": _rate(sent, wall),
                              "events_per_cpu_s": _rate(sent, cpu), "gateway_cpu_share": round(cpu / wall, 2)}  # fmt: skip
        return results
    finally:
        proc.terminate()
        proc.wait(10)


def _sdk_rows(sdk: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in sdk:
        what = f"{r['records']} interactions, {r['record_size']}"
        rows += [
            {"measure": f"SDK log_interaction (one call per record) vs raw produce(), {what}",
             "hfloop": f"{r['sdk_rec_s']:,.0f} rec/s", "baseline": f"{r['raw_producer_rec_s']:,.0f} rec/s (raw produce() per record, pre-encoded)",
             "ratio": r["sdk_over_raw"]},
            {"measure": f"SDK log_interactions (batches of {BATCH}) vs raw produce(), {what}",
             "hfloop": f"{r['sdk_batch_rec_s']:,.0f} rec/s", "baseline": f"{r['raw_producer_rec_s']:,.0f} rec/s (raw produce() per record, pre-encoded)",
             "ratio": r["sdk_batch_over_raw"]},
            {"measure": f"SDK log_interactions (batches of {BATCH}) vs raw produce_batch, {what}",
             "hfloop": f"{r['sdk_batch_rec_s']:,.0f} rec/s", "baseline": f"{r['raw_produce_batch_rec_s']:,.0f} rec/s (raw produce_batch, pre-encoded)",
             "ratio": r["sdk_batch_over_raw_batch"]},
        ]  # fmt: skip
    return rows


def run(ctx: BenchContext) -> dict[str, Any]:
    n = 20_000 if ctx.quick else 100_000
    sdk = bench_sdk_vs_raw(ctx, n)
    serde = bench_serde(5_000 if ctx.quick else 50_000)
    gw = bench_gateway(ctx, 5 if ctx.quick else 15, 100)
    big = sdk[1]  # n records of the base size: the figure the target is judged on
    table = _sdk_rows(sdk) + [
        {"measure": f"Avro encode (Interaction, single-object, {native.ENCODER} encoder)", "hfloop": f"{serde['encode_rec_s']:,.0f} rec/s",
         "baseline": f"fastavro schemaless_writer: {serde['fastavro_encode_rec_s']:,.0f} rec/s",
         "ratio": round(serde["encode_rec_s"] / serde["fastavro_encode_rec_s"], 2)},
        {"measure": "Avro encode, strict (validate first: the gateway)", "hfloop": f"{serde['encode_strict_rec_s']:,.0f} rec/s",
         "baseline": "", "ratio": ""},
        {"measure": "Avro decode (Interaction)", "hfloop": f"{serde['decode_rec_s']:,.0f} rec/s", "baseline": "",
         "ratio": ""},
        {"measure": "Gateway, batches of 100", "hfloop": f"{gw['batch']['events_per_cpu_s']:,.0f} events per gateway CPU-s",
         "baseline": f"{gw['batch']['events_s_wall']:,.0f} events/s wall (client on the same 2 cores)", "ratio": ""},
        {"measure": "Gateway, one event per request", "hfloop": f"{gw['single']['events_per_cpu_s']:,.0f} events per gateway CPU-s",
         "baseline": f"{gw['single']['events_s_wall']:,.0f} events/s wall", "ratio": ""},
    ]  # fmt: skip

    def verdict(ratio: float) -> str:
        return "met" if ratio >= 0.5 else "NOT met"

    sizes = ", ".join(
        f"{r['record_bytes']} B: {r['sdk_over_raw']:.2f} / {r['sdk_batch_over_raw']:.2f}" for r in sdk[1:]
    )
    return {
        "summary": (
            f"At {big['records']} records of {big['record_bytes']} B, against raw produce() per record "
            f"(median of {ROUNDS} rounds): log_interaction (one call per record) keeps {big['sdk_over_raw']:.0%} "
            f"(rounds {', '.join(f'{r:.2f}' for r in big['sdk_over_raw_rounds'])}; target >= 50%: "
            f"{verdict(big['sdk_over_raw'])}); log_interactions (batches of {BATCH}) keeps "
            f"{big['sdk_batch_over_raw']:.0%} (target: {verdict(big['sdk_batch_over_raw'])}), and "
            f"{big['sdk_batch_over_raw_batch']:.0%} of raw produce_batch. Encoder: {native.ENCODER}. "
            f"CPU of the sending thread per record: log_interaction {big['sdk_thread_cpu_us']} us, raw produce() "
            f"{big['raw_thread_cpu_us']} us ({big['sdk_over_raw_thread_cpu']:.0%}): what the ratio tends to on an "
            "idle machine, where the raw producer's wall time shrinks to its own CPU."
        ),
        "encoder": native.ENCODER,
        "table": table,
        "sdk_vs_raw": sdk,
        "serde": serde,
        "gateway": gw,
        "notes": (
            f"Ratios per call / per batch vs raw produce() by record size: {sizes}. From "
            f"{sdk[0]['records']} to {sdk[1]['records']} records (base size) the per-call ratio went "
            f"{sdk[0]['sdk_over_raw']:.2f} -> {sdk[1]['sdk_over_raw']:.2f} and the batch ratio "
            f"{sdk[0]['sdk_batch_over_raw']:.2f} -> {sdk[1]['sdk_batch_over_raw']:.2f}. The SDK's extra cost per "
            f"record is Python, measured as the calling thread's CPU per record: {big['sdk_thread_cpu_us']} us for "
            f"log_interaction vs {big['raw_thread_cpu_us']} us for raw produce() + poll(0); the wall time per record "
            f"was {big['sdk_wall_us']} vs {big['raw_wall_us']} us (medians). log_interaction is the native sender "
            "(native.InteractionSender, C): binding the call's 16 keywords (passed as **fields here), the ids, the "
            "timestamp and the Avro body written from the arguments cost ~0.45-0.6 us measured apart (a no-op in "
            "place of produce()); the produce() call itself ~0.5 us; delivery reports reach Python only for failures. "
            "The raw producer's "
            "wall time is mostly the broker's and librdkafka's work on the same 2 cores, so it swings with the "
            "machine's load while the SDK's Python cost does not: the ratio is high on a busy machine and low on "
            "an idle one. The batch API pays the call once per batch. Compare the ratios of one run. Gateway: JSON "
            "parse + strict validation + encode per event, amortised HTTP per "
            "request; gateways scale out behind a load balancer (stateless)."
        ),
    }
