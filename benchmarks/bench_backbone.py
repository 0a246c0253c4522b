"""Event backbone: SDK vs raw producer, Avro serde rates, gateway events/s per core.

* SDK vs raw: the same N interactions, once through ``FeedbackClient.log_interaction`` (build the
  record, encode, produce) and once as pre-encoded bytes through a bare confluent-kafka Producer
  with the same settings. Both end with ``flush()`` (every record acknowledged).
* Serde: fastavro single-object encode/decode of a realistic Interaction, records/s.
* Gateway: a uvicorn process serving POST /v1/events against the broker, driven by concurrent
  batch requests from this process; events per CPU-second of the gateway process is the
  per-core figure (the client shares the 2 cores, so wall-clock rate understates it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
from confluent_kafka import Producer

from benchmarks.common import BenchContext
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


def _interaction(i: int) -> dict[str, Any]:
    return ev.interaction(
        tenant_id="bench", agent_id="support", prompt=PROMPT, response=RESPONSE, interaction_id=f"i-{i}",
        session_id=f"s-{i // 4}", user_id=f"u-{i % 500}", agent_version="1.4.2", model_id="small", route="orders",
        retrieved_doc_ids=["kb-shipping-v3", "kb-orders-v1"], latency_ms=640.0, prompt_tokens=52, completion_tokens=24,
    )  # fmt: skip


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def bench_sdk_vs_raw(ctx: BenchContext, n: int) -> list[dict[str, Any]]:
    settings = ctx.settings()
    create_topics(settings)
    serde = Serde()
    rows = []
    for size in (n // 4, n):
        records = [_interaction(i) for i in range(size)]
        encoded = [(key_of(INTERACTIONS, r), serde.encode("Interaction", r)) for r in records]

        raw = Producer(settings.producer_config())
        raw.produce(INTERACTIONS, encoded[0][1], encoded[0][0])  # warm-up: connection + idempotent PID
        raw.flush(30)
        t0 = time.perf_counter()
        for key, value in encoded:
            while True:
                try:
                    raw.produce(INTERACTIONS, value, key)
                    break
                except BufferError:
                    raw.poll(0.01)
            raw.poll(0)
        assert raw.flush(60) == 0
        raw_s = time.perf_counter() - t0

        fb = FeedbackClient("bench", settings=settings, serde=serde)
        fb.log_interaction("support", PROMPT, RESPONSE, wait=True)  # warm-up, as above
        fields = [{k: v for k, v in r.items() if k not in ("tenant_id", "agent_id", "messages", "response")}
                  for r in records]  # fmt: skip
        t0 = time.perf_counter()
        for f in fields:
            fb.log_interaction("support", PROMPT, RESPONSE, **{k: v for k, v in f.items() if k != "event_id"})
        fb.flush()
        sdk_s = time.perf_counter() - t0
        rows.append({
            "records": size, "raw_producer_rec_s": _rate(size, raw_s), "sdk_rec_s": _rate(size, sdk_s),
            "sdk_over_raw": round(raw_s / sdk_s, 3),
        })  # fmt: skip
    return rows


def bench_serde(n: int) -> dict[str, Any]:
    serde = Serde()
    rec = _interaction(1)
    t0 = time.perf_counter()
    for _ in range(n):
        data = serde.encode("Interaction", rec)
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        serde.encode("Interaction", rec, strict=True)
    enc_strict = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        serde.decode(data)
    dec = time.perf_counter() - t0
    return {"bytes_per_record": len(data), "encode_rec_s": _rate(n, enc), "encode_strict_rec_s": _rate(n, enc_strict),
            "decode_rec_s": _rate(n, dec)}  # fmt: skip


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

                def worker() -> int:
                    count = 0
                    end = t0 + seconds
                    while time.perf_counter() < end:
                        client.post("/v1/events", content=payload).raise_for_status()
                        count += size
                    return count

                with ThreadPoolExecutor(8) as pool:
                    sent = sum(pool.map(lambda _: worker(), range(8)))
                wall = time.perf_counter() - t0
                cpu = sum(gw.cpu_times()[:2]) - cpu0
            results[label] = {"events": sent, "events_s_wall": _rate(sent, wall),
                              "events_per_cpu_s": _rate(sent, cpu), "gateway_cpu_share": round(cpu / wall, 2)}  # fmt: skip
        return results
    finally:
        proc.terminate()
        proc.wait(10)


def run(ctx: BenchContext) -> dict[str, Any]:
    n = 20_000 if ctx.quick else 100_000
    sdk = bench_sdk_vs_raw(ctx, n)
    serde = bench_serde(5_000 if ctx.quick else 50_000)
    gw = bench_gateway(ctx, 5 if ctx.quick else 15, 100)
    big = sdk[-1]
    table = [*sdk, {"records": "serde", **serde}]
    table = [
        {"measure": f"SDK vs raw producer, {r['records']} interactions",
         "hfloop": f"{r['sdk_rec_s']:,.0f} rec/s", "baseline": f"{r['raw_producer_rec_s']:,.0f} rec/s (raw, pre-encoded)",
         "ratio": r["sdk_over_raw"]} for r in sdk
    ] + [
        {"measure": "Avro encode (Interaction, single-object)", "hfloop": f"{serde['encode_rec_s']:,.0f} rec/s",
         "baseline": f"strict (validate first): {serde['encode_strict_rec_s']:,.0f} rec/s",
         "ratio": round(serde["encode_strict_rec_s"] / serde["encode_rec_s"], 3)},
        {"measure": "Avro decode (Interaction)", "hfloop": f"{serde['decode_rec_s']:,.0f} rec/s", "baseline": "",
         "ratio": ""},
        {"measure": "Gateway, batches of 100", "hfloop": f"{gw['batch']['events_per_cpu_s']:,.0f} events per gateway CPU-s",
         "baseline": f"{gw['batch']['events_s_wall']:,.0f} events/s wall (client on the same 2 cores)", "ratio": ""},
        {"measure": "Gateway, one event per request", "hfloop": f"{gw['single']['events_per_cpu_s']:,.0f} events per gateway CPU-s",
         "baseline": f"{gw['single']['events_s_wall']:,.0f} events/s wall", "ratio": ""},
    ]  # fmt: skip
    target = "met" if big["sdk_over_raw"] >= 0.5 else "NOT met"
    return {
        "summary": (
            f"SDK keeps {big['sdk_over_raw']:.0%} of the raw producer's rate at {big['records']} records "
            f"(target >= 50%: {target})."
        ),  # fmt: skip
        "table": table,
        "sdk_vs_raw": sdk,
        "serde": serde,
        "gateway": gw,
        "notes": (
            f"Cost growth: from {sdk[0]['records']} to {sdk[-1]['records']} records the SDK rate went "
            f"{sdk[0]['sdk_rec_s']:,.0f} -> {sdk[-1]['sdk_rec_s']:,.0f} rec/s and the raw rate "
            f"{sdk[0]['raw_producer_rec_s']:,.0f} -> {sdk[-1]['raw_producer_rec_s']:,.0f} rec/s (cost per record "
            "is constant: linear in load). The SDK's extra cost "
            "per record is building the dict and the Avro encode (see the serde rows), so the ratio is set by "
            "encode rate vs librdkafka's per-message cost. Gateway: JSON parse + strict validation + encode per "
            "event, amortised HTTP per request; batches are the way to ingest at volume, and gateways scale out "
            "behind a load balancer (stateless)."
        ),
    }
