"""The closed-loop world used by the demo, the end-to-end tests and the benchmarks' load.

Support agents answer paraphrased questions from a knowledge base with planted errors;
simulated users and annotators react; the agents look up hfloop (memory, routing, document
weights) before every answer, so the loop closes only through the real system.
"""

from hfloop.simulate.agent import AgentConfig, HttpLookup, Lookup, MemoryHit, NullLookup, RouteRule, SimAgent
from hfloop.simulate.driver import (
    SimulationConfig,
    SimulationResult,
    VirtualClock,
    run_simulation,
    simulate_requests,
)
from hfloop.simulate.metrics import GroundTruth
from hfloop.simulate.sinks import EventSink, HttpSink, ListSink, SdkSink, to_event_json
from hfloop.simulate.world import DEFAULT_POOLS, Pool, World, WorldConfig

__all__ = [
    "DEFAULT_POOLS",
    "AgentConfig",
    "EventSink",
    "GroundTruth",
    "HttpLookup",
    "HttpSink",
    "ListSink",
    "Lookup",
    "MemoryHit",
    "NullLookup",
    "Pool",
    "RouteRule",
    "SdkSink",
    "SimAgent",
    "SimulationConfig",
    "SimulationResult",
    "VirtualClock",
    "World",
    "WorldConfig",
    "run_simulation",
    "simulate_requests",
    "to_event_json",
]
