"""Shared benchmark plumbing: a real broker, the machine's description, result files.

Each ``benchmarks/bench_<name>.py`` defines ``run(ctx: BenchContext) -> dict`` returning
its figures (ratios side by side in one run, never absolute targets alone); ``run.py``
writes them to ``benchmarks/results/<name>.json`` and regenerates ``RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfloop.config import Settings
from hfloop.kafka_local import LocalKafka, free_port

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[:1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": platform.platform(),
        "java": java[0] if java else "none",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


@dataclass
class BenchContext:
    broker: LocalKafka
    workdir: Path
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        base: dict[str, Any] = {"kafka_bootstrap": self.broker.bootstrap, "data_dir": self.workdir / "data"}
        base.update(overrides)
        return Settings(**base)


@contextmanager
def bench_context(quick: bool = False) -> Iterator[BenchContext]:
    workdir = Path(tempfile.mkdtemp(prefix="hfloop-bench-"))
    s = Settings()
    broker = LocalKafka(home=workdir / "kafka", port=free_port(), version=s.kafka_version, cache_dir=s.cache_dir,
                        heap="1g")  # fmt: skip
    broker.start()
    try:
        yield BenchContext(broker=broker, workdir=workdir, quick=quick)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
