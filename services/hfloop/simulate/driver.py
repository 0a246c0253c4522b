"""Run the world against a live hfloop: conversations at a rate, for a duration or a count.

    from hfloop.simulate import SimulationConfig, run_simulation
    result = run_simulation(settings, SimulationConfig(seed=7, rate=5, duration_s=120))
    result.summary["repeat_error"]["reduction"]

Each conversation is scheduled on a timeline: the agent answers (looking up hfloop over
HTTP first), the interaction is published, and the user's reactions, corrections and the
annotators' ratings follow after small simulated delays, a few of them before their
interaction (the join must cope). A rephrase is a new turn in the same session. When no
new conversation may start, what is pending still runs (waiting at most ``drain_s``), so
every planned event is published and the run always ends by itself.
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, Literal, Protocol

from hfloop.config import Settings
from hfloop.simulate.agent import AgentConfig, HttpLookup, Lookup, NullLookup, SimAgent
from hfloop.simulate.kb import Intent
from hfloop.simulate.metrics import Answered, GroundTruth
from hfloop.simulate.sinks import EventSink, HttpSink, SdkSink
from hfloop.simulate.world import User, World, WorldConfig


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 7
    rate: float = 5.0  # new conversations per second
    duration_s: float | None = 60.0  # stop starting conversations after this long ...
    requests: int | None = None  # ... or after this many (whichever comes first)
    via: Literal["sdk", "http"] = "sdk"  # how events are published; lookups always use HTTP
    tenant: str = "demo"  # SDK tenant; over HTTP the API key decides the tenant
    api_url: str | None = None  # default: settings.api_url
    api_key: str | None = None  # default: settings.api_key
    gateway_url: str | None = None  # where POST /v1/events goes; default api_url (one app in `hfloop dev`)
    lookups: bool = True  # False: the open loop (no lookups at all), for load tests and baselines
    lookup_ttl_s: float = 1.0  # routing rules and weights are cached this long, as agents do
    strict_lookups: bool = False  # raise on a failed lookup instead of counting it
    arrivals: Literal["poisson", "uniform"] = "poisson"
    drain_s: float = 15.0  # after the last conversation, wait at most this long for pending events
    http_batch: int = 200
    progress: bool = True
    run_id: str | None = None  # makes ids unique per run (default: random); the world stays seeded
    grace_s: float = 0.0  # passed to the repeat-error summary
    world: WorldConfig = field(default_factory=WorldConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)

    def __post_init__(self) -> None:
        if self.duration_s is None and self.requests is None:
            raise ValueError("a simulation needs a duration_s or a number of requests (or both)")
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.world.seed != self.seed:
            object.__setattr__(self, "world", replace(self.world, seed=self.seed))


@dataclass
class SimulationResult:
    summary: dict[str, Any]
    truth: GroundTruth
    config: SimulationConfig
    run_id: str
    elapsed_s: float
    lookup_errors: int = 0
    last_lookup_error: str | None = None


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wall_ms(self, t: float) -> int:
        """Epoch milliseconds of the clock reading ``t``."""


class RealClock:
    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wall_ms(self, t: float) -> int:
        return int((t + self._offset) * 1000)


class VirtualClock:
    """Time that passes only when slept through (unit tests run hours of world in seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def wall_ms(self, t: float) -> int:
        return int(t * 1000)


@dataclass
class _Conversation:
    n: int
    user: User
    intent: Intent
    session_id: str
    asked: list[int] = field(default_factory=list)  # template indices used so far
    history: list[dict[str, str]] = field(default_factory=list)
    last_iid: str | None = None


class Simulation:
    """The scheduler: a heap of due tasks (turns and emissions) on one thread."""

    def __init__(self, config: SimulationConfig, lookup: Lookup, sink: EventSink, clock: Clock) -> None:
        self.config = config
        self.world = World(config.world)
        self.agent = SimAgent(self.world, lookup, config.agent)
        self.sink = sink
        self.clock = clock
        self.truth = GroundTruth(self.world)
        self.run_id = config.run_id or uuid.uuid4().hex[:12]
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.start = clock.now()
        self.draining = False

    def _at(self, due: float, task: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), task))

    def _rng(self, *parts: object) -> Random:
        return Random("/".join(str(p) for p in (self.config.seed, *parts)))

    def _id(self, *parts: object) -> str:
        return uuid.uuid5(
            uuid.NAMESPACE_URL, "/".join(str(p) for p in ("hfloop-sim", self.run_id, *parts))
        ).hex

    # --- tasks ----------------------------------------------------------------------------------
    def start_conversation(self, n: int) -> None:
        rng = self._rng("conversation", n)
        conv = _Conversation(
            n, self.world.pick_user(rng), self.world.pick_intent(rng), self._id("session", n)
        )
        self.truth.conversations += 1
        self._at(self.clock.now(), lambda: self.ask(conv, rng))

    def ask(self, conv: _Conversation, rng: Random) -> None:
        turn_no = len(conv.asked)
        now = self.clock.now()
        k, text = self.world.question(conv.intent, rng, avoid=conv.asked)
        conv.asked.append(k)
        iid = self._id("interaction", conv.n, turn_no)
        turn = self.agent.respond(
            conv.intent,
            text,
            interaction_id=iid,
            user_id=conv.user.id,
            history=conv.history,
            rng=self._rng("agent", conv.n, turn_no),
        )
        right = self.world.is_right(conv.intent, turn.response)
        self.truth.answered(
            Answered(
                now - self.start,
                conv.intent.id,
                turn.agent_id,
                turn.route,
                turn.model_id,
                right,
                self.world.is_right(conv.intent, turn.generated),
                bool(turn.memory_ids),
                tuple(turn.doc_ids),
                turn_no,
                turn.routing_action,
            )
        )
        answered_at = now  # the simulated model takes no real time; latency_ms is what it reports
        kwargs = turn.interaction_kwargs(
            session_id=conv.session_id,
            user_id=conv.user.id,
            agent_version=self.config.world.agent_version,
            parent=conv.last_iid,
            event_time=self.clock.wall_ms(answered_at),
        )
        people = self._rng("people", conv.n, turn_no)
        # A few interactions reach hfloop after their first outcome: the join has to wait for them.
        late = people.random() < self.config.world.early_share
        self._emit_at(
            answered_at + (1.5 * self.config.world.delay_scale if late else 0.0),
            "log_interaction",
            kwargs,
            {"intent": conv.intent.id, "right": right},
        )
        reaction = self.world.react(
            user=conv.user,
            intent=conv.intent,
            iid=iid,
            session_id=conv.session_id,
            turn=turn_no,
            right=right,
            rng=people,
        )
        annotations = self.world.annotate(
            intent=conv.intent,
            iid=iid,
            response=turn.response,
            right=right,
            rng=self._rng("annotators", conv.n, turn_no),
        )
        for p in (*reaction.planned, *annotations):
            self._emit_at(answered_at + p.delay_s, p.method, p.kwargs, p.meta)
        conv.history += [{"role": "user", "content": text}, {"role": "assistant", "content": turn.response}]
        conv.last_iid = iid
        if reaction.follow_up_s is not None:
            self._at(answered_at + reaction.follow_up_s, lambda: self.ask(conv, rng))

    def _emit_at(self, due: float, method: str, kwargs: Any, meta: Any) -> None:
        def emit() -> None:
            kw = dict(kwargs)
            kw.setdefault("event_time", self.clock.wall_ms(due))  # when it happened, not when it was sent
            self.sink.emit(method, kw)
            self.truth.emitted(due - self.start, method, kw, meta)

        self._at(due, emit)

    # --- the loop ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[Simulation, float], None] | None = None) -> float:
        c = self.config
        arrivals = self._rng("arrivals")
        next_start, n = self.start, 0
        stop_at = self.start + c.duration_s if c.duration_s is not None else float("inf")
        drain_deadline: float | None = None
        while True:
            now = self.clock.now()
            starting = (c.requests is None or n < c.requests) and now < stop_at
            while starting and next_start <= now:
                self.start_conversation(n)
                n += 1
                gap = arrivals.expovariate(c.rate) if c.arrivals == "poisson" else 1.0 / c.rate
                next_start += gap
                starting = (c.requests is None or n < c.requests) and next_start < stop_at
            if not starting and drain_deadline is None:
                drain_deadline = now + c.drain_s
                self.draining = True
            hurry = drain_deadline is not None and now >= drain_deadline
            while self._heap and (hurry or self._heap[0][0] <= self.clock.now()):
                heapq.heappop(self._heap)[2]()
            self.sink.tick()
            if progress:
                progress(self, self.clock.now() - self.start)
            if not starting and not self._heap:
                break
            nxt = min(
                self._heap[0][0] if self._heap else float("inf"), next_start if starting else float("inf")
            )
            self.clock.sleep(min(0.05, max(0.0, nxt - self.clock.now())))
        self.sink.flush()
        return self.clock.now() - self.start


def _progress_bar(config: SimulationConfig) -> tuple[Any, Callable[[Simulation, float], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]simulate[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[what]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    by_count = config.requests is not None and (
        config.duration_s is None or config.requests / config.rate < config.duration_s
    )
    total = float((config.requests if by_count else config.duration_s) or 1)
    task = bar.add_task("simulate", total=total, what="", stats="")

    def update(sim: Simulation, elapsed: float) -> None:
        t = sim.truth
        done = t.conversations if by_count else min(elapsed, total)
        wrong = sum(not a.right for a in t.answers[-200:])
        recent = min(len(t.answers), 200)
        what = f"{t.conversations} conv" if by_count else f"{min(elapsed, total):.0f}/{total:.0f}s"
        if sim.draining:
            what += " (draining)"
        stats = (
            f"{len(t.answers)} answers | {sum(t.events.values())} events | recent errors "
            f"{wrong / recent if recent else 0:.0%} | memory used {sum(a.memory_used for a in t.answers)}"
        )
        bar.update(task, completed=done, what=what, stats=stats)

    return bar, update


def run_simulation(
    settings: Settings,
    config: SimulationConfig,
    *,
    lookup: Lookup | None = None,
    sink: EventSink | None = None,
    clock: Clock | None = None,
) -> SimulationResult:
    """Run the world against hfloop and return the ground-truth summary.

    By default events go through ``FeedbackClient`` (``via="sdk"``) or ``POST /v1/events``
    (``via="http"``), and lookups through ``HfloopClient`` at ``config.api_url``. Tests may
    pass their own ``lookup``, ``sink`` and ``clock``.
    """
    from hfloop.sdk import FeedbackClient, HfloopClient

    api_url = config.api_url or settings.api_url
    api_key = config.api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    closers: list[Callable[[], None]] = []
    http_lookup: HttpLookup | None = None
    if lookup is None:
        if config.lookups:
            client = HfloopClient(api_url, api_key=api_key)
            closers.append(client.close)
            lookup = http_lookup = HttpLookup(client, ttl_s=config.lookup_ttl_s, strict=config.strict_lookups)
        else:
            lookup = NullLookup()
    if sink is None:
        if config.via == "http":
            gw = HfloopClient(config.gateway_url or api_url, api_key=api_key)
            closers.append(gw.close)
            sink = HttpSink(gw, batch=config.http_batch)
        else:
            sink = SdkSink(FeedbackClient(config.tenant, settings=settings))
    sim = Simulation(config, lookup, sink, clock or RealClock())
    bar, update = _progress_bar(config) if config.progress else (None, None)
    try:
        if bar is not None:
            with bar:
                elapsed = sim.run(update)
        else:
            elapsed = sim.run()
    finally:
        sink.close()
        for close in closers:
            close()
    summary = sim.truth.summary(grace_s=config.grace_s)
    summary["run_id"] = sim.run_id
    summary["elapsed_s"] = round(elapsed, 2)
    summary["via"] = config.via
    summary["lookups"] = {
        "enabled": config.lookups,
        "errors": http_lookup.errors if http_lookup else 0,
        "last_error": http_lookup.last_error if http_lookup else None,
    }
    return SimulationResult(
        summary,
        sim.truth,
        config,
        sim.run_id,
        elapsed,
        http_lookup.errors if http_lookup else 0,
        http_lookup.last_error if http_lookup else None,
    )


def simulate_requests(
    settings: Settings,
    requests: int,
    *,
    rate: float = 10.0,
    seed: int = 7,
    via: Literal["sdk", "http"] = "sdk",
    tenant: str = "demo",
    api_url: str | None = None,
    api_key: str | None = None,
    progress: bool = False,
    **world: Any,
) -> dict[str, Any]:
    """Run ``requests`` conversations against a live stack and return the metrics summary.

    The shape the end-to-end test wants: ``simulate_requests(settings, 300, rate=10)``;
    ``world`` overrides :class:`WorldConfig` fields (e.g. ``corrector_share=0.5``)."""
    config = SimulationConfig(
        seed=seed,
        rate=rate,
        duration_s=None,
        requests=requests,
        via=via,
        tenant=tenant,
        api_url=api_url,
        api_key=api_key,
        progress=progress,
        world=WorldConfig(seed=seed, **world),
    )
    return run_simulation(settings, config).summary
